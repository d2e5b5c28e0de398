"""Data-free scores against their definitions (docs/math.md: Corollary 1, Eq. 23, 24, 27)."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal

from streaming import entropy


def _random_variances(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    tau2 = rng.random((3, 6)) * 1.5 + 0.01
    sigma2 = rng.random(3) + 0.05
    mask = (np.arange(6)[None, :] < np.array([2, 4, 6])[:, None]).astype(np.float64)
    return tau2, sigma2, mask


def test_entropy_elbo_equals_sum_of_three_entropies() -> None:
    tau2, sigma2, mask = _random_variances(0)
    dim = 10
    got = entropy.entropy_elbo(tau2, sigma2, mask, dim)
    for m, h in enumerate([2, 4, 6]):
        zeros = torch.zeros(h, dtype=torch.float64)
        enc = Normal(zeros, torch.tensor(tau2[m, :h]).sqrt()).entropy().sum()
        prior = Normal(zeros, 1.0).entropy().sum()
        dec = Normal(torch.zeros(dim, dtype=torch.float64), math.sqrt(sigma2[m])).entropy().sum()
        assert got[m] == pytest.approx(float(enc - prior - dec), abs=1e-12)


def test_entropy_elbo_is_sreg_plus_srec() -> None:
    tau2, sigma2, mask = _random_variances(1)
    got = entropy.entropy_elbo(tau2, sigma2, mask, 7)
    expected = entropy.s_reg(tau2, mask) + entropy.s_rec(sigma2, 7)
    np.testing.assert_array_equal(got, expected)


def test_bic_matches_eq27_by_hand() -> None:
    got = entropy.bic(np.array([-14.0, -12.5]), np.array([2, 4]), dim=10, n=10)
    assert got.tolist() == pytest.approx(
        [21 * math.log(10) + 280.0, 41 * math.log(10) + 250.0], abs=1e-12
    )


def test_encoder_entropy_of_prior_variance_is_upper_bound() -> None:
    got = entropy.encoder_entropies(np.ones((1, 1)))
    assert got[0, 0] == pytest.approx(entropy.PRIOR_ENTROPY_PER_LATENT, abs=1e-15)
    assert entropy.PRIOR_ENTROPY_PER_LATENT == pytest.approx(1.4189385332, abs=1e-9)


def test_sreg_ignores_padded_latents() -> None:
    tau2 = np.array([[0.5, 0.25, 1e-9]])
    mask = np.array([[1.0, 1.0, 0.0]])
    assert entropy.s_reg(tau2, mask)[0] == pytest.approx(0.5 * math.log(0.125), abs=1e-12)
