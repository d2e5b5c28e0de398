"""Data-free scores of a linear VAE: entropy ELBO, BIC, posterior-collapse statistics.

Everything here reads only the H + 1 variance parameters of each model (MATH.md, Corollary 1):
no data, no decoder pass, O(H) work per model.
"""

import math

import torch

LOG_2PI_E = math.log(2 * math.pi * math.e)
PRIOR_ENTROPY_PER_LATENT = 0.5 * LOG_2PI_E  # 1/2 log(2 pi e) = 1.4189..., Eq. 24's upper bound


def encoder_entropies(tau2: torch.Tensor) -> torch.Tensor:
    """H_h = 1/2 log(2 pi e tau_h^2) (Eq. 24): (M, Hmax) -> (M, Hmax)."""
    return 0.5 * (LOG_2PI_E + torch.log(tau2))


def s_reg(tau2: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """S_reg = sum_h log tau_h = 1/2 sum_h log tau_h^2 (Eq. 23, 72): (M, Hmax) -> (M,). <= 0."""
    return 0.5 * (torch.log(tau2) * mask).sum(-1)


def s_rec(sigma2: torch.Tensor, dim: int) -> torch.Tensor:
    """S_rec = -(D/2) log(2 pi e sigma^2) (Eq. 72): (M,) -> (M,)."""
    return -0.5 * dim * (LOG_2PI_E + torch.log(sigma2))


def entropy_elbo(
    tau2: torch.Tensor, sigma2: torch.Tensor, mask: torch.Tensor, dim: int
) -> torch.Tensor:
    """F_ent = 1/2 sum_h log tau_h^2 - (D/2) log(2 pi e sigma^2) per data point (Eq. 20).

    tau2: (M, Hmax) with padded entries ignored through mask (M, Hmax); sigma2: (M,); -> (M,).
    Higher is better. At convergence it equals the p-PCA maximum log-likelihood (Eq. 25).
    """
    return s_reg(tau2, mask) + s_rec(sigma2, dim)


def bic(elbo: torch.Tensor, latent_dims: torch.Tensor, dim: int, n: int) -> torch.Tensor:
    """BIC = P log N - 2 N F with P = H D + 1 (Eq. 27). Lower is better. Shapes (M,) -> (M,)."""
    params = latent_dims.to(elbo.dtype) * dim + 1
    return params * math.log(n) - 2.0 * n * elbo
