"""The adaptive bank: alarms on the gap between batch ELBO and entropy ELBO, learning-rate boost,
optimizer resets, averaged scores (streaming/adaptive.py)."""

import math

import numpy as np
import pytest

from streaming.adaptive import AdaptiveBank, AdaptiveConfig
from streaming.bank import LinearVAEBank
from streaming.config import BankConfig
from streaming.data import ppca_data
from streaming.errors import InvalidConfigError

DIM = 6
CONFIG = BankConfig(latent_dims=(1, 3), learning_rate=0.002, optimizer="adam", device="cpu", seed=0)


def _feed(bank: AdaptiveBank, x: np.ndarray, rows: int = 10) -> None:
    for start in range(0, x.shape[0], rows):
        bank.learn_many(x[start : start + rows])


def _converged() -> AdaptiveBank:
    """A bank that has settled on stationary data of intrinsic dimension 1."""
    bank = AdaptiveBank(DIM, CONFIG, AdaptiveConfig(boost_lr=0.05, reset_every=10))
    _feed(bank, ppca_data(8_000, DIM, 1, noise=0.1, seed=1))
    return bank


def test_learning_rate_starts_at_boost() -> None:
    bank = AdaptiveBank(DIM, CONFIG, AdaptiveConfig(boost_lr=0.03))
    assert bank.learning_rate == 0.03
    assert bank.bank._optimizer.param_groups[0]["lr"] == 0.03


def test_learning_rate_decays_to_quiet_rate_on_stationary_data() -> None:
    bank = _converged()
    assert bank.since_alarm >= 200
    expected = 0.002 + (0.05 - 0.002) * math.exp(-bank.since_alarm / 50.0)
    assert bank.learning_rate == pytest.approx(expected, rel=1e-12)
    assert bank.learning_rate < 0.0021


def test_change_of_dimension_raises_alarm_and_boost() -> None:
    bank = _converged()
    alarms, resets = bank.alarms, bank.resets
    _feed(bank, ppca_data(100, DIM, 3, noise=0.1, seed=2))  # winsorised: ~5 batches to alarm
    assert bank.alarms == alarms + 1
    assert bank.resets >= resets + 1
    assert bank.since_alarm == 0
    assert bank.learning_rate == 0.05


def test_alarm_start_drops_optimizer_moments() -> None:
    bank = _converged()
    alarms = bank.alarms
    changed = ppca_data(200, DIM, 3, noise=2.0, seed=2)
    for start in range(0, 190, 10):  # bounded: the winsorised gap alarms within a few batches
        bank.learn_many(changed[start : start + 10])
        if bank.alarms > alarms:
            break
    bank.learn_many(changed[190:])
    steps = {int(s["step"]) for s in bank.bank._optimizer.state.values()}
    assert bank.alarms == alarms + 1
    assert steps == {1}


def test_no_boost_no_reset_trains_like_plain_bank() -> None:
    x = ppca_data(400, DIM, 2, noise=0.1, seed=4)
    plain = LinearVAEBank(DIM, CONFIG)
    adaptive = AdaptiveBank(
        DIM, CONFIG, AdaptiveConfig(boost_lr=0.002, reset_optimizer=False, switch_margin=0.0)
    )
    for start in range(0, 400, 10):
        expected = plain.learn_many(x[start : start + 10])
        got = adaptive.learn_many(x[start : start + 10])
        assert (got.models, got.best_latent_dim) == (expected.models, expected.best_latent_dim)


def test_score_rate_averages_entropy_elbo_into_bic() -> None:
    x = ppca_data(30, DIM, 2, noise=0.1, seed=5)
    plain = LinearVAEBank(DIM, CONFIG)
    f = [np.array([m.entropy_elbo for m in plain.report().models])]
    for start in range(0, 30, 10):
        f.append(np.array([m.entropy_elbo for m in plain.learn_many(x[start : start + 10]).models]))
    adaptive = AdaptiveBank(
        DIM,
        CONFIG,
        AdaptiveConfig(boost_lr=0.002, reset_optimizer=False, score_rate=0.5, switch_margin=0.0),
    )
    _feed(adaptive, x)
    score = f[0]
    for value in f[1:]:
        score = 0.5 * score + 0.5 * value
    rep = adaptive.report()
    bic = (np.array([1.0, 3.0]) * DIM + 1) * math.log(10) - 20.0 * score
    assert [m.entropy_elbo for m in rep.models] == pytest.approx(score.tolist(), rel=1e-12)
    assert [m.bic for m in rep.models] == pytest.approx(bic.tolist(), rel=1e-12)
    assert rep.best_latent_dim == (1, 3)[int(np.argmin(bic))]


