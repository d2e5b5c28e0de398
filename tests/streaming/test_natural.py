"""The default natural step on data as users push it: raw real data, offsets, scales, z-scores,
overflow, and the convergence flag, judged against the exact p-PCA optimum (docs/math.md)."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine

from streaming import ppca
from streaming.adaptive import AdaptiveBank
from streaming.bank import LinearVAEBank
from streaming.config import BankConfig
from streaming.data import ppca_data
from streaming.errors import InvalidBatchError, InvalidConfigError

WINE = load_wine().data.astype(np.float32)  # 178 x 13, raw units (proline ~ 1e3, hue ~ 1)
WINE_DIMS = (1, 2, 4, 6)


def _exact(x: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    """L_ML(H) per row of the data set x (float64), for every H in dims."""
    lam = np.linalg.eigvalsh(ppca.covariance(x.astype(np.float64)))
    return np.array([ppca.ml_loglik(lam, h) for h in dims])


def _exact_pick(lls: np.ndarray, dims: tuple[int, ...], dim: int, n: int = 10) -> int:
    bic = [(h * dim + 1) * math.log(n) - 2 * n * ll for h, ll in zip(dims, lls, strict=True)]
    return dims[int(np.argmin(bic))]


def _train(bank: LinearVAEBank | AdaptiveBank, x: np.ndarray, batches: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(batches):
        bank.learn_many(x[rng.integers(0, len(x), 10)])


@pytest.fixture(scope="module")
def wine_bank() -> AdaptiveBank:
    """The service's default training on raw wine, shuffled, 3,000 batches of 10 rows."""
    torch.set_num_threads(1)
    bank = AdaptiveBank(13, BankConfig(latent_dims=WINE_DIMS, device="cpu"))
    _train(bank, WINE, 3000, seed=0)
    return bank


def test_raw_wine_reaches_exact_optimum_for_every_candidate(wine_bank: AdaptiveBank) -> None:
    exact = _exact(WINE, WINE_DIMS)
    got = np.array([m.entropy_elbo for m in wine_bank.report().models])
    np.testing.assert_allclose(got, exact, rtol=0.01)  # Adam: 10-456% off here after 140k rows


def test_raw_wine_picks_exact_bic_choice_that_is_not_smallest(wine_bank: AdaptiveBank) -> None:
    pick = _exact_pick(_exact(WINE, WINE_DIMS), WINE_DIMS, 13)
    assert pick == 4  # not the smallest candidate: the agreement means something
    assert wine_bank.report().best_latent_dim == pick


def test_raw_wine_is_flagged_converged_with_right_path(wine_bank: AdaptiveBank) -> None:
    rep = wine_bank.report()
    assert rep.converged
    assert rep.margin is not None and rep.margin > 0
    assert rep.path[0].latent_dim == 4  # from N = 3 on: H = 4 first
    assert rep.training.alarmed is False


def test_served_numbers_stay_in_the_data_units(wine_bank: AdaptiveBank) -> None:
    params = wine_bank.params(4)
    np.testing.assert_allclose(params.mu, WINE.mean(0), rtol=0.05)
    lam = np.sort(np.linalg.eigvalsh(ppca.covariance(WINE.astype(np.float64))))[::-1]
    assert params.sigma2 == pytest.approx(lam[4:].mean(), rel=0.05)
    z = wine_bank.encode(WINE[:5], 4)
    assert np.isfinite(z).all() and z.shape == (5, 4)


def test_converged_flag_never_set_while_far_from_optimum() -> None:
    torch.set_num_threads(1)
    exact = _exact(WINE, WINE_DIMS)
    bank = AdaptiveBank(13, BankConfig(latent_dims=WINE_DIMS, device="cpu", seed=1))
    rng = np.random.default_rng(1)
    flagged = []
    for _ in range(1500):
        rep = bank.learn_many(WINE[rng.integers(0, len(WINE), 10)])
        for m, ll in zip(rep.models, exact, strict=True):
            if m.converged:
                flagged.append(abs(m.entropy_elbo - ll) / abs(ll))
    assert flagged, "some candidate converged within 15,000 rows"
    assert max(flagged) < 0.05


def test_offset_and_scale_change_f_ent_as_the_invariances_say() -> None:
    """x' = 1000 x + 100: every H's F_ent shifts by -D log 1000 and the pick is unchanged."""
    torch.set_num_threads(1)
    x = ppca_data(4000, 8, 3, noise=0.3, seed=2).astype(np.float32)
    banks = []
    for data in (x, 1000.0 * x + 100.0):
        bank = LinearVAEBank(8, BankConfig(latent_dims=(1, 3, 5), device="cpu"))
        _train(bank, data, 2000, seed=3)
        banks.append(bank.report())
    shift = -8 * math.log(1000.0)
    for a, b in zip(banks[0].models, banks[1].models, strict=True):
        assert b.entropy_elbo - shift == pytest.approx(a.entropy_elbo, abs=0.05)
    assert banks[0].best_latent_dim == banks[1].best_latent_dim == 3


