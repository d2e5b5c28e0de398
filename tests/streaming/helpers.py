"""Shared data and exact references of the core's tests."""

import math

import numpy as np
from sklearn.datasets import load_wine

from streaming import ppca

WINE = load_wine().data.astype(np.float32)  # 178 x 13, raw units (proline ~ 1e3, hue ~ 1)


def exact(x: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    """L_ML(H) per row of the data set x (float64, 1/n covariance), for every H in dims."""
    lam = np.linalg.eigvalsh(ppca.covariance(x.astype(np.float64)))
    return np.array([ppca.ml_loglik(lam, h) for h in dims])


def exact_pick(lls: np.ndarray, dims: tuple[int, ...], dim: int, n: int = 10) -> int:
    bic = [(h * dim + 1) * math.log(n) - 2 * n * ll for h, ll in zip(dims, lls, strict=True)]
    return dims[int(np.argmin(bic))]


def shuffled(x: np.ndarray, batches: int, rows: int, seed: int) -> list[np.ndarray]:
    """`batches` batches of `rows` rows drawn from x with replacement."""
    rng = np.random.default_rng(seed)
    return [x[rng.integers(0, len(x), rows)] for _ in range(batches)]
