"""A bounded per-stream history of BIC scores, thinned so that it spans the whole stream.

Steps are recorded when step % stride == 0. When more than `capacity` points are held, every
point whose step is not a multiple of 2 * stride is dropped and the stride doubles: memory stays
at most `capacity` points however long the stream runs, while the oldest steps stay visible at a
coarser resolution. The rule depends only on the steps, so replaying the same batches rebuilds
the same history (and the store mirrors it row for row).
"""

import bisect
from dataclasses import dataclass

from streaming.report import StepReport


@dataclass(frozen=True)
class Point:
    """One recorded step: the selection and every candidate's entropy BIC and batch BIC."""

    step: int
    best_latent_dim: int
    bic: tuple[float, ...]  # in the order of the stream's latent_dims
    batch_bic: tuple[float | None, ...]


@dataclass(frozen=True)
class Change:
    """What one `add` did, for the store to mirror: a point to insert, a thinning to apply."""

    added: Point | None
    thinned_to: int | None  # the new stride, when points were dropped


class History:
    """Points of one stream, oldest first; at most `capacity` of them."""

    def __init__(self, capacity: int, stride: int = 1, points: list[Point] | None = None) -> None:
        self.capacity = capacity
        self.stride = stride
        self._points = list(points or [])
        self._steps = [p.step for p in self._points]

    def __len__(self) -> int:
        return len(self._points)

    @staticmethod
    def point(report: StepReport) -> Point:
        return Point(
            step=report.step,
            best_latent_dim=report.best_latent_dim,
            bic=tuple(m.bic for m in report.models),
            batch_bic=tuple(m.batch_bic for m in report.models),
        )

    def add(self, report: StepReport) -> Change:
        """Record the report if its step falls on the stride; thin when over capacity."""
        if report.step % self.stride != 0:
            return Change(None, None)
        point = self.point(report)
        self._points.append(point)
        self._steps.append(point.step)
        if len(self._points) <= self.capacity:
            return Change(point, None)
        self.stride *= 2
        self._points = [p for p in self._points if p.step % self.stride == 0]
        self._steps = [p.step for p in self._points]
        return Change(point, self.stride)

    def since(self, after: int, limit: int) -> list[Point]:
        """Up to `limit` points with step > after, oldest first."""
        start = bisect.bisect_right(self._steps, after)
        return self._points[start : start + limit]
