"""One batch from its hand-off to the log to its answer (the runtime's worker thread hands a
batch to the log, then steps it: the commit and the step overlap).

`Batch` joins the log's outcome (durable, or why not) with the step's (the pending batch and
its rendered answer, or why not); the second to arrive ends it, on its own thread:

    durable, trained       the history point to the log, the state swapped (lock released),
                           the answer (its time: from the batch's turn to both being done)
    not durable, trained   (or the core failed part way) Reload: back to the log's state, 503
    not durable, refused   the refusal answered (nothing was logged, nothing changed)
    durable, refused       dropped from the log again, then the refusal answered (or, when
                           the core failed, Reload)
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from threading import Lock
from typing import Any

from service.live import LiveStream, Pending
from service.runtime.log import StreamLog

log = logging.getLogger("dimwatch")
Finish = Callable[[Any, BaseException | None], None]  # the job's outcome, from any thread


@dataclass(frozen=True)
class Reload(Exception):
    """A job's stream must be reloaded from its log (then `cause` answered): its commit failed,
    or the core failed on it part way."""

    why: str
    cause: BaseException


class Batch:
    """One batch of `live` between the log and its answer (`finish`); module docstring."""

    def __init__(self, live: LiveStream, log_: StreamLog, finish: Finish, started: float) -> None:
        self._live, self._log, self._finish, self._started = live, log_, finish, started
        self.step = live.step + 1  # the stream's step once it is applied
        self._lock = Lock()
        self._logged: tuple[BaseException | None, float] | None = None
        self._stepped: tuple[Pending | None, Any] | None = None

    def logged(self, error: BaseException | None, seconds: float) -> None:
        """The log's outcome: durable (error None) `seconds` after the hand-off, or not."""
        with self._lock:
            self._logged = (error, seconds)
            if self._stepped is None:
                return
        self._end()

    def stepped(self, pending: Pending | None, outcome: Any) -> None:
        """The step's outcome: the pending batch and its rendered Applied, or (None, why not)."""
        with self._lock:
            self._stepped = (pending, outcome)
            if self._logged is None:
                return
        self._end()

    def _end(self) -> None:
        assert self._logged is not None and self._stepped is not None
        (error, commit_seconds), (pending, outcome) = self._logged, self._stepped
        live = self._live
        if pending is not None and error is None:  # applied: durable and trained
            self._log.record(live, pending.change)
            live.committed(pending)
            seconds = time.perf_counter() - self._started
            self._finish(replace(outcome, seconds=seconds, commit_seconds=commit_seconds), None)
        elif error is not None and (pending is not None or isinstance(outcome, Reload)):
            # trained ahead of the log, or the core failed part way: back to the log's state
            self._finish(None, Reload(f"could not store step {self.step} ({error})", error))
        elif error is not None:  # refused, and not in the log
            live.abort()
            self._finish(None, outcome)
        else:  # in the log, but refused (or the core failed): out of the log again
            self._log.drop(live, self.step, lambda failed: self._dropped(failed, outcome))

    def _dropped(self, error: BaseException | None, outcome: BaseException) -> None:
        """On the log's thread: the refused batch is out of the log (or, error, its drop
        failed: the replay refuses it again and the stream's next batch replaces it)."""
        if error is not None:
            log.error("stream %r: could not drop refused step %d (%s)", self._live.name,
                      self.step, error)  # fmt: skip
        if not isinstance(outcome, Reload):
            self._live.abort()
        self._finish(None, outcome)
