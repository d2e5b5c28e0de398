"""A bank of linear VAEs, one per candidate latent size, trained online as one stacked model.

The M candidates are stacked and padded to Hmax = max(H) latents (docs/math.md notation):

    W (M, D, Hmax)   mu (M, D)   sigma = softplus(sigma_raw) (M,)      decoder p(x|z)
    V (M, Hmax, D)   b (M, Hmax) tau = softplus(tau_raw) (M, Hmax)     encoder q(z|x)

with a mask (M, Hmax) of the real latents. One `learn_many(X)` is one step of every candidate:
by default the natural step (streaming/natural.py: Fisher-scaled, in the data's units, with the
exact posterior as encoder), or, as in the paper, one Adam/SGD step on the sum of the candidates'
negative batch ELBOs (padded entries get zero gradients and the sum couples nothing, so every
candidate follows exactly the trajectory it would follow alone). After the step the candidates
are scored with the data-free entropy ELBO (Corollary 1) and its BIC (Eq. 27). A step whose
result would not be finite is refused and changes nothing.
"""

import io
import math
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import torch
from torch.nn.functional import softplus

from streaming import entropy, natural, objectives
from streaming.config import BankConfig
from streaming.convergence import Convergence
from streaming.errors import InvalidBatchError, InvalidConfigError
from streaming.preprocess import Scaler
from streaming.report import ModelParams, ModelScore, StepReport, Training

