"""Synthetic streams: the paper's experiment (Appendix A) and stationary p-PCA data."""

import numpy as np
from numpy.typing import NDArray


def random_orthogonal(dim: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """U from the SVD of a standard normal D x D matrix (the paper's construction)."""
    u, _, _ = np.linalg.svd(rng.standard_normal((dim, dim)))
    return u


def paper_stream(
    intrinsic_dims: tuple[int, ...] = (6, 2, 4),
    chunk_size: int = 100_000,
    dim: int = 10,
    noise: float = 0.1,
    seed: int = 0,
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The paper's non-stationary stream: consecutive chunks of different intrinsic dimension.

    x = U (s * g) + noise * e with g, e standard normal, s = linspace(1, 5, D) and s[k:] = 0 for
    intrinsic dimension k, one random orthogonal U for the whole stream.
    Returns X (N, D) float32 and the true intrinsic dimension of every row (N,).
    """
    rng = np.random.default_rng(seed)
    u = random_orthogonal(dim, rng)
    chunks, truth = [], []
    for k in intrinsic_dims:
        if not 0 <= k <= dim:
            raise ValueError(f"intrinsic dimension must be in [0, {dim}], got {k}")
        scales = np.linspace(1.0, 5.0, dim)
        scales[k:] = 0.0
        g = rng.standard_normal((chunk_size, dim))
        e = rng.standard_normal((chunk_size, dim))
        chunks.append((g * scales) @ u.T + noise * e)
        truth.append(np.full(chunk_size, k, dtype=np.int64))
    return np.concatenate(chunks).astype(np.float32), np.concatenate(truth)


def ppca_data(
    n: int,
    dim: int,
    intrinsic: int,
    noise: float = 0.2,
    mean: NDArray[np.floating] | None = None,
    seed: int = 0,
    scales: NDArray[np.floating] | None = None,
) -> NDArray[np.float32]:
    """Stationary p-PCA data: x = mean + U_k (s * g) + noise * e, rows (n, dim) float32.

    scales (length intrinsic) default to linspace(1, 3, intrinsic)[::-1]; mean defaults to zero.
    """
    if not 0 <= intrinsic <= dim:
        raise ValueError(f"intrinsic must be in [0, {dim}], got {intrinsic}")
    rng = np.random.default_rng(seed)
    u = random_orthogonal(dim, rng)[:, :intrinsic]
    s = np.linspace(1.0, 3.0, intrinsic)[::-1] if scales is None else np.asarray(scales)
    g = rng.standard_normal((n, intrinsic))
    x = (g * s) @ u.T + noise * rng.standard_normal((n, dim))
    if mean is not None:
        x = x + np.asarray(mean, dtype=np.float64)
    return x.astype(np.float32)
