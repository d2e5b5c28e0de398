"""Bookkeeping of a batched upload (`stream_array`) and the progress bars of uploads and fits
on stderr."""

import time
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from clients.models import PushResult, PushSummary, Selection


class Bar:
    """A progress bar on stderr (or none: `_progress` None), drawn between `with` and its end."""

    _progress: Progress | None = None

    def __enter__(self) -> Self:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()


class Upload(Bar):
    """Counts what the server answered to each batch and, if asked, draws a progress bar.

    Used as `with Upload(total_rows, show, label) as upload: upload.record(result)`;
    `summary()` then says how many batches and rows went up and how many were duplicates.
    """

    def __init__(self, total_rows: int, show: bool, label: str) -> None:
        self._start = time.perf_counter()
        self._batches = self._rows = self._duplicates = 0
        self._last: PushResult | None = None
        self._progress: Progress | None = None
        self._task = None
        if show:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("rows  best H [cyan]{task.fields[best]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._task = self._progress.add_task(label, total=total_rows, best="-")

    def record(self, result: PushResult) -> None:
        self._batches += 1
        self._rows += result.rows
        self._duplicates += int(result.duplicate)
        self._last = result
        if self._progress is not None and self._task is not None:
            best = result.selection.best_latent_dim
            self._progress.update(self._task, advance=result.rows, best=best or "-")

    def summary(self) -> PushSummary:
        return PushSummary(
            batches=self._batches,
            rows=self._rows,
            duplicates=self._duplicates,
            seconds=time.perf_counter() - self._start,
            last=self._last,
        )


def fit_bar(label: str, max_rows: int) -> Progress:
    """The progress bar of a fit (one task): rows learnt of the most allowed, then `fit_state`."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows  {task.fields[state]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    progress.add_task(label, total=max_rows, state="")
    return progress


def fit_state(selection: Selection, rows: int) -> str:
    """Passes over the data, the pick and its margin, and how many candidates have converged
    (all of them: done)."""
    done = sum(bool(m.converged) for m in selection.models)
    best = selection.best_latent_dim or "-"
    margin = "" if selection.margin is None else f" (margin {selection.margin:.1f})"
    return (
        f"pass {selection.rows_seen / rows:.1f}  best H [cyan]{best}[/cyan]{margin}  "
        f"converged {done}/{len(selection.models)} candidates"
    )