# what a refused Adam/SGD step restores: parameters, optimizer moments, generator state
_Saved = tuple[dict[str, torch.Tensor], dict[Any, dict[str, Any]], torch.Tensor]
STATE_VERSION = 2  # 2: natural optimizer state, scaler, convergence; 1 still loads
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
        # natural step: running mean and sigma^2 (None until the first batch), batches since
        # the (re)start of its schedule
        self._moments: natural.Moments | None = None
        self._sigma2: torch.Tensor | None = None  # (M,)
        self._scaler = Scaler.empty(dim, self.device) if self.config.standardize else None
        self.convergence = Convergence(np.array(dims) * dim + 1)

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
        """One step on every candidate with the batch X (B, D); returns the new scores.

        Raises InvalidBatchError, leaving the bank untouched, unless X is a non-empty 2-D array
        of finite numbers with D columns whose step gives finite parameters. X is never modified.
        """
        x = self._as_batch(X)
        scaler = None if self._scaler is None else self._scaler.updated(x)
        if scaler is not None:
            x = scaler.transform(x)
        if self.config.optimizer == "natural":
            elbo = self._natural_step(x)
        else:
            elbo = self._gradient_step(x)
        self._scaler = scaler
        self._last_batch_elbo = elbo.detach()
        self._last_rows = x.shape[0]
        self.step += 1
        self.rows_seen += x.shape[0]
        rep = self._scores()
        flags = self.convergence.update(np.array([s.entropy_elbo for s in rep.models]), x.shape[0])
        return self._flagged(rep, flags)

    def _natural_step(self, x: torch.Tensor) -> torch.Tensor:
        """The natural step (streaming/natural.py), committed only when every result is finite."""
        p = self._params
        eta = natural.SCHEDULE.eta(self.convergence.batches)
        try:  # eigh of a matrix with overflowed entries fails: that batch is refused too
            if self._moments is None or self._sigma2 is None:
                c, W, sigma2 = natural.first_guess(x, p["W"].detach(), self._mask)
                moments = natural.Moments(c, x.shape[0])
            else:
                moments = self._moments
                c = moments.update(x, eta)
                moments = natural.Moments(c, moments.rows + x.shape[0])
                W, sigma2 = p["W"].detach(), self._sigma2
            elbo, W, sigma2 = natural.step(x, c, W, sigma2, self._mask, eta)
        except torch.linalg.LinAlgError as exc:
            raise _not_finite(x) from exc
        _check_finite(x, elbo, W, sigma2, c)
        V, b, _ = natural.encoder(W, sigma2, c, self._mask)
        with torch.no_grad():
            p["W"].copy_(W)
            p["mu"].copy_(c.expand_as(p["mu"]))
            p["V"].copy_(V)
            p["b"].copy_(b)
        self._moments, self._sigma2 = moments, sigma2
        return elbo

    def _gradient_step(self, x: torch.Tensor) -> torch.Tensor:
        """One Adam/SGD step on the batch ELBO; undone (parameters, moments and the sampler's
        generator) unless the ELBO, the gradients and the new parameters are all finite."""
        saved = self._saved_state()
        try:
            return self._gradient_step_unchecked(x)
        except InvalidBatchError:
            self._restore_state(saved)
            raise

    def _gradient_step_unchecked(self, x: torch.Tensor) -> torch.Tensor:
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
        _check_finite(x, elbo.detach(), *(v.grad for v in p.values() if v.grad is not None))
        self._optimizer.step()
        _check_finite(x, *(v.detach() for v in p.values()), *self._variances())
        return elbo

    def _saved_state(self) -> _Saved:
        params = {k: v.detach().clone() for k, v in self._params.items()}
        moments = {
            key: {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
            for key, s in self._optimizer.state.items()
        }
        return params, moments, self._generator.get_state()

    def _restore_state(self, saved: _Saved) -> None:
        params, moments, rng = saved
        with torch.no_grad():
            for k, v in params.items():
                self._params[k].copy_(v)
        self._optimizer.state.clear()
        self._optimizer.state.update(moments)
        self._generator.set_state(rng)

    def restart(self) -> None:
        """The stream changed: restart the natural step's schedule (Adam/SGD: forget the
        optimizer's moments) and the convergence test."""
        self.convergence.restart()
        self.reset_optimizer_state()

    @property
    def step_size(self) -> float:
        """The step size of the next step: eta of the natural schedule, or the learning rate."""
        if self.config.optimizer == "natural":
            return natural.SCHEDULE.eta(self.convergence.batches)
        return float(self._optimizer.param_groups[0]["lr"])

    def _flagged(self, rep: StepReport, flags: np.ndarray) -> StepReport:
        """rep with each model's converged flag (never for Adam/SGD: streaming/convergence)."""
        trusted = self.config.optimizer == "natural"
        models = tuple(
            replace(s, converged=bool(f) and trusted)
            for s, f in zip(rep.models, flags, strict=True)
        )
        training = Training(
            step_size=self.step_size, batches_since_restart=self.convergence.batches
        )
        return replace(rep, models=models, training=training)

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
        """(tau^2 (M, Hmax), sigma^2 (M,)): the natural step's sigma^2 and exact posterior
        variances, or softplus of the free parameters."""
        if self._sigma2 is not None:
            _, tau2 = natural.posterior(self._params["W"].detach(), self._sigma2)
            return torch.where(self._mask > 0, tau2, torch.ones_like(tau2)), self._sigma2
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

    def report(self) -> StepReport:
        """Every candidate's scores at the current parameters, and the selection."""
        return self._flagged(self._scores(), self.convergence.flags)

    @torch.no_grad()
    def _scores(self) -> StepReport:
        # One copy of (M, Hmax + 2) numbers to the host: sigma^2, the last batch ELBO, tau^2.
        tau2_t, sigma2_t = self._variances()
        last = self._last_batch_elbo
        batch_t = torch.full_like(sigma2_t, math.nan) if last is None else last
        host = torch.cat([sigma2_t[:, None], batch_t[:, None], tau2_t], 1).double().cpu().numpy()
        sigma2, batch, tau2 = host[:, 0], host[:, 1], host[:, 2:]
        dims = np.array(self.config.latent_dims)
        n = self.config.bic_n
        s_reg, s_rec = entropy.s_reg(tau2, self._mask_np), entropy.s_rec(sigma2, self.dim)
        f_ent = entropy.entropy_elbo(tau2, sigma2, self._mask_np, self.dim)  # Eq. 20
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
            dim=self.dim,
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
        """Posterior means nu = V x + b (B, H) of the named model (None: the best) for raw rows
        X (standardized first when the bank standardizes)."""
        return _finite_result(self._encode(X, self._index(latent_dim)), "projection")

    @torch.no_grad()
    def reconstruct(
        self, X: np.ndarray | torch.Tensor, latent_dim: int | None = None
    ) -> np.ndarray:
        """Decoder means W nu + mu (B, D) of the posterior means of the named model, in the
        units of X (raw rows in, raw rows out when the bank standardizes)."""
        i = self._index(latent_dim)
        h = self.config.latent_dims[i]
        out = self._encode(X, i) @ self._params["W"][i, :, :h].T + self._params["mu"][i]
        if self._scaler is not None:
            out = self._scaler.inverse(out)
        return _finite_result(out, "reconstruction")

    def _encode(self, X: np.ndarray | torch.Tensor, i: int) -> torch.Tensor:
        h = self.config.latent_dims[i]
        x = self._as_batch(X)
        if self._scaler is not None:
            x = self._scaler.transform(x)
        return x @ self._params["V"][i, :h].T + self._params["b"][i, :h]

    @torch.no_grad()
    def params(self, latent_dim: int | None = None) -> ModelParams:
        """The parameters (W, mu, sigma^2, V, b, tau^2) of the named model (None: the best);
        with standardize, those of the model of the z-scores, with the scaler's mean and scale."""
        i = self._index(latent_dim)
        h = self.config.latent_dims[i]
        tau2, sigma2 = self._variances()
        p = self._params
        scaler = self._scaler
        return ModelParams(
            latent_dim=h,
            dim=self.dim,
            W=p["W"][i, :, :h].double().cpu().tolist(),
            mu=p["mu"][i].double().cpu().tolist(),
            sigma2=float(sigma2[i]),
            V=p["V"][i, :h].double().cpu().tolist(),
            b=p["b"][i, :h].double().cpu().tolist(),
            tau2=tau2[i, :h].double().cpu().tolist(),
            standardized=scaler is not None,
            scaler_mean=None if scaler is None else scaler.mean.cpu().tolist(),
            scaler_scale=None if scaler is None else scaler.scale.cpu().tolist(),
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
            "natural": None
            if self._moments is None or self._sigma2 is None
            else {
                "mean": self._moments.mean.cpu(),
                "rows": self._moments.rows,
                "sigma2": self._sigma2.cpu(),
            },
            "scaler": None
            if self._scaler is None
            else {
                "rows": self._scaler.rows,
                "mean": self._scaler.mean.cpu(),
                "m2": self._scaler.m2.cpu(),
            },
            "convergence": self.convergence.state(),
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
        if state.get("version") not in (1, STATE_VERSION):
            raise InvalidConfigError(
                f"state: expected version 1 or {STATE_VERSION}, got {state.get('version')}"
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
        bank._load_v2(state)
        return bank

    def _load_v2(self, state: dict[str, Any]) -> None:
        """The parts a version-2 state adds (a version-1 state has none of them)."""
        nat = state.get("natural")
        if nat is not None:
            self._moments = natural.Moments(nat["mean"].to(self.device), int(nat["rows"]))
            self._sigma2 = nat["sigma2"].to(self.device)
        scaler = state.get("scaler")
        if scaler is not None:
            self._scaler = Scaler(
                int(scaler["rows"]), scaler["mean"].to(self.device), scaler["m2"].to(self.device)
            )
        if "convergence" in state:
            self.convergence.load(state["convergence"])


def _check_finite(x: torch.Tensor, *results: torch.Tensor) -> None:
    """Refuse a step whose results are not all finite (the caller commits nothing)."""
    if not all(bool(torch.isfinite(r).all()) for r in results):
        raise _not_finite(x)


def _not_finite(x: torch.Tensor) -> InvalidBatchError:
    peak = float(x.abs().max())
    return InvalidBatchError(
        f"this batch would make the model non-finite (largest |value| {peak:.3g}: its squares "
        "overflow float32 arithmetic, or the step size is too large); nothing was applied, "
        "rescale the data (or lower learning_rate)"
    )


def _finite_result(out: torch.Tensor, what: str) -> np.ndarray:
    """out (B, K) on the host, or InvalidBatchError naming the first row that overflowed."""
    finite = torch.isfinite(out).all(1)
    if not bool(finite.all()):
        raise InvalidBatchError(
            f"row {int(torch.argmin(finite.int()))}: the {what} overflows float32; "
            "expected values of the scale the stream was trained on"
        )
    return out.cpu().numpy()


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
