"""Data-free scores of a linear VAE: entropy ELBO, BIC, posterior-collapse statistics.

Everything here reads only the H + 1 variance parameters of each model (docs/math.md, Corollary 1):
no data, no decoder pass, O(H) work per model. The bank copies those few numbers to the host
once per step, so these are float64 numpy functions (arrays of M models padded to Hmax latents).
"""

import functools
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

LOG_2PI_E = math.log(2 * math.pi * math.e)
PRIOR_ENTROPY_PER_LATENT = 0.5 * LOG_2PI_E  # 1/2 log(2 pi e) = 1.4189..., Eq. 24's upper bound


def encoder_entropies(tau2: Array) -> Array:
    """H_h = 1/2 log(2 pi e tau_h^2) (Eq. 24): (M, Hmax) -> (M, Hmax)."""
    return _entropies(np.log(tau2))


def _entropies(log_tau2: Array) -> Array:
    return 0.5 * (LOG_2PI_E + log_tau2)


def s_reg(tau2: Array, mask: Array) -> Array:
    """S_reg = sum_h log tau_h = 1/2 sum_h log tau_h^2 (Eq. 23, 72): (M, Hmax) -> (M,). <= 0."""
    return _s_reg(np.log(tau2), mask)


def _s_reg(log_tau2: Array, mask: Array) -> Array:
    return 0.5 * np.add.reduce(log_tau2 * mask, -1)  # ndarray.sum's reduce, at less cost


def s_rec(sigma2: Array, dim: int) -> Array:
    """S_rec = -(D/2) log(2 pi e sigma^2) (Eq. 72): (M,) -> (M,)."""
    return -0.5 * dim * (LOG_2PI_E + np.log(sigma2))


def entropy_elbo(tau2: Array, sigma2: Array, mask: Array, dim: int) -> Array:
    """F_ent = 1/2 sum_h log tau_h^2 - (D/2) log(2 pi e sigma^2) per data point (Eq. 20).

    tau2: (M, Hmax) with padded entries ignored through mask (M, Hmax); sigma2: (M,); -> (M,).
    Higher is better. At convergence it equals the p-PCA maximum log-likelihood (Eq. 25).
    """
    return elbo_terms(tau2, sigma2, mask, dim)[0]


def elbo_terms(
    tau2: Array, sigma2: Array, mask: Array, dim: int
) -> tuple[Array, Array, Array, Array]:
    """(F_ent, S_reg, S_rec, the encoder entropies) (Eq. 20, 23, 72, 24), each term computed
    once and both tau^2 terms from one log of tau^2: what a report shows."""
    log_tau2 = np.log(tau2)
    reg, rec = _s_reg(log_tau2, mask), s_rec(sigma2, dim)
    return reg + rec, reg, rec, _entropies(log_tau2)


def bic(elbo: Array, latent_dims: Sequence[int] | NDArray[np.int64], dim: int, n: int) -> Array:
    """BIC = P log N - 2 N F with P = H D + 1 (Eq. 27). Lower is better. Shapes (M,) -> (M,)."""
    return _penalty(tuple(latent_dims), dim, n) - 2.0 * n * elbo


@functools.cache
def _penalty(latent_dims: tuple[int, ...], dim: int, n: int) -> Array:
    """P log N per candidate: the same for every step of a learner (read-only)."""
    params = np.array(latent_dims, dtype=np.float64) * dim + 1
    out = params * math.log(n)
    out.flags.writeable = False
    return out
