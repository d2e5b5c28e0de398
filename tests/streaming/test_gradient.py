"""The gradient rules (the paper's recipe): the stacked candidates train exactly like separate
linear VAEs written from docs/math.md, and their snapshots load on any device."""

import io
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.functional import softplus

from streaming.data import ppca_data
from streaming.learner import Learner
from streaming.spec import StreamSpec


class _SingleLinearVAE(nn.Module):
    """One linear VAE written directly from docs/math.md, as the paper's Listing 1 does."""

    def __init__(self, h: int, d: int) -> None:
        super().__init__()
        self.encoder, self.decoder = nn.Linear(d, h), nn.Linear(h, d)
        self.sigma_raw, self.tau_raw = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(h))

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        sigma2, tau2 = softplus(self.sigma_raw).square(), softplus(self.tau_raw).square()
        nu = self.encoder(x)
        w = self.decoder.weight
        sq = (x - self.decoder(nu)).square().sum(1) + (tau2 * w.square().sum(0)).sum()
        rec = -0.5 * x.shape[1] * torch.log(2 * math.pi * sigma2) - sq / (2 * sigma2)
        kl = 0.5 * (tau2 + nu.square() - 1 - torch.log(tau2)).sum(1)
        return (rec - kl).mean()


def test_stacked_candidates_match_separate_models() -> None:
    x = ppca_data(3000, 7, 3, noise=0.3, seed=5)
    dims = (1, 3, 5)
    spec = StreamSpec(latent_dims=dims, optimizer="adam", adaptive=False, device="cpu", seed=9)
    learner = Learner(7, spec)
    singles = []
    for h in dims:
        p, m = learner.params(h), _SingleLinearVAE(h, 7)
        with torch.no_grad():
            m.encoder.weight.copy_(torch.tensor(p.V))
            m.encoder.bias.copy_(torch.tensor(p.b))
            m.decoder.weight.copy_(torch.tensor(p.W))
            m.decoder.bias.copy_(torch.tensor(p.mu))
        singles.append((m, torch.optim.Adam(m.parameters(), lr=0.002)))
    for i in range(100):
        xb = torch.tensor(x[i * 10 : i * 10 + 10])
        learner.learn_many(xb)
        for m, opt in singles:
            opt.zero_grad()
            (-m.elbo(xb)).backward()
            opt.step()
    for h, (m, _) in zip(dims, singles, strict=True):
        p = learner.params(h)
        np.testing.assert_allclose(p.W, m.decoder.weight.detach(), atol=1e-5)
        np.testing.assert_allclose(p.V, m.encoder.weight.detach(), atol=1e-5)
        np.testing.assert_allclose(p.tau2, softplus(m.tau_raw).square().detach(), atol=1e-5)
        assert p.sigma2 == pytest.approx(float(softplus(m.sigma_raw.detach()).square()), abs=1e-5)


MC = StreamSpec(latent_dims=(1, 3), estimator="mc", mc_samples=5, optimizer="adam", device="cpu")
X = ppca_data(60, 6, 2, seed=0)


def _snapshot_with_rng(rng: torch.Tensor) -> bytes:
    """A CPU learner's snapshot after two steps, its generator state replaced by `rng`."""
    learner = Learner(6, MC)
    for i in range(2):
        learner.learn_many(X[i * 10 : i * 10 + 10])
    state = torch.load(io.BytesIO(learner.state_bytes()), weights_only=True)
    state["rule"]["rng"] = rng
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def test_snapshot_with_a_cuda_generator_state_loads_on_the_cpu() -> None:
    # a CUDA generator's state is 16 bytes (Philox seed and offset); a CPU one refuses it
    learner = Learner.from_bytes(_snapshot_with_rng(torch.arange(16, dtype=torch.uint8)), "cpu")
    assert learner.step == 2
    report = learner.learn_many(X[20:30])
    assert report.step == 3 and all(np.isfinite(m.bic) for m in report.models)


def test_foreign_generator_state_reseeds_deterministically() -> None:
    data = _snapshot_with_rng(torch.arange(16, dtype=torch.uint8))
    a, b = Learner.from_bytes(data), Learner.from_bytes(data)
    for i in range(3, 6):
        xb = X[i * 10 : i * 10 + 10]
        assert a.learn_many(xb) == b.learn_many(xb)
    assert a.params(3) == b.params(3)
