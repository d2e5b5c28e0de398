"""Preprocessing as a step of the bank's pipeline: a running per-column standardizer.

With `standardize`, the bank models z = (x - m) / s, m and s the running mean and standard
deviation of every column over all rows seen (Welford's update, exact for the rows seen). The
scores are then those of p-PCA of the standardized data (PCA of the correlation matrix): a
different model from p-PCA of the raw data, the right one when columns are in different units
(docs/math.md). Rows go in raw (learn, transform) and reconstructions come out raw.
"""

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Scaler:
    """Running column mean and standard deviation of the rows seen so far."""

    rows: int
    mean: torch.Tensor  # (D,)
    m2: torch.Tensor  # (D,) sum of squared deviations from the mean

    @classmethod
    def empty(cls, dim: int, device: torch.device) -> "Scaler":
        zeros = torch.zeros(dim, dtype=torch.float64, device=device)
        return cls(0, zeros, zeros.clone())

    def updated(self, x: torch.Tensor) -> "Scaler":
        """The scaler after the batch x (B, D) (Chan et al.'s pairwise merge); self unchanged."""
        xb = x.double()
        rows = x.shape[0]
        total = self.rows + rows
        mean_b = xb.mean(0)
        delta = mean_b - self.mean
        m2_b = (xb - mean_b).square().sum(0)
        mean = self.mean + delta * (rows / total)
        m2 = self.m2 + m2_b + delta.square() * (self.rows * rows / total)
        return Scaler(total, mean, m2)

    @property
    def scale(self) -> torch.Tensor:
        """Column standard deviations (D,), 1 where a column has not varied yet."""
        std = (self.m2 / max(self.rows, 1)).sqrt()
        return torch.where(std > 0, std, torch.ones_like(std))

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """(x - m) / s in x's dtype."""
        return ((x.double() - self.mean) / self.scale).to(x.dtype)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """z s + m: back to the data's units."""
        return (z.double() * self.scale + self.mean).to(z.dtype)
