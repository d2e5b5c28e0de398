"""Contracts that every configuration of the bank keeps (river-style common checks)."""

import io
from dataclasses import replace

import numpy as np
import pytest
import torch

from streaming.bank import LinearVAEBank
from streaming.config import BankConfig
from streaming.data import ppca_data
from streaming.errors import InvalidBatchError, InvalidConfigError

CONFIGS = {
    "natural": BankConfig(device="cpu"),
    "natural-standardized": BankConfig(latent_dims=(1, 3), standardize=True, device="cpu"),
    "adam-analytic": BankConfig(optimizer="adam", device="cpu"),
    "adam-mc": BankConfig(optimizer="adam", estimator="mc", mc_samples=7, device="cpu"),
    "sgd-one-latent": BankConfig(latent_dims=(1,), optimizer="sgd", device="cpu"),
    "unsorted-dims": BankConfig(latent_dims=(5, 1, 3), device="cpu", seed=3),
}
X = ppca_data(400, 8, 3, seed=0)


@pytest.fixture(params=list(CONFIGS), ids=list(CONFIGS))
def config(request: pytest.FixtureRequest) -> BankConfig:
    return CONFIGS[request.param]


def _batches(n: int) -> list[np.ndarray]:
    return [X[i * 10 : i * 10 + 10] for i in range(n)]


def test_learn_many_does_not_mutate_input(config: BankConfig) -> None:
    bank, batch = LinearVAEBank(8, config), X[:10].copy()
    bank.learn_many(batch)
    np.testing.assert_array_equal(batch, X[:10])


def test_same_seed_gives_identical_state(config: BankConfig) -> None:
    a, b = LinearVAEBank(8, config), LinearVAEBank(8, config)
    for xb in _batches(5):
        a.learn_many(xb)
        b.learn_many(xb)
    assert a.state_bytes() == b.state_bytes()


def test_other_seed_gives_other_parameters(config: BankConfig) -> None:
    a, b = LinearVAEBank(8, config), LinearVAEBank(8, replace(config, seed=config.seed + 1))
    assert a.params(config.latent_dims[0]).W != b.params(config.latent_dims[0]).W


def test_save_load_mid_stream_continues_identically(config: BankConfig) -> None:
    batches = _batches(12)
    original = LinearVAEBank(8, config)
    for xb in batches[:6]:
        original.learn_many(xb)
    restored = LinearVAEBank.from_bytes(original.state_bytes())
    for xb in batches[6:]:
        expected, got = original.learn_many(xb), restored.learn_many(xb)
        assert got == expected
    _assert_same_state(restored, original)


def _assert_same_state(a: LinearVAEBank, b: LinearVAEBank) -> None:
    """Equal state, value by value (pickle's memo makes equal states' bytes differ in layout)."""
    sa, sb = (torch.load(io.BytesIO(x.state_bytes()), weights_only=True) for x in (a, b))
    _assert_equal_tree(sa, sb)


def _assert_equal_tree(a: object, b: object) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            _assert_equal_tree(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_equal_tree(x, y)
    else:
        assert a == b


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (X[:10, :7], "expected 8 columns, got 7"),
        (X[:0], "expected at least one row"),
        (X[0], "expected a 2-D batch"),
        (X[:4].reshape(2, 2, 8), "expected a 2-D batch"),
        (np.where(np.eye(10, 8) > 0, np.nan, X[:10]), "NaN or Inf"),
        (np.where(np.eye(10, 8) > 0, np.inf, X[:10]), "NaN or Inf"),
        (X[:10].tolist(), "expected a 2-D numpy array or torch tensor"),
        (X[:10].astype(str), "expected numbers"),
    ],
    ids=["columns", "empty", "1d", "3d", "nan", "inf", "list", "strings"],
)
def test_bad_batch_raises_and_changes_nothing(
    config: BankConfig, batch: object, message: str
) -> None:
    bank = LinearVAEBank(8, config)
    bank.learn_many(X[:10])
    before = bank.state_bytes()
    with pytest.raises(InvalidBatchError, match=message):
        bank.learn_many(batch)  # type: ignore[arg-type]
    assert bank.state_bytes() == before


@pytest.mark.parametrize(
    ("dims", "message"),
    [((), "at least one"), ((0, 2), ">= 1"), ((2, 2), "distinct"), ((2, 8), "H < D = 8")],
    ids=["empty", "zero", "duplicate", "too-big"],
)
def test_bad_latent_dims_raise(dims: tuple[int, ...], message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        LinearVAEBank(8, BankConfig(latent_dims=dims, device="cpu"))


def test_report_before_any_step_has_no_batch_scores(config: BankConfig) -> None:
    report = LinearVAEBank(8, config).report()
    assert (report.step, report.rows, report.rows_seen) == (0, 0, 0)
    assert all(m.batch_elbo is None and m.batch_bic is None for m in report.models)
    assert [m.latent_dim for m in report.models] == list(config.latent_dims)


def test_encode_and_reconstruct_shapes(config: BankConfig) -> None:
    bank = LinearVAEBank(8, config)
    h = config.latent_dims[-1]
    assert bank.encode(X[:5], h).shape == (5, h)
    assert bank.reconstruct(X[:5], h).shape == (5, 8)
    assert bank.encode(X[:5]).shape == (5, bank.best_latent_dim)


def test_unknown_latent_dim_raises() -> None:
    with pytest.raises(InvalidConfigError, match="expected one of"):
        LinearVAEBank(8, BankConfig(device="cpu")).params(3)
