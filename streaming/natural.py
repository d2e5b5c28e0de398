"""The default online step: Fisher-scaled updates of the decoder with the exact encoder
(docs/math.md, "The natural step").

Adam's step has a fixed size in parameter units, so on data in raw units (|w| in the hundreds)
and along the model's symmetries it barely moves, and the entropy ELBO stays far from the
p-PCA optimum. This step is expressed in the data's own units instead. Per candidate, with the
batch centred on the running column mean c (the exact maximum-likelihood mu):

    x~ = x - c;  W^T W diagonal (kept so, below);  m_h = |w_h|^2 + sigma^2
    nu = W^T x~ / m                       the exact posterior mean      (M^-1 W^T x~)
    tau_h^2 = sigma^2 / m_h               the exact posterior variance  (the ELBO's maximiser)
    r = x~ - W nu;  E = mean |r|^2 + sum_h tau_h^2 |w_h|^2
    W      += eta (mean r nu^T - W diag tau^2)          = eta sigma^2 dF/dW
    sigma^2 += eta (E / D - sigma^2)
    W <- W A,  A = (I + eta (mean nu nu^T + diag tau^2 - I))^(1/2)   scale balance
    W <- W Q,  Q the eigenvectors of W^T W (descending)              rotation

The last two moves do not change what the step aims at: the scale balance drives the latents'
second moment to the prior's (true at the optimum), which Adam-like steps reach only at a rate
sigma^2 / |w|^2, and the rotation keeps W's columns orthogonal so that the diagonal posterior
q(z|x) is exact. The encoder (V, b, tau) is the exact posterior of the decoder after every step.
eta follows `Schedule`, restarted when the stream changes (streaming/adaptive.py).
"""

import math
from dataclasses import dataclass

import torch

from streaming import objectives


@dataclass(frozen=True)
class Schedule:
    """eta_t = max(floor, start / (1 + t / decay_batches)), t = batches since the (re)start."""

    start: float = 0.3  # step size of the first batches after the start or a restart
    floor: float = 0.001  # smallest step size (how fast a stationary stream is still followed)
    decay_batches: float = 50.0  # batches until eta has halved (late: eta ~ 15 / t)

    def eta(self, t: int) -> float:
        return max(self.floor, self.start / (1.0 + t / self.decay_batches))


SCHEDULE = Schedule()
MIN_SIGMA2 = 1e-30  # sigma^2 floor: data exactly in an H-dim subspace would drive it to 0


@dataclass
class Moments:
    """Running column mean c (D,) over every row seen, forgetting at the step size."""

    mean: torch.Tensor  # (D,)
    rows: int  # rows folded in

    def update(self, x: torch.Tensor, eta: float) -> torch.Tensor:
        """Fold the batch x (B, D) in; returns the new mean (not stored: see commit)."""
        weight = max(x.shape[0] / (self.rows + x.shape[0]), eta)
        return self.mean + (x.mean(0) - self.mean) * weight


