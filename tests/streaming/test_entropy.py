"""Data-free scores against their definitions (MATH.md: Corollary 1, Eq. 23, 24, 27)."""

import math

import pytest
import torch
from torch.distributions import Normal

from streaming import entropy


def _random_variances(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    tau2 = torch.rand(3, 6, generator=gen, dtype=torch.float64) * 1.5 + 0.01
    sigma2 = torch.rand(3, generator=gen, dtype=torch.float64) + 0.05
    mask = (torch.arange(6)[None, :] < torch.tensor([2, 4, 6])[:, None]).double()
    return tau2, sigma2, mask


def test_entropy_elbo_equals_sum_of_three_entropies() -> None:
    tau2, sigma2, mask = _random_variances(0)
    dim = 10
    got = entropy.entropy_elbo(tau2, sigma2, mask, dim)
    for m, h in enumerate([2, 4, 6]):
        enc = Normal(torch.zeros(h, dtype=torch.float64), tau2[m, :h].sqrt()).entropy().sum()
        prior = Normal(torch.zeros(h, dtype=torch.float64), 1.0).entropy().sum()
        dec = Normal(torch.zeros(dim, dtype=torch.float64), sigma2[m].sqrt()).entropy().sum()
        assert float(got[m]) == pytest.approx(float(enc - prior - dec), abs=1e-12)


def test_entropy_elbo_is_sreg_plus_srec() -> None:
    tau2, sigma2, mask = _random_variances(1)
    got = entropy.entropy_elbo(tau2, sigma2, mask, 7)
    expected = entropy.s_reg(tau2, mask) + entropy.s_rec(sigma2, 7)
    assert torch.equal(got, expected)


def test_bic_matches_eq27_by_hand() -> None:
    elbo = torch.tensor([-14.0, -12.5], dtype=torch.float64)
    got = entropy.bic(elbo, torch.tensor([2, 4]), dim=10, n=10)
    assert got.tolist() == pytest.approx(
        [21 * math.log(10) + 280.0, 41 * math.log(10) + 250.0], abs=1e-12
    )


def test_encoder_entropy_of_prior_variance_is_upper_bound() -> None:
    got = entropy.encoder_entropies(torch.ones(1, 1, dtype=torch.float64))
    assert float(got) == pytest.approx(entropy.PRIOR_ENTROPY_PER_LATENT, abs=1e-15)
    assert entropy.PRIOR_ENTROPY_PER_LATENT == pytest.approx(1.4189385332, abs=1e-9)


def test_sreg_ignores_padded_latents() -> None:
    tau2 = torch.tensor([[0.5, 0.25, 1e-9]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64)
    assert float(entropy.s_reg(tau2, mask)) == pytest.approx(0.5 * math.log(0.125), abs=1e-12)
