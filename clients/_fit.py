"""Fitting a finite array: shuffled passes over its rows until the selection has converged.

A stream learns online, one batch at a time; a file is finite. `fit_array` (and `dimwatch fit`)
send the file's rows over and over, each pass in a fresh random order, until the server says
the selection has converged (`converged: true`, docs/api.md), or until the stream has learnt from
`max_rows` rows (the last batch is not cut short); then the pick is provisional and the result
says so.

The order is fixed by the seed: pass p is the rows in the order of
`numpy.random.default_rng([seed, p]).permutation(n)`, and the sequence of rows continues at the
stream's `rows_seen`, so a fit that was interrupted goes on where it stopped when run again
(batches carry seq numbers from the stream's step, as every upload of the client does).

`Fit` holds no connection: the clients ask it for the next batch, send it, and hand it the
answer, as they do with `Upload`.
"""

import time

import numpy as np

from clients import _requests as api
from clients._progress import Bar, fit_bar, fit_state
from clients.errors import InputError
from clients.models import Collapse, FitResult, PushResult, Selection, Stream, StreamSettings

DEFAULT_BATCH_SIZE = 100  # rows per batch: a file is not a live stream, larger batches go faster
DEFAULT_MAX_ROWS = 200_000  # rows the stream may learn from before the fit gives up: provisional


def shuffled(rows: int, seed: int, start: int, batch_size: int, stop: int) -> list[np.ndarray]:
    """Row indices of the batches of the shuffled passes that begin at positions `start` to
    `stop` (excluded).

    Position i is row order_p[i mod n] of pass p = i // n. A batch never spans two passes (the
    last batch of a pass may be shorter) and is never cut short otherwise, so that a run that
    stopped and one that did not cut the rows into the same batches.
    """
    out, at, order, pass_ = [], start, np.empty(0, dtype=np.int64), -1
    while at < stop:
        p, i = divmod(at, rows)
        if p != pass_:
            order, pass_ = np.random.default_rng([seed, p]).permutation(rows), p
        take = min(batch_size, rows - i)
        out.append(order[i : i + take])
        at += take
    return out


class Fit(Bar):
    """One fit of `rows` into a stream: which batch to send next, when to stop, the result.

    Used as `with Fit(...) as fit: fit.start(stream, selection)`, then, until `next_batch()` is
    None, send it and `record()` the answer; `result(collapse)` at the end. With `progress`, a
    progress bar on stderr shows the rows learnt and how far the candidates are from converged.
    """

    def __init__(
        self,
        rows: np.ndarray,
        name: str,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_rows: int = DEFAULT_MAX_ROWS,
        shuffle_seed: int = 0,
        progress: bool = False,
    ) -> None:
        self.rows = api.as_rows(rows, "X")
        if len(self.rows) == 0:
            raise InputError("X: expected at least one row, got none")
        for what, value in (("batch_size", batch_size), ("max_rows", max_rows)):
            if value < 1:
                raise InputError(f"{what}: expected >= 1, got {value}")
        self.name = name
        self.batch_size = batch_size
        self.max_rows = max_rows
        self.seed = shuffle_seed
        self.selection: Selection | None = None
        self._seq = self._seen = self._pushed = 0
        self._order: list[np.ndarray] = []
        self._started = time.perf_counter()
        self._progress = fit_bar(name, max_rows) if progress else None

    def settings(self, given: StreamSettings) -> StreamSettings:
        """The settings of a stream created for the fit: D is the array's."""
        return {**given, "dim": self.rows.shape[1]}

    def start(self, stream: Stream, selection: Selection) -> None:
        """Begin from the stream as it is: its step, the rows it has learnt, its selection."""
        dim = self.rows.shape[1]
        if stream.dim is not None and stream.dim != dim:
            raise InputError(
                f"X has {dim} columns, but stream {stream.name!r} has D = {stream.dim}"
            )
        self._seq, self._seen, self.selection = stream.step, stream.rows_seen, selection
        self._show()

    def next_batch(self) -> tuple[int, np.ndarray] | None:
        """(seq, rows) to send next; None once converged or `max_rows` rows are learnt (the
        last batch is not cut: the stream may learn from up to a batch more)."""
        if self.selection is None or self.selection.converged or self._seen >= self.max_rows:
            return None
        if not self._order:  # the next pass's worth of batches
            stop = min(self.max_rows, self._seen + len(self.rows))
            self._order = shuffled(len(self.rows), self.seed, self._seen, self.batch_size, stop)
        return self._seq, self.rows[self._order.pop(0)]

    def record(self, result: PushResult) -> None:
        """The server's answer to the batch `next_batch` gave."""
        self._seq += 1
        self._seen = result.selection.rows_seen
        self._pushed += 0 if result.duplicate else result.rows
        self.selection = result.selection
        self._show()

    def result(self, collapse: Collapse) -> FitResult:
        assert self.selection is not None, "start() first"
        return FitResult(
            stream=self.name,
            rows=len(self.rows),
            rows_seen=self.selection.rows_seen,
            pushed=self._pushed,
            converged=bool(self.selection.converged),
            max_rows=self.max_rows,
            seconds=time.perf_counter() - self._started,
            selection=self.selection,
            collapse=collapse,
        )

    def _show(self) -> None:
        if self._progress is not None and self.selection is not None:
            (task,) = self._progress.task_ids
            state = fit_state(self.selection, len(self.rows))
            self._progress.update(task, completed=self.selection.rows_seen, state=state)
