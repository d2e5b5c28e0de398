"""The fitted covariance's effective rank and top-H variance share from the variances alone
(streaming/report.py), against numpy's eigenvalues of W W^T + sigma^2 I."""

import math

import numpy as np
import pytest

from streaming.report import effective_rank, variance_share


def _stationary(dim: int, spread: list[float], sigma2: float) -> tuple[np.ndarray, list[float]]:
    """C = W W^T + sigma2 I for W with orthogonal columns of squared norms `spread`, and the
    encoder variances at the stationary point, tau_h^2 = sigma2 / (spread_h + sigma2)."""
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.standard_normal((dim, len(spread))))
    w = u * np.sqrt(spread)
    c = w @ w.T + sigma2 * np.eye(dim)
    return c, [sigma2 / (s + sigma2) for s in spread]


def _rank_of(eigenvalues: np.ndarray) -> float:
    p = eigenvalues / eigenvalues.sum()
    return math.exp(-float(np.sum(p * np.log(p))))


@pytest.mark.parametrize("dim", [5, 64, 1024])
def test_effective_rank_equals_that_of_the_eigenvalues_of_c(dim: int) -> None:
    c, tau2 = _stationary(dim, [9.0, 4.0, 1.5], sigma2=0.2)

    eigenvalues = np.linalg.eigvalsh(c)

    assert effective_rank(0.2, tau2, dim) == pytest.approx(_rank_of(eigenvalues), rel=1e-12)


def test_variance_share_equals_the_top_h_eigenvalues_over_the_trace() -> None:
    c, tau2 = _stationary(20, [9.0, 4.0, 1.5], sigma2=0.2)

    eigenvalues = np.sort(np.linalg.eigvalsh(c))[::-1]

    share = variance_share(0.2, tau2, 20)
    assert share == pytest.approx(eigenvalues[:3].sum() / eigenvalues.sum(), rel=1e-12)


def test_an_isotropic_model_has_full_rank_and_its_share_is_h_over_d() -> None:
    # tau^2 = 1: every latent collapsed onto the prior, C = sigma^2 I
    assert effective_rank(0.5, [1.0, 1.0], 10) == pytest.approx(10.0, rel=1e-12)
    assert variance_share(0.5, [1.0, 1.0], 10) == pytest.approx(0.2, rel=1e-12)


def test_one_dominant_direction_gives_an_effective_rank_near_one() -> None:
    rank = effective_rank(1e-6, [1e-9], 100)  # l_1 = 1000, the other 99 are 1e-6

    assert 1.0 < rank < 1.001
