"""Preprocessing as a stage of the learner's pipeline: a running per-column standardizer.

With `standardize`, the candidates model z = (x - m) / s, m and s the running mean and standard
deviation of every column over all rows seen (Chan et al.'s merge, exact for the rows seen).
The scores are then those of p-PCA of the standardized data (PCA of the correlation matrix): a
different model from p-PCA of the raw data, the right one when columns are in different units
(docs/math.md). The stage applies the same way on the way in (learn, transform: raw rows in)
and on the way out (reconstructions in raw units; the served model carries m and s).
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from streaming.arrays import Array, Arrays


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
