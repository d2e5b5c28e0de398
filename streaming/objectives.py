"""The training objective of a stack of linear VAEs on one batch (docs/math.md, Eq. 2).

Shapes: M models stacked and padded to Hmax latents (mask (M, Hmax) marks the real ones),
B rows of dimension D. Padded latents contribute nothing to any term, so their parameters get
zero gradients and the stack trains exactly like M separate models.
"""

import math

import torch
from torch.nn.functional import softplus

LOG_2PI = math.log(2 * math.pi)


def encoder_means(
    x: torch.Tensor, V: torch.Tensor, b: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """nu_n = V x_n + b for every model: x (B, D), V (M, Hmax, D), b (M, Hmax) -> (M, B, Hmax)."""
    return (torch.einsum("bd,mhd->mbh", x, V) + b[:, None, :]) * mask[:, None, :]


def kl_to_prior(nu: torch.Tensor, tau2: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x_n) || N(0, I)) = 1/2 sum_h (tau_h^2 + nu_nh^2 - 1 - log tau_h^2): -> (M, B)."""
    per_latent = tau2[:, None, :] + nu.square() - 1.0 - torch.log(tau2)[:, None, :]
    return 0.5 * (per_latent * mask[:, None, :]).sum(-1)


def gaussian_rec(sq_err: torch.Tensor, sigma2: torch.Tensor, dim: int) -> torch.Tensor:
    """E_q log N(x; W z + mu, sigma^2 I) given E_q ||x - W z - mu||^2: (M, B), (M,) -> (M, B)."""
    s2 = sigma2[:, None]
    return -0.5 * dim * (LOG_2PI + torch.log(s2)) - sq_err / (2.0 * s2)


def residual(x: torch.Tensor, nu: torch.Tensor, W: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """r_n = x_n - W nu_n - mu for every model: x (B, D), nu (M, B, Hmax), W (M, D, Hmax)
    masked, mu (M, D) -> (M, B, D)."""
    return x[None] - torch.bmm(nu, W.transpose(1, 2)) - mu[:, None, :]


def analytic_sq_err(
    x: torch.Tensor, nu: torch.Tensor, W: torch.Tensor, mu: torch.Tensor, tau2: torch.Tensor
) -> torch.Tensor:
    """E_q ||x_n - W z - mu||^2 = ||x_n - W nu_n - mu||^2 + sum_h tau_h^2 ||w_h||^2 (docs/math.md).

    x (B, D), nu (M, B, Hmax), W (M, D, Hmax) masked, mu (M, D), tau2 (M, Hmax) -> (M, B).
    """
    trace = (tau2 * W.square().sum(1)).sum(-1)  # (M,)
    return residual(x, nu, W, mu).square().sum(-1) + trace[:, None]


def mc_sq_err(
    x: torch.Tensor,
    nu: torch.Tensor,
    W: torch.Tensor,
    mu: torch.Tensor,
    tau2: torch.Tensor,
    samples: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Monte Carlo E_q ||x_n - W z - mu||^2 with z = nu + tau * eps (reparameterised): -> (M, B).

    With r = x - W nu - mu and d = tau * eps, each sample's error expands in latent space,
        ||r - W d||^2 = ||r||^2 - 2 (W^T r) . d + d^T (W^T W) d,
    the same numbers as decoding every sample, for O(S B H^2) work instead of O(S B D H).
    """
    eps = torch.randn(
        (samples, *nu.shape), generator=generator, device=nu.device, dtype=nu.dtype
    )  # (S, M, B, Hmax)
    d = tau2.sqrt()[None, :, None, :] * eps  # (S, M, B, Hmax)
    r = residual(x, nu, W, mu)  # (M, B, D)
    rw = torch.einsum("mbd,mdh->mbh", r, W)  # (M, B, Hmax)
    gram = torch.einsum("mdh,mdk->mhk", W, W)  # (M, Hmax, Hmax)
    cross = torch.einsum("mbh,smbh->mb", rw, d) / samples  # mean_s (W^T r) . d
    quad = torch.einsum("smbh,mhk,smbk->mb", d, gram, d) / samples  # mean_s d^T G d
    return r.square().sum(-1) - 2.0 * cross + quad