def test_same_seed_gives_same_picks() -> None:
    x = ppca_data(1_000, DIM, 3, noise=0.1, seed=6)
    a = AdaptiveBank(DIM, CONFIG, AdaptiveConfig(boost_lr=0.05, reset_every=10))
    b = AdaptiveBank(DIM, CONFIG, AdaptiveConfig(boost_lr=0.05, reset_every=10))
    for start in range(0, 1_000, 10):
        assert a.learn_many(x[start : start + 10]) == b.learn_many(x[start : start + 10])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("boost_lr", 0.0, "boost_lr: expected a positive number, got 0.0"),
        ("decay_batches", -1.0, "decay_batches: expected a positive number, got -1.0"),
        ("gap_rate", 1.5, "gap_rate: expected a number in (0, 1], got 1.5"),
        ("score_rate", 0.0, "score_rate: expected a number in (0, 1], got 0.0"),
        ("threshold", 0.0, "threshold: expected a positive number, got 0.0"),
        ("reset_every", -1, "reset_every: expected >= 0, got -1"),
        ("switch_margin", -1.0, "switch_margin: expected >= 0, got -1.0"),
    ],
)
def test_invalid_adaptive_config_raises(field: str, value: float, message: str) -> None:
    with pytest.raises(InvalidConfigError) as info:
        AdaptiveConfig(**{field: value})  # type: ignore[arg-type]
    assert str(info.value) == message


def test_state_round_trip_continues_identically() -> None:
    x = ppca_data(600, DIM, 3, noise=0.1, seed=7)
    a = AdaptiveBank(DIM, CONFIG, AdaptiveConfig(boost_lr=0.05, reset_every=10))
    _feed(a, x[:300])
    b = AdaptiveBank.from_bytes(a.state_bytes())
    assert (b.step, b.rows_seen, b.since_alarm, b.alarms, b.resets) == (
        a.step,
        a.rows_seen,
        a.since_alarm,
        a.alarms,
        a.resets,
    )
    for start in range(300, 600, 10):
        assert a.learn_many(x[start : start + 10]) == b.learn_many(x[start : start + 10])
    assert a.learning_rate == b.learning_rate


def test_pick_switches_only_past_the_margin() -> None:
    x = np.concatenate(
        [ppca_data(2_000, DIM, 1, noise=0.1, seed=8), ppca_data(2_000, DIM, 3, noise=0.1, seed=9)]
    )
    bank = AdaptiveBank(DIM, CONFIG, AdaptiveConfig(switch_margin=5.0))
    previous = None
    switches = 0
    for start in range(0, 4_000, 10):
        rep = bank.learn_many(x[start : start + 10])
        bic = {m.latent_dim: m.bic for m in rep.models}
        assert bic[rep.best_latent_dim] <= min(bic.values()) + 5.0
        if previous is not None and rep.best_latent_dim != previous:
            switches += 1
            assert bic[rep.best_latent_dim] == min(bic.values())
            assert bic[rep.best_latent_dim] < bic[previous] - 5.0
        previous = rep.best_latent_dim
    assert switches >= 1
    assert previous == 3


def test_model_access_defaults_to_the_held_pick() -> None:
    x = ppca_data(400, 8, 3, seed=2)
    bank = AdaptiveBank(8, BankConfig(device="cpu"))
    for i in range(10):
        bank.learn_many(x[i * 10 : i * 10 + 10])
    h = bank.best_latent_dim
    assert bank.params().latent_dim == h
    assert bank.encode(x[:3]).shape == (3, h)
    np.testing.assert_array_equal(bank.reconstruct(x[:3]), bank.bank.reconstruct(x[:3], h))
    assert (bank.config, bank.device) == (bank.bank.config, bank.bank.device)
