"""From a rule's variances to the report: every candidate's data-free scores and the pick.

One host copy per step of M (Hmax + 3) numbers (sigma^2, the batch ELBO, tau^2, ...), then float64
numpy: the entropy ELBO (Corollary 1, Eq. 20), its BIC (Eq. 27), the encoder entropies and
collapse (Eq. 24), S_reg and S_rec (Eq. 23, 72). The pick is the lowest BIC, held against an H
whose BIC is lower by at most `switch_margin` (hysteresis).
"""

import math
from typing import NamedTuple

import numpy as np
import torch

from streaming import entropy
from streaming.arrays import Array, Arrays
from streaming.report import ModelScore
from streaming.spec import StreamSpec

TAU2 = 4  # the column where tau^2 starts in to_host's array


def to_host(
    ar: Arrays,
    tau2: Array,
    sigma2: Array,
    batch: Array | None,
    row_var: Array | None,
    check: Array | None = None,
) -> np.ndarray:
    """(..., M, Hmax + 4) float64 on the host, in one copy: sigma^2, the batch ELBO, the variance
    of its rows' log-likelihoods (NaN: none), a number that is finite when the step was (0:
    none), tau^2."""
    if isinstance(tau2, torch.Tensor):
        tau2, sigma2 = tau2.detach().double(), sigma2.detach().double()
    nan = sigma2 * math.nan if batch is None or row_var is None else None
    cols = [sigma2, nan if batch is None else batch, nan if row_var is None else row_var,
            sigma2 * 0.0 if check is None else check]  # fmt: skip
    return ar.host(ar.cat([c[..., None] for c in cols] + [tau2], -1))


class Scores(NamedTuple):
    """Every candidate's data-free scores, float64 arrays (M,) but ent (M, Hmax) (with a
    leading stream axis when scored together)."""

    host: np.ndarray  # to_host's array: sigma^2, batch ELBO, row variance, tau^2
    f_ent: np.ndarray  # entropy ELBO (Eq. 20)
    bic: np.ndarray  # its BIC (Eq. 27)
    batch_bic: np.ndarray  # the BIC of the batch ELBO
    ent: np.ndarray  # (M, Hmax) encoder entropies (Eq. 24)
    s_reg: np.ndarray  # (Eq. 23, 72)
    s_rec: np.ndarray


def scored(spec: StreamSpec, dim: int, host: np.ndarray, mask: np.ndarray) -> Scores:
    """The scores of to_host's array (M, Hmax + 4), or of S such arrays (S, M, Hmax + 4): one
    set of float64 numpy operations for every H (and every stream)."""
    sigma2, batch, tau2 = host[..., 0], host[..., 1], host[..., TAU2:]
    f_ent, s_reg, s_rec, ent = entropy.elbo_terms(tau2, sigma2, mask, dim)  # Eq. 20, 24
    both = entropy.bic(np.array((f_ent, batch)), spec.latent_dims, dim, spec.bic_n)
    return Scores(host, f_ent, both[0], both[1], ent, s_reg, s_rec)


def one(s: Scores, i: int) -> Scores:
    """Stream i's scores of a stacked Scores."""
    return Scores(*(a[i] for a in s))


def model_scores(spec: StreamSpec, s: Scores, flags: list[bool]) -> tuple[ModelScore, ...]:
    """Every candidate's report entry, with its converged flag."""
    rows = zip(spec.latent_dims, s.host.tolist(), s.f_ent.tolist(), s.bic.tolist(),
               s.batch_bic.tolist(), s.s_reg.tolist(), s.s_rec.tolist(), s.ent.tolist(),
               (s.ent > spec.collapse_threshold).tolist(), flags, strict=True)  # fmt: skip
    models = []
    for h, host, f, b, eb, sr, sc, en, col, flag in rows:
        s2, e, tau2 = host[0], host[1], tuple(host[TAU2 : TAU2 + h])
        collapsed = tuple(col[:h])
        batch_elbo, batch_bic = (e, eb) if e == e else (None, None)  # NaN: no batch measured
        models.append(ModelScore(h, f, b, batch_elbo, batch_bic, s2, tau2, tuple(en[:h]),
                                 collapsed, h - collapsed.count(True), sr, sc, flag))  # fmt: skip
    return tuple(models)


def pick(bic: np.ndarray, held: int, margin: float) -> int:
    """Index of the pick: the lowest BIC, unless the held pick's BIC is within `margin` of it
    (held -1: none yet). Ties go to the first candidate."""
    best = int(bic.argmin())
    if held < 0 or bic[best] < bic[held] - margin:
        return best
    return held
