"""`dimwatch push` made safe to re-run: which rows of a file to send, then sending them.

Before anything is sent the whole file has been read and checked (clients._files). Then:

- a new stream, or one without rows: every row, from the first;
- the same file as the last push into this stream (clients._journal): the rows the stream does not
  hold yet, i.e. a re-run after a failure continues at the first missing row and a re-run after
  success sends nothing;
- `--append`: every row again, after the stream's rows; `--resume`: continue this file (even an
  edited one) after the rows an earlier push of it left;
- a different file after a finished push: appended;
- anything else (the stream has rows nobody recorded here, or a different file after an unfinished
  push): refused, with the exact command for either meaning.

Batches carry seq numbers from the stream's step, so a batch retried after a lost answer is
applied once (the server answers `duplicate`), and two producers cannot interleave unnoticed.
"""

import signal
import threading
from dataclasses import dataclass
from types import FrameType
from typing import Any, Literal, Self

import numpy as np

from clients import _journal
from clients import _requests as api
from clients._journal import PushRecord
from clients._progress import Upload
from clients.client import DimwatchClient
from clients.errors import DimwatchError
from clients.models import PushSummary, Stream

Mode = Literal["auto", "append", "resume"]


class PushRefused(DimwatchError):
    """The command cannot tell which rows to send; the message says what to run instead."""


class PushStopped(DimwatchError):
    """The upload failed or was interrupted part-way; `.cause` is why (a DimwatchError or
    KeyboardInterrupt), `.done` rows of the file are in (at least, unless `.exact`)."""

    def __init__(self, cause: BaseException, done: int, total: int, exact: bool = True) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.done = done
        self.total = total
        self.exact = exact  # False: a batch was on its way when it stopped, and may be in too


@dataclass(frozen=True)
class Plan:
    """Rows start: of the file to send, and what to remember about the file before sending."""

    start: int  # index of the first row to send (len(file): nothing to send)
    record: PushRecord
    note: str | None = None  # what the user is told before the upload


def plan(
    stream: Stream,
    rows: np.ndarray,
    file: str,
    recorded: PushRecord | None,
    mode: Mode,
    command: str,
) -> Plan:
    """Which rows of `rows` to send into `stream`; PushRefused when that is ambiguous."""
    n, held = len(rows), stream.rows_seen
    fresh = PushRecord(file, _journal.digest(rows), n, held)
    if held == 0 or mode == "append":
        note = f"adding {n:,} rows of {file} after the {held:,} rows of {stream.name!r}"
        return Plan(0, fresh, note if held else None)
    recorded = recorded if recorded is not None and recorded.rows_before <= held else None
    same = recorded is not None and recorded.digest == fresh.digest
    if recorded is not None and (same or mode == "resume"):
        return _continue(recorded, fresh, held, stream.name, command)
    if mode == "resume":
        return _continue(PushRecord(file, fresh.digest, n, 0), fresh, held, stream.name, command)
    if recorded is not None and held - recorded.rows_before >= recorded.rows:
        note = f"adding {n:,} rows of {file} after the {held:,} rows of {stream.name!r}"
        return Plan(0, fresh, note)
    why = (
        f"the last push into it ({recorded.file}) stopped part-way and {file} differs from it"
        if recorded is not None
        else "no push of this file into it is recorded here"
    )
    raise PushRefused(
        f"stream {stream.name!r} holds {held:,} rows already and {why}. To add all {n:,} rows "
        f"of {file} after them: `{command} --append`; to continue {file} after the rows an "
        f"earlier push of it left: `{command} --resume`"
    )


def _continue(recorded: PushRecord, fresh: PushRecord, held: int, name: str, command: str) -> Plan:
    """Continue the file after the rows of it the stream holds."""
    done, n, file = held - recorded.rows_before, fresh.rows, fresh.file
    record = PushRecord(file, fresh.digest, n, recorded.rows_before)
    if done >= n:
        note = (
            f"{file} is in {name!r} already ({n:,} rows, pushed before); nothing sent. "
            f"To add its rows once more: `{command} --append`"
        )
        return Plan(n, record, note)
    if done == 0:
        return Plan(0, record)
    note = f"continuing {file} at row {done + 1:,}: its first {done:,} rows are in {name!r}"
    return Plan(done, record, note)


def send(
    client: DimwatchClient,
    stream: Stream,
    rows: np.ndarray,
    start: int,
    batch_size: int,
    progress: bool,
) -> PushSummary:
    """Push rows[start:] in batches numbered from the stream's step; PushStopped on a failure.

    Ctrl-C stops after the batch on its way has been answered, so that the rows counted are the
    rows the server holds; a second Ctrl-C stops at once (that batch may then be in or not)."""
    rest = rows[start:]
    with Upload(len(rest), progress, stream.name) as upload, CtrlC() as ctrl_c:
        try:
            for seq, batch in api.batches(rest, batch_size, stream.step):
                ctrl_c.check()
                upload.record(client.push(stream.name, batch, seq=seq))
            ctrl_c.check()
        except (DimwatchError, KeyboardInterrupt) as exc:
            exact = not (isinstance(exc, KeyboardInterrupt) and ctrl_c.presses > 1)
            raise PushStopped(exc, start + upload.summary().rows, len(rows), exact) from exc
    return upload.summary()


class CtrlC:
    """While entered (in the main thread): the first SIGINT is noted, for `check()` to raise
    KeyboardInterrupt between batches; a second one raises at once, as Python does."""

    def __init__(self) -> None:
        self.presses = 0
        self._before: Any = None

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            self._before = signal.signal(signal.SIGINT, self._pressed)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._before is not None:
            signal.signal(signal.SIGINT, self._before)

    def _pressed(self, signum: int, frame: FrameType | None) -> None:
        self.presses += 1
        if self.presses > 1:
            raise KeyboardInterrupt

    def check(self) -> None:
        if self.presses:
            raise KeyboardInterrupt
