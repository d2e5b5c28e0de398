"""The gradient rules (optimizer "adam" / "sgd"): the paper's recipe, torch.optim steps on the
batch ELBO of M stacked linear VAEs (docs/math.md, Eq. 2).

The candidates are stacked and padded to Hmax = max(H) latents:

    W (M, D, Hmax)   mu (M, D)   sigma = softplus(sigma_raw) (M,)      decoder p(x|z)
    V (M, Hmax, D)   b (M, Hmax) tau = softplus(tau_raw) (M, Hmax)     encoder q(z|x)

with a mask (M, Hmax) of the real latents. One step is one Adam/SGD step on the sum of the
candidates' negative batch ELBOs: padded entries get zero gradients and the sum couples nothing,
so every candidate follows exactly the trajectory it would follow alone. The gradient is closed
form (estimator "analytic") or autograd through Monte Carlo samples ("mc"). A step whose ELBO,
gradients or new parameters are not finite is undone: parameters, moments and the sampler's
generator.

With change detection (spec.adaptive), `adjust` is its learning-rate schedule: the rate is
boost_learning_rate while a change is seen and decays back to learning_rate with an e-folding
time of DECAY_BATCHES afterwards; Adam's moments are dropped when a change is first seen and
every RESET_EVERY batches while it lasts (a change's burst of large gradients fills Adam's
second moment for ~1000 steps and would shrink every later step just when the models must move).
"""

import math
from typing import Any

import torch
from torch import Tensor
from torch.nn.functional import softplus

from streaming import objectives
from streaming.arrays import Arrays
from streaming.errors import InvalidBatchError
from streaming.rules import Stepped, not_finite
from streaming.spec import StreamSpec

PARAM_NAMES = ("W", "mu", "sigma_raw", "V", "b", "tau_raw")
DECAY_BATCHES = 50.0  # e-folding time of the return from the boosted to the quiet rate
RESET_EVERY = 25  # alarmed batches between drops of Adam's moments

# what a refused step restores: parameters, optimizer moments, generator state
_Saved = tuple[dict[str, Tensor], dict[Any, dict[str, Any]], Tensor]


