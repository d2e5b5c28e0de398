"""A bank of linear VAEs, one per candidate latent size, trained online as one stacked model.

The M candidates are stacked and padded to Hmax = max(H) latents (docs/math.md notation):

    W (M, D, Hmax)   mu (M, D)   sigma = softplus(sigma_raw) (M,)      decoder p(x|z)
    V (M, Hmax, D)   b (M, Hmax) tau = softplus(tau_raw) (M, Hmax)     encoder q(z|x)

with a mask (M, Hmax) of the real latents. One `learn_many(X)` is one optimizer step on the sum
of the candidates' negative batch ELBOs: padded entries get zero gradients, and the sum couples
nothing, so every candidate follows exactly the trajectory it would follow alone. After the step
the candidates are scored with the data-free entropy ELBO (Corollary 1) and its BIC (Eq. 27).
"""

import io
import math
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch.nn.functional import softplus

from streaming import entropy, objectives
from streaming.config import BankConfig
from streaming.errors import InvalidBatchError, InvalidConfigError
from streaming.report import ModelParams, ModelScore, StepReport

STATE_VERSION = 1
PARAM_NAMES = ("W", "mu", "sigma_raw", "V", "b", "tau_raw")


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; anything else as torch understands it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InvalidConfigError(
            f"device: expected 'auto', 'cpu' or 'cuda[:N]', got {name!r}"
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidConfigError(f"device: {name!r} requested but CUDA is not available here")
    if device.type not in ("cpu", "cuda"):
        raise InvalidConfigError(f"device: expected 'auto', 'cpu' or 'cuda[:N]', got {name!r}")
    return device


class LinearVAEBank:
    """Online linear VAEs for every H in config.latent_dims on data of dimension `dim`."""

    def __init__(self, dim: int, config: BankConfig | None = None) -> None:
        self.config = config if config is not None else BankConfig()
        self.config.check_dim(dim)
        self.dim = dim
        self.device = resolve_device(self.config.device)
        self.step = 0
        self.rows_seen = 0
        self._last_rows = 0
        self._last_batch_elbo: torch.Tensor | None = None  # (M,), from the last step's forward
        dims = self.config.latent_dims
        latent_dims = torch.tensor(dims, device=self.device)
        hmax = max(dims)
        self._mask = (torch.arange(hmax, device=self.device)[None, :] < latent_dims[:, None]).to(
            torch.float32
        )  # (M, Hmax)
        self._mask_np = self._mask.double().cpu().numpy()
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(self.config.seed)
        self._params = self._init_params(dims, dim, hmax)
        self._optimizer = self._make_optimizer()

    # ----------------------------------------------------------------------------- building

    def _init_params(self, dims: tuple[int, ...], dim: int, hmax: int) -> dict[str, torch.Tensor]:
        """nn.Linear's default init, as in the paper's code: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        for weights and biases; softplus parameters at 0 (sigma = tau = ln 2). Drawn on the CPU
        from the seed so that every device starts from the same numbers."""
        gen = torch.Generator().manual_seed(self.config.seed)
        m = len(dims)
        W = torch.zeros(m, dim, hmax)
        mu = torch.zeros(m, dim)
        V = torch.zeros(m, hmax, dim)
        b = torch.zeros(m, hmax)
        for i, h in enumerate(dims):
            enc, dec = 1.0 / math.sqrt(dim), 1.0 / math.sqrt(h)
            V[i, :h] = _uniform((h, dim), enc, gen)
            b[i, :h] = _uniform((h,), enc, gen)
            W[i, :, :h] = _uniform((dim, h), dec, gen)
            mu[i] = _uniform((dim,), dec, gen)
        params = {
            "W": W,
            "mu": mu,
            "sigma_raw": torch.zeros(m),
            "V": V,
            "b": b,
            "tau_raw": torch.zeros(m, hmax),
        }
        return {k: v.to(self.device).requires_grad_(True) for k, v in params.items()}

    def _make_optimizer(self) -> torch.optim.Optimizer:
        params = [self._params[k] for k in PARAM_NAMES]
        if self.config.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.config.learning_rate)
        # Fused Adam: one kernel for the six stacked tensors (CPU and CUDA).
        return torch.optim.Adam(params, lr=self.config.learning_rate, fused=True)

    # ----------------------------------------------------------------------------- learning

    def learn_many(self, X: np.ndarray | torch.Tensor) -> StepReport:
        """One optimizer step on every candidate with the batch X (B, D); returns the new scores.

        Raises InvalidBatchError, leaving the bank untouched, unless X is a non-empty 2-D array
        of finite numbers with D columns. X itself is never modified.
        """
        x = self._as_batch(X)
        p = self._params
        if self.config.estimator == "analytic":
            detached = {k: v.detach() for k, v in p.items()}
            elbo, grads = objectives.analytic_elbo_and_grads(x, **detached, mask=self._mask)
            for k, g in grads.items():
                p[k].grad = g
        else:
            self._optimizer.zero_grad(set_to_none=True)
            tau2, sigma2 = self._variances()
            elbo = objectives.batch_elbo(
                x, p["W"], p["mu"], sigma2, p["V"], p["b"], tau2, self._mask,
                samples=self.config.mc_samples, generator=self._generator,
            )  # fmt: skip
            (-elbo.sum()).backward()
        self._optimizer.step()
        self._last_batch_elbo = elbo.detach()
        self._last_rows = x.shape[0]
        self.step += 1
        self.rows_seen += x.shape[0]
        return self.report()

    def reset_optimizer_state(self) -> None:
        """Forget the optimizer's running moments (e.g. after a change of the stream)."""
        self._optimizer.state.clear()

    def set_learning_rate(self, lr: float) -> None:
        """Change the step size from the next step on (a schedule, or a boost after a change).

        The current value travels with state_bytes(); config.learning_rate keeps the initial one.
        """
        if not lr > 0:
            raise InvalidConfigError(f"learning_rate: expected a positive number, got {lr}")
        for group in self._optimizer.param_groups:
            group["lr"] = lr

    def _variances(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(tau^2 (M, Hmax), sigma^2 (M,)) through softplus of the free parameters."""
        tau2 = softplus(self._params["tau_raw"]).square()
        sigma2 = softplus(self._params["sigma_raw"]).square()
        return tau2, sigma2

    def _as_batch(self, X: Any) -> torch.Tensor:
        if not isinstance(X, torch.Tensor | np.ndarray):
            raise InvalidBatchError(
                f"expected a 2-D numpy array or torch tensor, got {type(X).__name__}"
            )
        if X.ndim != 2:
            raise InvalidBatchError(
                f"expected a 2-D batch (rows, {self.dim}), got shape {tuple(X.shape)}"
            )
        if X.shape[0] < 1:
            raise InvalidBatchError("expected at least one row, got an empty batch")
        if X.shape[1] != self.dim:
            raise InvalidBatchError(f"expected {self.dim} columns, got {X.shape[1]}")
        try:
            x = torch.as_tensor(X, dtype=torch.float32, device=self.device)
        except (TypeError, RuntimeError) as exc:
            raise InvalidBatchError(f"expected numbers, got dtype {X.dtype}") from exc
        if not bool(torch.isfinite(x).all()):
            raise InvalidBatchError("expected finite numbers, got NaN or Inf")
        return x

    # ----------------------------------------------------------------------------- scoring

    @torch.no_grad()
    def report(self) -> StepReport:
        """Every candidate's scores at the current parameters, and the selection."""
        # One copy of (M, Hmax + 2) numbers to the host: sigma^2, the last batch ELBO, tau^2.
        tau2_t, sigma2_t = self._variances()
        last = self._last_batch_elbo
        batch_t = torch.full_like(sigma2_t, math.nan) if last is None else last
        host = torch.cat([sigma2_t[:, None], batch_t[:, None], tau2_t], 1).double().cpu().numpy()
        sigma2, batch, tau2 = host[:, 0], host[:, 1], host[:, 2:]
        dims = np.array(self.config.latent_dims)
        n = self.config.bic_n
        s_reg, s_rec = entropy.s_reg(tau2, self._mask_np), entropy.s_rec(sigma2, self.dim)
        f_ent = s_reg + s_rec  # Eq. 20
        bic = entropy.bic(f_ent, dims, self.dim, n)  # Eq. 27
        batch_bic = entropy.bic(batch, dims, self.dim, n)
        ent = entropy.encoder_entropies(tau2)  # Eq. 24
        threshold = self.config.collapse_threshold
        models = []
        for i, h in enumerate(self.config.latent_dims):
            collapsed = tuple(bool(e > threshold) for e in ent[i, :h])
            models.append(
                ModelScore(
                    latent_dim=h,
                    entropy_elbo=float(f_ent[i]),
                    bic=float(bic[i]),
                    batch_elbo=None if last is None else float(batch[i]),
                    batch_bic=None if last is None else float(batch_bic[i]),
                    sigma2=float(sigma2[i]),
                    tau2=tuple(tau2[i, :h].tolist()),
                    encoder_entropies=tuple(ent[i, :h].tolist()),
                    collapsed=collapsed,
                    active_latents=h - sum(collapsed),
                    s_reg=float(s_reg[i]),
                    s_rec=float(s_rec[i]),
                )
            )
        best = min(models, key=lambda s: s.bic).latent_dim
        return StepReport(
            step=self.step,
            rows=self._last_rows,
            rows_seen=self.rows_seen,
            best_latent_dim=best,
            models=tuple(models),
        )

    @property
    def best_latent_dim(self) -> int:
        """The H with the lowest entropy BIC (first in config order on a tie)."""
        return self.report().best_latent_dim

    # ----------------------------------------------------------------------------- the models

    def _index(self, latent_dim: int | None) -> int:
        h = self.best_latent_dim if latent_dim is None else latent_dim
        try:
            return self.config.latent_dims.index(h)
        except ValueError:
            raise InvalidConfigError(
                f"latent_dim: expected one of {list(self.config.latent_dims)}, got {h}"
            ) from None

    @torch.no_grad()
    def encode(self, X: np.ndarray | torch.Tensor, latent_dim: int | None = None) -> np.ndarray:
        """Posterior means nu = V x + b (B, H) of the named model (None: the best)."""
        i = self._index(latent_dim)
        h = self.config.latent_dims[i]
        x = self._as_batch(X)
        nu = x @ self._params["V"][i, :h].T + self._params["b"][i, :h]
        return nu.cpu().numpy()

    @torch.no_grad()
    def reconstruct(
        self, X: np.ndarray | torch.Tensor, latent_dim: int | None = None
    ) -> np.ndarray:
        """Decoder means W nu + mu (B, D) of the posterior means of the named model."""
        i = self._index(latent_dim)
        h = self.config.latent_dims[i]
        nu = torch.as_tensor(self.encode(X, h), device=self.device)
        return (nu @ self._params["W"][i, :, :h].T + self._params["mu"][i]).cpu().numpy()

    @torch.no_grad()
    def params(self, latent_dim: int | None = None) -> ModelParams:
        """The parameters (W, mu, sigma^2, V, b, tau^2) of the named model (None: the best)."""
        i = self._index(latent_dim)
        h = self.config.latent_dims[i]
        tau2, sigma2 = self._variances()
        p = self._params
        return ModelParams(
            latent_dim=h,
            dim=self.dim,
            W=p["W"][i, :, :h].double().cpu().tolist(),
            mu=p["mu"][i].double().cpu().tolist(),
            sigma2=float(sigma2[i]),
            V=p["V"][i, :h].double().cpu().tolist(),
            b=p["b"][i, :h].double().cpu().tolist(),
            tau2=tau2[i, :h].double().cpu().tolist(),
        )

    # ----------------------------------------------------------------------------- persistence

    def state_bytes(self) -> bytes:
        """The whole state: config, parameters, optimizer state, counters and RNG state."""
        state = {
            "version": STATE_VERSION,
            "dim": self.dim,
            "config": asdict(self.config),
            "params": {k: v.detach().cpu() for k, v in self._params.items()},
            "optimizer": self._optimizer.state_dict(),
            "step": self.step,
            "rows_seen": self.rows_seen,
            "last_rows": self._last_rows,
            "last_batch_elbo": None
            if self._last_batch_elbo is None
            else self._last_batch_elbo.cpu(),
            "rng": self._generator.get_state(),
        }
        buf = io.BytesIO()
        torch.save(state, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, device: str | None = None) -> "LinearVAEBank":
        """Rebuild a bank from state_bytes(); it continues exactly as the original would.

        device overrides the stored config's device (e.g. to move a stream onto a GPU).
        """
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if state.get("version") != STATE_VERSION:
            raise InvalidConfigError(
                f"state: expected version {STATE_VERSION}, got {state.get('version')}"
            )
        config_dict = dict(state["config"])
        if device is not None:
            config_dict["device"] = device
        bank = cls(int(state["dim"]), BankConfig(**config_dict))
        with torch.no_grad():
            for k, v in state["params"].items():
                bank._params[k].copy_(v)
        bank._optimizer.load_state_dict(state["optimizer"])
        bank.step = int(state["step"])
        bank.rows_seen = int(state["rows_seen"])
        bank._last_rows = int(state["last_rows"])
        last = state["last_batch_elbo"]
        bank._last_batch_elbo = None if last is None else last.to(bank.device)
        _restore_rng(bank, state["rng"])
        return bank


def _restore_rng(bank: LinearVAEBank, rng: torch.Tensor) -> None:
    """Put a stored generator state back. A state from another device type (CUDA's is 16 bytes
    of seed and offset, the CPU's 5056 bytes of Mersenne Twister) cannot be converted: then the
    generator is re-seeded from (seed, step), deterministically, so a snapshot loads anywhere.
    Only the Monte Carlo estimator draws from it: its samples after the move differ from those
    the original device would have drawn, and training goes on from the same parameters."""
    try:
        bank._generator.set_state(rng.cpu())
    except RuntimeError:
        bank._generator.manual_seed((bank.config.seed * 1_000_003 + bank.step) % 2**63)


def _uniform(shape: tuple[int, ...], bound: float, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=gen) * 2.0 - 1.0) * bound