def batch_elbo(
    x: torch.Tensor,
    W: torch.Tensor,
    mu: torch.Tensor,
    sigma2: torch.Tensor,
    V: torch.Tensor,
    b: torch.Tensor,
    tau2: torch.Tensor,
    mask: torch.Tensor,
    samples: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """F_batch = (1/B) sum_n (rec_n - kl_n) for every model: -> (M,). Higher is better.

    samples=None uses the closed form; an integer uses that many reparameterised samples per row
    (the paper's estimator, S = 100), which needs a generator.
    """
    Wm = W * mask[:, None, :]  # padded columns of W are zero
    nu = encoder_means(x, V, b, mask)
    if samples is None:
        sq_err = analytic_sq_err(x, nu, Wm, mu, tau2)
    else:
        if generator is None:
            raise ValueError("the Monte Carlo estimator needs a torch.Generator")
        sq_err = mc_sq_err(x, nu, Wm, mu, tau2, samples, generator)
    rec = gaussian_rec(sq_err, sigma2, x.shape[-1])
    return (rec - kl_to_prior(nu, tau2, mask)).mean(-1)


def softplus_sq_grad(raw: torch.Tensor) -> torch.Tensor:
    """d softplus(a)^2 / da = 2 softplus(a) sigmoid(a): the chain from a variance to its free
    parameter."""
    return 2.0 * softplus(raw) * torch.sigmoid(raw)


@torch.no_grad()
def analytic_elbo_and_grads(
    x: torch.Tensor,
    W: torch.Tensor,
    mu: torch.Tensor,
    sigma_raw: torch.Tensor,
    V: torch.Tensor,
    b: torch.Tensor,
    tau_raw: torch.Tensor,
    mask: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The closed-form batch ELBO (M,) and its exact gradients for every stacked parameter.

    No autograd: a linear VAE's analytic ELBO has short gradients (per model, r_n = x_n - W nu_n
    - mu, E_n = ||r_n||^2 + sum_h tau_h^2 ||w_h||^2, F = mean_n (rec_n - kl_n)):

        dF/dmu = mean_n r_n / sigma^2,   dF/dW = (mean_n r_n nu_n^T - W diag(tau^2)) / sigma^2
        dF/dnu_n = (W^T r_n / sigma^2 - nu_n) / B
        dF/dV = sum_n dF/dnu_n x_n^T,    dF/db = sum_n dF/dnu_n
        dF/dsigma^2 = -D / (2 sigma^2) + mean_n E_n / (2 sigma^4)
        dF/dtau_h^2 = -||w_h||^2 / (2 sigma^2) - 1/2 + 1 / (2 tau_h^2)

    chained through softplus. Returned gradients are those of the loss -sum_m F_m, zero on
    padded latents. ~20 batched ops instead of autograd's ~100 small nodes.
    """
    rows, dim = x.shape
    Wm = W * mask[:, None, :]  # (M, D, Hmax)
    sigma2 = softplus(sigma_raw).square()  # (M,)
    tau2 = softplus(tau_raw).square()  # (M, Hmax)
    nu = encoder_means(x, V, b, mask)  # (M, B, Hmax)
    r = residual(x, nu, Wm, mu)  # (M, B, D)
    w_norm2 = Wm.square().sum(1)  # (M, Hmax)
    sq_err = r.square().sum(-1) + (tau2 * w_norm2).sum(-1, keepdim=True)  # (M, B)
    rec = gaussian_rec(sq_err, sigma2, dim)
    elbo = (rec - kl_to_prior(nu, tau2, mask)).mean(-1)  # (M,)
    inv = 1.0 / sigma2  # (M,)
    g_nu = (torch.bmm(r, Wm) * inv[:, None, None] - nu) * (mask[:, None, :] / rows)  # (M, B, H)
    g_W = (torch.bmm(r.transpose(1, 2), nu) / rows - Wm * tau2[:, None, :]) * inv[:, None, None]
    g_sigma2 = -0.5 * dim * inv + 0.5 * sq_err.mean(-1) * inv.square()
    g_tau2 = (-0.5 * w_norm2 * inv[:, None] - 0.5 + 0.5 / tau2) * mask
    grads = {
        "W": -g_W * mask[:, None, :],
        "mu": -r.mean(1) * inv[:, None],
        "sigma_raw": -g_sigma2 * softplus_sq_grad(sigma_raw),
        "V": -torch.bmm(g_nu.transpose(1, 2), x.expand(len(mask), rows, dim)),
        "b": -g_nu.sum(1),
        "tau_raw": -g_tau2 * softplus_sq_grad(tau_raw),
    }
    return elbo, grads
