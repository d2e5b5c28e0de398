"""Preprocessing as a stage of the learner's pipeline: a running per-column standardizer.

With `standardize`, the candidates model z = (x - m) / s, m and s the running mean and standard
deviation of every column over all rows seen (Chan et al.'s merge, exact for the rows seen).
The scores are then those of p-PCA of the standardized data (PCA of the correlation matrix): a
different model from p-PCA of the raw data, the right one when columns are in different units
(docs/math.md). The stage applies the same way on the way in (learn, transform: raw rows in)
and on the way out (reconstructions in raw units; the served model carries m and s).

m and s move with every batch, and the rows a rule learnt from were standardized with the m and
s of their time: a fit to that mixture is not the fit to the rows standardized with today's
(raw digits: F_ent 3.2 nats, 4%, above the exact fit of the same 630 rows, still 1% at 3,000).
`Standardizer` keeps the rule's state in the coordinates of one scaler, `ref`, and when the
running scaler has moved from it by more than REF_TOL (a relative change of a column's scale, or
a shift of its mean in its standard deviations) hands the rule the affine map z' = z g + h that
re-expresses everything it learnt in the running scaler's coordinates: the state then is
exactly that of every row standardized with today's m and s (up to REF_TOL).
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from streaming.arrays import Array, Arrays

REF_TOL = 1e-3  # the running scaler may move this far from the rule's before a re-expression


@dataclass(frozen=True)
class Scaler:
    """Running column mean and standard deviation of the rows seen so far (float64 arrays)."""

    ar: Arrays
    rows: int
    mean: Array  # (D,)
    m2: Array  # (D,) sum of squared deviations from the mean

    @classmethod
    def empty(cls, ar: Arrays, dim: int) -> "Scaler":
        return cls(ar, 0, ar.zeros(dim), ar.zeros(dim))

    def updated(self, x: Array) -> "Scaler":
        """The scaler after the batch x (B, D) float64; self unchanged."""
        rows = x.shape[0]
        total = self.rows + rows
        mean_b = x.mean(0)
        delta = mean_b - self.mean
        m2_b = ((x - mean_b) ** 2).sum(0)
        mean = self.mean + delta * (rows / total)
        m2 = self.m2 + m2_b + delta * delta * (self.rows * rows / total)
        return Scaler(self.ar, total, mean, m2)

    @property
    def scale(self) -> Array:
        """Column standard deviations (D,), 1 where a column has not varied yet."""
        std = (self.m2 / max(self.rows, 1)) ** 0.5
        return self.ar.xp.where(std > 0, std, 1.0)

    def transform(self, x: Array) -> Array:
        """(x - m) / s."""
        return (x - self.mean) / self.scale

    def inverse(self, z: Array) -> Array:
        """z s + m: back to the data's units."""
        return z * self.scale + self.mean

    def state(self) -> dict[str, object]:
        return {"rows": self.rows, "mean": self.ar.tensor(self.mean),
                "m2": self.ar.tensor(self.m2)}  # fmt: skip

    @classmethod
    def from_state(cls, ar: Arrays, state: dict[str, Any]) -> "Scaler":
        mean, m2 = (ar.asarray(np.asarray(state[k], dtype=np.float64)) for k in ("mean", "m2"))
        return cls(ar, int(state["rows"]), mean, m2)


Remap = tuple[Array, Array]  # (g, h) (D,): z' = z g + h, from one scaler's z-scores to another's


@dataclass(frozen=True)
class Standardizer:
    """The stage: the running statistics of every row seen (`stats`) and the scaler the rule's
    state is expressed in (`ref`: what transform, reconstruct and the served model use)."""

    ref: Scaler
    stats: Scaler

    @classmethod
    def empty(cls, ar: Arrays, dim: int) -> "Standardizer":
        s = Scaler.empty(ar, dim)
        return cls(s, s)

    def step(self, x: Array, remaps: bool) -> tuple[Array, Remap | None, "Standardizer"]:
        """The batch x (B, D) float64 for the rule, the map that re-expresses the rule's state
        first (None: none), and the stage after it; self unchanged. A rule that cannot take
        maps (`remaps` False: the gradient rules) gets each batch in the running scaler's
        coordinates."""
        stats = self.stats.updated(x)
        if not remaps:
            return stats.transform(x), None, Standardizer(stats, stats)
        ar, ref = self.ar, self.ref
        g = ref.scale / stats.scale
        h = (ref.mean - stats.mean) / stats.scale
        xp = ar.xp
        if float(xp.abs(xp.log(g)).max()) <= REF_TOL and float(xp.abs(h).max()) <= REF_TOL:
            return ref.transform(x), None, Standardizer(ref, stats)
        return ref.transform(x), (g, h), Standardizer(stats, stats)

    @property
    def ar(self) -> Arrays:
        return self.ref.ar

    def state(self) -> dict[str, object]:
        return {**self.ref.state(), "stats": self.stats.state()}

    @classmethod
    def from_state(cls, ar: Arrays, state: dict[str, Any]) -> "Standardizer":
        """A stage from its state (a state without `stats`, saved before the stage kept the
        running scaler apart: the rule's scaler was the running one)."""
        ref = Scaler.from_state(ar, state)
        stats = state.get("stats")
        return cls(ref, ref if stats is None else Scaler.from_state(ar, stats))