def first_guess(
    x: torch.Tensor, W0: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Starting point from the first batch x (B, D): c = its mean, sigma^2 = its mean column
    variance, W = W0 (M, D, Hmax; the seeded nn.Linear-style draw) with rows scaled by the
    columns' standard deviations, rotated. -> (c (D,), W (M, D, Hmax), sigma2 (M,))."""
    c = x.mean(0)
    var = x.var(0, unbiased=False) if x.shape[0] > 1 else torch.zeros_like(c)
    scale2 = float(var.mean())
    if not scale2 > 0:  # one row, or constant columns: the size of the numbers themselves
        scale2 = float(x.square().mean()) or 1.0
    std = torch.where(var > 0, var.sqrt(), torch.full_like(var, math.sqrt(scale2)))
    W = rotate(W0 * std[None, :, None] * mask[:, None, :], mask)
    sigma2 = torch.full((W.shape[0],), scale2, dtype=x.dtype, device=x.device)
    return c, W, sigma2


def posterior(W: torch.Tensor, sigma2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(|w_h|^2 (M, Hmax), tau^2 = sigma^2 / (|w_h|^2 + sigma^2) (M, Hmax)) for orthogonal W."""
    w_norm2 = W.square().sum(1)
    return w_norm2, sigma2[:, None] / (w_norm2 + sigma2[:, None])


def encoder(
    W: torch.Tensor, sigma2: torch.Tensor, c: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The exact posterior as the bank's encoder nu = V x + b: (V (M, Hmax, D), b (M, Hmax),
    tau^2 (M, Hmax)); padded latents get V = b = 0 and tau^2 = 1."""
    w_norm2, tau2 = posterior(W, sigma2)
    V = W.transpose(1, 2) / (w_norm2 + sigma2[:, None])[:, :, None] * mask[:, :, None]
    b = -(V @ c)
    return V, b, torch.where(mask > 0, tau2, torch.ones_like(tau2))


def rotate(W: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """W Q with Q the eigenvectors of W^T W, largest first: W's columns become orthogonal,
    p(x) unchanged. Padded latents get eigenvalue -1 so they stay apart and last."""
    # float64: |w_h|^2 spans the data's eigenvalues (1e5 .. 1e-4 on raw real data); float32's
    # eigh would mix the small columns with rounding noise of the large ones at every step
    W64 = W.double()
    gram = W64.transpose(1, 2) @ W64 - torch.diag_embed(1.0 - mask.double())  # (M, Hmax, Hmax)
    _, vecs = torch.linalg.eigh(gram)  # ascending
    return (W64 @ vecs.flip(-1)).to(W.dtype) * mask[:, None, :]


def balance(W: torch.Tensor, second: torch.Tensor, eta: float) -> torch.Tensor:
    """W (I + eta (second - I))^(1/2): second (M, Hmax, Hmax) the latents' mean second moment
    (identity on padded latents)."""
    eye = torch.eye(second.shape[-1], dtype=W.dtype, device=W.device)
    vals, vecs = torch.linalg.eigh(eye + eta * (second - eye))
    root = (vecs * vals.clamp_min(0.0).sqrt()[:, None, :]) @ vecs.transpose(1, 2)
    return W @ root


@torch.no_grad()
def step(
    x: torch.Tensor,
    c: torch.Tensor,
    W: torch.Tensor,
    sigma2: torch.Tensor,
    mask: torch.Tensor,
    eta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step on the batch x (B, D) around the mean c (D,); W (M, D, Hmax) orthogonal and
    masked, sigma2 (M,). Returns (batch ELBO before the step (M,), new W, new sigma2); the
    arguments are not modified."""
    rows, dim = x.shape
    xt = x - c  # (B, D)
    w_norm2, tau2 = posterior(W, sigma2)  # (M, Hmax)
    nu = (xt @ W) / (w_norm2 + sigma2[:, None])[:, None, :] * mask[:, None, :]  # (M, B, Hmax)
    r = objectives.residual(xt, nu, W, torch.zeros_like(c)[None])  # (M, B, D)
    tau2 = torch.where(mask > 0, tau2, torch.ones_like(tau2))
    sq_err = r.square().sum(-1) + (tau2 * w_norm2).sum(-1, keepdim=True)  # (M, B)
    elbo = (
        objectives.gaussian_rec(sq_err, sigma2, dim) - objectives.kl_to_prior(nu, tau2, mask)
    ).mean(-1)  # (M,)
    W = W + eta * (r.transpose(1, 2) @ nu / rows - W * tau2[:, None, :])
    sigma2 = (sigma2 + eta * (sq_err.mean(-1) / dim - sigma2)).clamp_min(MIN_SIGMA2)
    second = nu.transpose(1, 2) @ nu / rows + torch.diag_embed(tau2)  # (M, Hmax, Hmax)
    W = rotate(balance(W, second, eta) * mask[:, None, :], mask)
    return elbo, W, sigma2