class GradientRule:
    """Optimizer "adam" or "sgd" at spec.learning_rate. Never trusted for convergence: its
    entropy ELBO can sit still far from the optimum (docs/math.md)."""

    trusted = False

    def __init__(self, dim: int, spec: StreamSpec, device: torch.device) -> None:
        self.arrays = Arrays(device, numpy=False)
        self.spec = spec
        dims = spec.latent_dims
        hmax = max(dims)
        latent = torch.tensor(dims, device=device)
        self._mask = (torch.arange(hmax, device=device)[None, :] < latent[:, None]).float()
        self._generator = torch.Generator(device=device)
        self._generator.manual_seed(spec.seed)
        self.params = _init_params(dims, dim, hmax, spec.seed, device)
        ordered = [self.params[k] for k in PARAM_NAMES]
        self.optimizer: torch.optim.Optimizer = (
            torch.optim.SGD(ordered, lr=spec.learning_rate)
            if spec.optimizer == "sgd"
            else torch.optim.Adam(ordered, lr=spec.learning_rate, fused=True)
        )
        self._boost = spec.boost_learning_rate if spec.adaptive else None
        self.since_alarm = 0  # batches since a change was last seen (0: the start counts as one)
        self._since_reset = 0  # alarmed batches since the moments were dropped
        self._rows = 0.0
        self._set_lr()

    # ----------------------------------------------------------------------------- learning

    def step(self, x: Tensor) -> Stepped:
        saved = self._saved()
        try:
            elbo = self._step(x)
        except InvalidBatchError:
            self._restore(saved)
            raise
        self._rows += x.shape[0]
        return Stepped(elbo.detach().double(), None)

    def _step(self, x: Tensor) -> Tensor:
        p = self.params
        if self.spec.estimator == "analytic":
            detached = {k: v.detach() for k, v in p.items()}
            elbo, grads = objectives.analytic_elbo_and_grads(x, **detached, mask=self._mask)
            for k, g in grads.items():
                p[k].grad = g
        else:
            self.optimizer.zero_grad(set_to_none=True)
            tau2, sigma2 = self._softplus_variances()
            elbo = objectives.batch_elbo(
                x, p["W"], p["mu"], sigma2, p["V"], p["b"], tau2, self._mask,
                samples=self.spec.mc_samples, generator=self._generator,
            )  # fmt: skip
            (-elbo.sum()).backward()
        _finite(x, elbo.detach(), *(v.grad for v in p.values() if v.grad is not None))
        self.optimizer.step()
        _finite(x, *(v.detach() for v in p.values()), *self._softplus_variances())
        return elbo

    def _saved(self) -> _Saved:
        params = {k: v.detach().clone() for k, v in self.params.items()}
        moments = {
            key: {k: v.clone() if isinstance(v, Tensor) else v for k, v in s.items()}
            for key, s in self.optimizer.state.items()
        }
        return params, moments, self._generator.get_state()

    def _restore(self, saved: _Saved) -> None:
        params, moments, rng = saved
        with torch.no_grad():
            for k, v in params.items():
                self.params[k].copy_(v)
        self.optimizer.state.clear()
        self.optimizer.state.update(moments)
        self._generator.set_state(rng)

    # ----------------------------------------------------------------------------- schedule

    def adjust(self, alarm_length: int) -> bool:
        restarted = False
        if alarm_length:
            self._since_reset += 1
            if alarm_length == 1 or self._since_reset >= RESET_EVERY:
                self.optimizer.state.clear()
                self._since_reset = 0
                self._rows = 0.0
                restarted = True
            self.since_alarm = 0
        else:
            self.since_alarm += 1
        self._set_lr()
        return restarted

    def _set_lr(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.step_size

    @property
    def step_size(self) -> float:
        quiet = self.spec.learning_rate
        if self._boost is None:
            return quiet
        return quiet + (self._boost - quiet) * math.exp(-self.since_alarm / DECAY_BATCHES)

    @property
    def rows(self) -> float:
        return self._rows

    def expected_gap(self) -> list[float] | None:
        return [0.0] * self._mask.shape[0]

    # ----------------------------------------------------------------------------- reading

    def _softplus_variances(self) -> tuple[Tensor, Tensor]:
        p = self.params
        return softplus(p["tau_raw"]).square(), softplus(p["sigma_raw"]).square()

    @torch.no_grad()
    def variances(self) -> tuple[Tensor, Tensor]:
        return self._softplus_variances()

    @torch.no_grad()
    def model(self, i: int, h: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        p = self.params
        return p["W"][i, :, :h], p["mu"][i], p["V"][i, :h], p["b"][i, :h]

    # ----------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        return {
            "params": {k: v.detach().cpu() for k, v in self.params.items()},
            "optimizer": self.optimizer.state_dict(),
            "rng": self._generator.get_state(),
            "schedule": [self.since_alarm, self._since_reset],
            "rows": self._rows,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for k, v in state["params"].items():
                self.params[k].copy_(v)
        self.optimizer.load_state_dict(state["optimizer"])
        self._load_rng(state["rng"])
        self.since_alarm, self._since_reset = (int(v) for v in state["schedule"])
        self._rows = float(state.get("rows", 0.0))
        self._set_lr()

    def _load_rng(self, rng: Tensor) -> None:
        """A generator state from another device type (CUDA's is 16 bytes of seed and offset,
        the CPU's 5056 bytes of Mersenne Twister) cannot be converted: the generator is then
        re-seeded from (seed, rows), deterministically, so a snapshot loads anywhere. Only the
        Monte Carlo estimator draws from it: its samples after the move differ from those the
        original device would have drawn; training goes on from the same parameters."""
        try:
            self._generator.set_state(rng.cpu())
        except RuntimeError:
            self._generator.manual_seed((self.spec.seed * 1_000_003 + int(self._rows)) % 2**63)

    def resident_bytes(self) -> int:
        """Parameters, gradients and optimizer state (float32)."""
        p = sum(v.numel() for v in self.params.values())
        return 4 * p * (4 if self.spec.optimizer == "adam" else 2)


def _init_params(
    dims: tuple[int, ...], dim: int, hmax: int, seed: int, device: torch.device
) -> dict[str, Tensor]:
    """nn.Linear's default init, as in the paper's code: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    for weights and biases; softplus parameters at 0 (sigma = tau = ln 2). Drawn on the CPU
    from the seed so that every device starts from the same numbers."""
    gen = torch.Generator().manual_seed(seed)
    m = len(dims)
    W, mu = torch.zeros(m, dim, hmax), torch.zeros(m, dim)
    V, b = torch.zeros(m, hmax, dim), torch.zeros(m, hmax)
    for i, h in enumerate(dims):
        enc, dec = 1.0 / math.sqrt(dim), 1.0 / math.sqrt(h)
        V[i, :h] = _uniform((h, dim), enc, gen)
        b[i, :h] = _uniform((h,), enc, gen)
        W[i, :, :h] = _uniform((dim, h), dec, gen)
        mu[i] = _uniform((dim,), dec, gen)
    params = {"W": W, "mu": mu, "sigma_raw": torch.zeros(m), "V": V, "b": b,
              "tau_raw": torch.zeros(m, hmax)}  # fmt: skip
    return {k: v.to(device).requires_grad_(True) for k, v in params.items()}


def _uniform(shape: tuple[int, ...], bound: float, gen: torch.Generator) -> Tensor:
    return (torch.rand(shape, generator=gen) * 2.0 - 1.0) * bound


def _finite(x: Tensor, *results: Tensor) -> None:
    if not all(bool(torch.isfinite(r).all()) for r in results):
        raise not_finite(x)