def test_standardize_models_the_correlation_matrix_and_answers_raw_units() -> None:
    torch.set_num_threads(1)
    bank = LinearVAEBank(13, BankConfig(latent_dims=(2, 4), standardize=True, device="cpu"))
    _train(bank, WINE, 3000, seed=4)
    corr = np.corrcoef(WINE.astype(np.float64).T)
    exact = [ppca.ml_loglik(np.linalg.eigvalsh(corr), h) for h in (2, 4)]
    got = [m.entropy_elbo for m in bank.report().models]
    np.testing.assert_allclose(got, exact, rtol=0.02)
    params = bank.params(4)
    assert params.standardized and params.scaler_scale is not None
    assert params.scaler_mean is not None
    np.testing.assert_allclose(params.scaler_scale, WINE.std(0), rtol=0.05)
    # raw rows in, raw rows out: the z-space model's reconstruction mapped back by the scaler
    mean, scale = np.array(params.scaler_mean), np.array(params.scaler_scale)
    z = (WINE[:20].astype(np.float64) - mean) / scale
    nu = z @ np.array(params.V).T + np.array(params.b)
    expected = (nu @ np.array(params.W).T + np.array(params.mu)) * scale + mean
    np.testing.assert_allclose(bank.reconstruct(WINE[:20], 4), expected, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(bank.encode(WINE[:20], 4), nu, rtol=1e-3, atol=1e-3)


def test_repushing_the_same_rows_keeps_the_pick_on_stationary_data() -> None:
    torch.set_num_threads(1)
    x = ppca_data(2000, 10, 4, noise=0.3, seed=5).astype(np.float32)
    bank = AdaptiveBank(10, BankConfig(device="cpu"))
    picks = []
    for _ in range(3):  # the same file pushed three times, in the same order
        for start in range(0, len(x), 10):
            picks.append(bank.learn_many(x[start : start + 10]).best_latent_dim)
    tail = picks[len(picks) // 3 :]
    assert set(tail) == {4}


@pytest.mark.parametrize(
    "config",
    [
        BankConfig(latent_dims=(1, 2), device="cpu"),
        BankConfig(latent_dims=(1, 2), optimizer="adam", device="cpu"),
        BankConfig(latent_dims=(1, 2), optimizer="adam", estimator="mc", mc_samples=3),
    ],
    ids=["natural", "adam", "adam-mc"],
)
def test_overflowing_batch_is_refused_and_changes_nothing(config: BankConfig) -> None:
    bank = LinearVAEBank(4, replace(config, device="cpu"))
    rng = np.random.default_rng(6)
    for _ in range(3):
        bank.learn_many(rng.normal(size=(10, 4)).astype(np.float32))
    before = bank.report()
    state = bank.state_bytes()
    bad = rng.normal(size=(10, 4)).astype(np.float32)
    bad[3, 1] = 1e20  # finite, but its square overflows float32
    with pytest.raises(InvalidBatchError, match="non-finite"):
        bank.learn_many(bad)
    assert bank.report() == before
    assert bank.state_bytes() == state  # parameters, moments and the sampler's generator
    again = LinearVAEBank.from_bytes(state)
    good = rng.normal(size=(10, 4)).astype(np.float32)
    assert bank.learn_many(good) == again.learn_many(good)


def test_first_batch_with_overflowing_values_is_refused() -> None:
    """Schemathesis' row: its squares overflow, so the first guess's rotation (eigh) failed."""
    bank = LinearVAEBank(7, BankConfig(device="cpu"))
    state = bank.state_bytes()
    row = np.array([[0, -0.99999, -4.9e-51, 2.7e38, -7.5e-163, 3.6e37, 1.4e16]], np.float32)
    with pytest.raises(InvalidBatchError, match="non-finite"):
        bank.learn_many(row)
    assert bank.state_bytes() == state
    assert bank.learn_many(np.ones((2, 7), np.float32)).step == 1


def test_learning_rate_beyond_one_is_refused() -> None:
    with pytest.raises(InvalidConfigError, match="learning_rate"):
        BankConfig(learning_rate=1000.0, optimizer="adam")


def test_transform_of_overflowing_rows_is_refused() -> None:
    bank = LinearVAEBank(4, BankConfig(latent_dims=(1,), device="cpu"))
    rng = np.random.default_rng(8)
    for _ in range(5):  # tiny data: the encoder's weights are ~1e20
        bank.learn_many((rng.normal(size=(10, 4)) * 1e-20).astype(np.float32))
    with pytest.raises(InvalidBatchError, match="projection overflows float32"):
        bank.encode(np.full((1, 4), 1e30, dtype=np.float32))


def test_alarm_cannot_last_forever_on_data_the_models_cannot_match() -> None:
    """Adam on raw wine never gets near the optimum; the alarm still ends (issue: it stayed
    alarmed for 12,000 batches with the rate pinned at the boost)."""
    torch.set_num_threads(1)
    bank = AdaptiveBank(13, BankConfig(latent_dims=(1, 2), optimizer="adam", device="cpu"))
    rng = np.random.default_rng(7)
    quiet = 0
    for _ in range(800):
        rep = bank.learn_many(WINE[rng.integers(0, len(WINE), 10)])
        quiet += not rep.training.alarmed
    assert quiet > 200
    assert bank.alarms >= 1 and bank.resets >= 1


def test_path_is_the_lower_envelope_of_the_bic_over_n(wine_bank: AdaptiveBank) -> None:
    rep = wine_bank.report()
    f = {m.latent_dim: m.entropy_elbo for m in rep.models}
    for n in np.geomspace(3.0, 1e6, 400):
        brute = min(WINE_DIMS, key=lambda h: (h * 13 + 1) * math.log(n) - 2 * n * f[h])
        piece = next(p for p in rep.path if p.n_from <= n and (p.n_to is None or n < p.n_to))
        assert piece.latent_dim == brute, n
