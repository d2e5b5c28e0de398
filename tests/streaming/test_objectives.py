"""The batch ELBO: closed form against Monte Carlo and against the exact p-PCA likelihood."""

import numpy as np
import pytest
import torch

from streaming import objectives, ppca


def _random_params(seed: int, m: int = 3, d: int = 6, hmax: int = 4) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "W": torch.randn(m, d, hmax, generator=gen, dtype=torch.float64),
        "mu": torch.randn(m, d, generator=gen, dtype=torch.float64),
        "sigma2": torch.rand(m, generator=gen, dtype=torch.float64) + 0.3,
        "V": torch.randn(m, hmax, d, generator=gen, dtype=torch.float64) * 0.3,
        "b": torch.randn(m, hmax, generator=gen, dtype=torch.float64),
        "tau2": torch.rand(m, hmax, generator=gen, dtype=torch.float64) + 0.1,
        "mask": (torch.arange(hmax)[None, :] < torch.tensor([1, 2, 4])[:, None]).double(),
    }


def test_mc_elbo_mean_matches_analytic_within_standard_error() -> None:
    p = _random_params(0)
    x = torch.randn(20, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    analytic = objectives.batch_elbo(x, **p)
    gen = torch.Generator().manual_seed(2)
    draws = torch.stack(
        [objectives.batch_elbo(x, **p, samples=1, generator=gen) for _ in range(4000)]
    )
    mean, se = draws.mean(0), draws.std(0) / np.sqrt(draws.shape[0])
    assert torch.all((mean - analytic).abs() < 4 * se), (mean, analytic, se)


def test_mc_elbo_needs_a_generator() -> None:
    p = _random_params(0)
    with pytest.raises(ValueError, match="Generator"):
        objectives.batch_elbo(torch.zeros(2, 6, dtype=torch.float64), **p, samples=5)


def test_padded_latents_change_nothing() -> None:
    p = _random_params(3)
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    before = objectives.batch_elbo(x, **p)
    scrambled = dict(p)
    pad = 1.0 - p["mask"]
    scrambled["W"] = p["W"] + 7.0 * pad[:, None, :]
    scrambled["V"] = p["V"] - 3.0 * pad[:, :, None]
    scrambled["b"] = p["b"] + 5.0 * pad
    scrambled["tau2"] = p["tau2"] + 2.0 * pad
    assert torch.allclose(objectives.batch_elbo(x, **scrambled), before, rtol=0, atol=1e-12)


def test_analytic_elbo_is_tight_at_the_exact_posterior() -> None:
    # With W's columns orthogonal the exact posterior covariance sigma^2 M^-1 (M = W^T W +
    # sigma^2 I) is diagonal, so the encoder can represent it and the ELBO equals Eq. 26.
    rng = np.random.default_rng(5)
    d, h = 6, 3
    x = rng.standard_normal((400, d)) @ rng.standard_normal((d, d)) + 1.5
    u, _ = np.linalg.qr(rng.standard_normal((d, h)))
    w = u * np.array([2.0, 1.2, 0.7])
    mu, sigma2 = x.mean(0), 0.4
    m_inv = np.linalg.inv(w.T @ w + sigma2 * np.eye(h))
    v = m_inv @ w.T
    p = {
        "W": torch.tensor(w)[None],
        "mu": torch.tensor(mu)[None],
        "sigma2": torch.tensor([sigma2], dtype=torch.float64),
        "V": torch.tensor(v)[None],
        "b": torch.tensor(-v @ mu)[None],
        "tau2": torch.tensor(sigma2 * np.diag(m_inv))[None],
        "mask": torch.ones(1, h, dtype=torch.float64),
    }
    elbo = float(objectives.batch_elbo(torch.tensor(x), **p)[0])
    assert elbo == pytest.approx(ppca.loglik(w, sigma2, ppca.covariance(x, mean=mu)), abs=1e-9)


def test_analytic_elbo_is_below_loglik_at_arbitrary_encoder() -> None:
    p = _random_params(6, m=1, hmax=2)
    p["mask"] = torch.ones(1, 2, dtype=torch.float64)
    x = torch.randn(300, 6, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    elbo = float(objectives.batch_elbo(x, **p)[0])
    w, mu = p["W"][0].numpy(), p["mu"][0].numpy()
    exact = ppca.loglik(w, float(p["sigma2"][0]), ppca.covariance(x.numpy(), mean=mu))
    assert elbo < exact


def test_mc_sq_err_equals_decoding_every_sample() -> None:
    p = _random_params(8)
    x = torch.randn(9, 6, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    W = p["W"] * p["mask"][:, None, :]
    nu = objectives.encoder_means(x, p["V"], p["b"], p["mask"])
    got = objectives.mc_sq_err(x, nu, W, p["mu"], p["tau2"], 13, torch.Generator().manual_seed(3))
    eps = torch.randn((13, *nu.shape), generator=torch.Generator().manual_seed(3), dtype=nu.dtype)
    z = nu[None] + p["tau2"].sqrt()[None, :, None, :] * eps
    recon = torch.einsum("smbh,mdh->smbd", z, W) + p["mu"][None, :, None, :]
    expected = (x[None, None] - recon).square().sum(-1).mean(0)
    assert torch.allclose(got, expected, rtol=1e-12, atol=1e-10)


def test_closed_form_gradients_equal_autograd() -> None:
    p = _random_params(10)
    x = torch.randn(11, 6, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    raw = {
        "W": p["W"],
        "mu": p["mu"],
        "sigma_raw": torch.log(torch.expm1(p["sigma2"].sqrt())),  # softplus^-1 of sigma
        "V": p["V"],
        "b": p["b"],
        "tau_raw": torch.log(torch.expm1(p["tau2"].sqrt())),
    }
    elbo, grads = objectives.analytic_elbo_and_grads(x, **raw, mask=p["mask"])
    leaves = {k: v.clone().requires_grad_(True) for k, v in raw.items()}
    softplus = torch.nn.functional.softplus
    expected = objectives.batch_elbo(
        x,
        leaves["W"],
        leaves["mu"],
        softplus(leaves["sigma_raw"]).square(),
        leaves["V"],
        leaves["b"],
        softplus(leaves["tau_raw"]).square(),
        p["mask"],
    )
    (-expected.sum()).backward()
    assert torch.allclose(elbo, expected.detach(), rtol=0, atol=1e-12)
    for k, leaf in leaves.items():
        assert leaf.grad is not None
        assert torch.allclose(grads[k], leaf.grad, rtol=1e-10, atol=1e-12), k
