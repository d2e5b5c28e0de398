"""From a rule's variances to the report: every candidate's data-free scores and the pick.

One host copy per step of M (Hmax + 3) numbers (sigma^2, the batch ELBO, tau^2, ...), then float64
numpy: the entropy ELBO (Corollary 1, Eq. 20), its BIC (Eq. 27), the encoder entropies and
collapse (Eq. 24), S_reg and S_rec (Eq. 23, 72). The pick is the lowest BIC, held against an H
whose BIC is lower by at most `switch_margin` (hysteresis).
"""

import math

import numpy as np
import torch

from streaming import entropy
from streaming.arrays import Array, Arrays
from streaming.report import ModelScore
from streaming.spec import StreamSpec


def to_host(
    ar: Arrays, tau2: Array, sigma2: Array, batch: Array | None, row_var: Array | None
) -> np.ndarray:
    """(M, Hmax + 3) float64 on the host, in one copy: sigma^2, the batch ELBO, the variance of
    its rows' log-likelihoods (NaN: none), tau^2."""
    if isinstance(tau2, torch.Tensor):
        tau2, sigma2 = tau2.detach().double(), sigma2.detach().double()
    nan = sigma2 * math.nan
    cols = [sigma2, nan if batch is None else batch, nan if row_var is None else row_var]
    return ar.host(ar.cat([*(c[:, None] for c in cols), tau2], 1))


def model_scores(
    spec: StreamSpec, dim: int, host: np.ndarray, mask: np.ndarray, flags: np.ndarray
) -> tuple[ModelScore, ...]:
    """Every candidate's scores from to_host's array, with its converged flag."""
    sigma2, batch, tau2 = host[:, 0], host[:, 1], host[:, 3:]
    dims = np.array(spec.latent_dims)
    n = spec.bic_n
    s_reg, s_rec = entropy.s_reg(tau2, mask), entropy.s_rec(sigma2, dim)
    f_ent = entropy.entropy_elbo(tau2, sigma2, mask, dim)  # Eq. 20
    bic = entropy.bic(f_ent, dims, dim, n)  # Eq. 27
    batch_bic = entropy.bic(batch, dims, dim, n)
    ent = entropy.encoder_entropies(tau2)  # Eq. 24
    threshold = spec.collapse_threshold
    models = []
    for i, h in enumerate(spec.latent_dims):
        collapsed = tuple(bool(e > threshold) for e in ent[i, :h])
        has_batch = bool(np.isfinite(batch[i]))
        models.append(
            ModelScore(
                latent_dim=h,
                entropy_elbo=float(f_ent[i]),
                bic=float(bic[i]),
                batch_elbo=float(batch[i]) if has_batch else None,
                batch_bic=float(batch_bic[i]) if has_batch else None,
                sigma2=float(sigma2[i]),
                tau2=tuple(tau2[i, :h].tolist()),
                encoder_entropies=tuple(ent[i, :h].tolist()),
                collapsed=collapsed,
                active_latents=h - sum(collapsed),
                s_reg=float(s_reg[i]),
                s_rec=float(s_rec[i]),
                converged=bool(flags[i]),
            )
        )
    return tuple(models)


def pick(bic: np.ndarray, held: int, margin: float) -> int:
    """Index of the pick: the lowest BIC, unless the held pick's BIC is within `margin` of it
    (held -1: none yet). Ties go to the first candidate."""
    best = int(bic.argmin())
    if held < 0 or bic[best] < bic[held] - margin:
        return best
    return held
