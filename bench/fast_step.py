"""A proposed faster online step for the analytic estimator (measured in bench/core_speed.py;
not used by dimwatch until the core's owner takes it).

At D = 10 the bank's step is dominated by per-op overhead, not arithmetic: autograd records
~60 small ops and replays ~100 backward nodes, and foreach Adam walks six tensors. The analytic
batch ELBO of a linear VAE (MATH.md) has short closed-form gradients, so one step can be
~20 batched ops without autograd, followed by a fused Adam. With r_n = x_n - W nu_n - mu,
nu_n = V x_n + b, per model:

    dF/dmu    = mean_n r_n / sigma^2
    dF/dW     = (mean_n r_n nu_n^T - W diag(tau^2)) / sigma^2
    dF/dnu_n  = (W^T r_n / sigma^2 - nu_n) / B
    dF/dV     = sum_n dF/dnu_n x_n^T,   dF/db = sum_n dF/dnu_n
    dF/dsigma^2 = -D / (2 sigma^2) + E||x - W z - mu||^2 / (2 sigma^4)
    dF/dtau_h^2 = -||w_h||^2 / (2 sigma^2) - 1/2 + 1 / (2 tau_h^2)

chained through softplus (d softplus(a)^2 / da = 2 softplus(a) sigmoid(a)).
"""

import math

import numpy as np
import torch
from torch.nn.functional import softplus

from streaming.bank import PARAM_NAMES, LinearVAEBank
from streaming.config import BankConfig
from streaming.report import ModelScore, StepReport

LOG_2PI = math.log(2 * math.pi)
LOG_2PI_E = math.log(2 * math.pi * math.e)


@torch.no_grad()
def analytic_step(
    x: torch.Tensor, p: dict[str, torch.Tensor], mask: torch.Tensor
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Gradients of -sum_m F_batch(m) for every stacked parameter, and F_batch (M,)."""
    W = p["W"] * mask[:, None, :]  # (M, D, H)
    sig, tau = softplus(p["sigma_raw"]), softplus(p["tau_raw"])  # (M,), (M, H)
    s2, t2 = sig.square(), tau.square()
    rows, dim = x.shape
    nu = (torch.matmul(p["V"], x.T).transpose(1, 2) + p["b"][:, None, :]) * mask[:, None, :]
    r = x[None] - torch.bmm(nu, W.transpose(1, 2)) - p["mu"][:, None, :]  # (M, B, D)
    wn = W.square().sum(1)  # (M, H) ||w_h||^2
    inv = 1.0 / s2  # (M,)
    sq = r.square().sum(-1) + (t2 * wn).sum(-1, keepdim=True)  # (M, B)
    log_t2 = torch.log(t2)
    kl = 0.5 * ((t2[:, None, :] + nu.square() - 1.0 - log_t2[:, None, :]) * mask[:, None, :]).sum(
        -1
    )
    rec = -0.5 * dim * (LOG_2PI + torch.log(s2))[:, None] - 0.5 * sq * inv[:, None]
    elbo = (rec - kl).mean(-1)  # (M,)
    g_nu = (torch.bmm(r, W) * inv[:, None, None] - nu) / rows  # (M, B, H)
    g_s2 = -0.5 * dim * inv + 0.5 * sq.mean(-1) * inv.square()
    g_t2 = -0.5 * wn * inv[:, None] - 0.5 + 0.5 / t2
    grads = {
        "W": -(torch.bmm(r.transpose(1, 2), nu) / rows - W * t2[:, None, :])
        * (inv[:, None, None] * mask[:, None, :]),
        "mu": -r.mean(1) * inv[:, None],
        "sigma_raw": -g_s2 * 2 * sig * torch.sigmoid(p["sigma_raw"]),
        "V": -torch.matmul(g_nu.transpose(1, 2), x) * mask[:, :, None],
        "b": -g_nu.sum(1) * mask,
        "tau_raw": -g_t2 * 2 * tau * torch.sigmoid(p["tau_raw"]) * mask,
    }
    return grads, elbo


class FastAnalyticBank(LinearVAEBank):
    """LinearVAEBank (analytic estimator, Adam) with closed-form gradients, fused Adam and a
    report computed in numpy."""

    def __init__(self, dim: int, config: BankConfig | None = None) -> None:
        super().__init__(dim, config)
        if self.config.estimator != "analytic" or self.config.optimizer != "adam":
            raise ValueError("FastAnalyticBank: analytic estimator and Adam only")
        params = [self._params[k] for k in PARAM_NAMES]
        self._optimizer = torch.optim.Adam(params, lr=self.config.learning_rate, fused=True)
        self._detached = {k: v.detach() for k, v in self._params.items()}
        self._mask_np = self._mask.cpu().numpy().astype(np.float64)  # (M, Hmax)

    def learn_many(self, X: np.ndarray | torch.Tensor) -> StepReport:
        x = self._as_batch(X)
        grads, elbo = analytic_step(x, self._detached, self._mask)
        for k, v in self._params.items():
            v.grad = grads[k]
        self._optimizer.step()
        self._last_batch_elbo = elbo
        self._last_rows = x.shape[0]
        self.step += 1
        self.rows_seen += x.shape[0]
        return self.report()

    def report(self) -> StepReport:
        """The same report computed in float64 numpy from one copy of the variance parameters
        (M x (Hmax + 2) numbers) instead of ~25 tiny torch ops."""
        tau2 = _softplus(self._detached["tau_raw"].cpu().numpy().astype(np.float64)) ** 2
        sigma2 = _softplus(self._detached["sigma_raw"].cpu().numpy().astype(np.float64)) ** 2
        dims = self.config.latent_dims
        mask = self._mask_np
        log_t2 = np.log(tau2)
        s_reg = 0.5 * (log_t2 * mask).sum(-1)  # Eq. 23
        s_rec = -0.5 * self.dim * (LOG_2PI_E + np.log(sigma2))  # Eq. 72
        f_ent = s_reg + s_rec  # Eq. 20
        n = self.config.bic_n
        penalty = (np.array(dims) * self.dim + 1) * math.log(n)
        bic = penalty - 2.0 * n * f_ent  # Eq. 27
        last = self._last_batch_elbo
        batch = None if last is None else last.double().cpu().numpy()
        ent = 0.5 * (LOG_2PI_E + log_t2)  # Eq. 24
        threshold = self.config.collapse_threshold
        models = []
        for i, h in enumerate(dims):
            collapsed = tuple(bool(e > threshold) for e in ent[i, :h])
            models.append(
                ModelScore(
                    latent_dim=h,
                    entropy_elbo=float(f_ent[i]),
                    bic=float(bic[i]),
                    batch_elbo=None if batch is None else float(batch[i]),
                    batch_bic=None if batch is None else float(penalty[i] - 2.0 * n * batch[i]),
                    sigma2=float(sigma2[i]),
                    tau2=tuple(tau2[i, :h].tolist()),
                    encoder_entropies=tuple(ent[i, :h].tolist()),
                    collapsed=collapsed,
                    active_latents=h - sum(collapsed),
                    s_reg=float(s_reg[i]),
                    s_rec=float(s_rec[i]),
                )
            )
        best = min(models, key=lambda m: m.bic).latent_dim
        return StepReport(self.step, self._last_rows, self.rows_seen, best, tuple(models))


def _softplus(a: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, a)
