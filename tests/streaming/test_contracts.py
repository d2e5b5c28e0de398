"""Contracts every configuration keeps, through the learner's public API only, over the matrix
update rule x change detection x standardize (the service's default among them)."""

import io
import itertools
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from streaming.data import ppca_data
from streaming.errors import InvalidBatchError, InvalidConfigError
from streaming.learner import Learner
from streaming.spec import StreamSpec


@dataclass(frozen=True)
class Case:
    rule: str
    dim: int
    spec: StreamSpec

    def batches(self, n: int = 8, seed: int = 0) -> list[np.ndarray]:
        x = ppca_data(20 * n, self.dim, 2, noise=0.3, seed=seed, mean=np.arange(self.dim) * 3.0)
        return [x[i * 20 : (i + 1) * 20] for i in range(n)]


RULES = {
    "subspace": (6, {}),  # D <= K + 8: the whole covariance
    "subspace-tracked": (40, {}),  # a tracked subspace of K = 11 directions
    "adam": (6, {"optimizer": "adam"}),
    "adam-mc": (6, {"optimizer": "adam", "estimator": "mc", "mc_samples": 3}),
    "sgd": (6, {"optimizer": "sgd", "learning_rate": 0.01, "boost_learning_rate": 0.01}),
}
CASES = {
    f"{rule}-{'adaptive' if adaptive else 'fixed'}-{'std' if std else 'raw'}": Case(
        rule,
        dim,
        StreamSpec(latent_dims=(1, 3), device="cpu", adaptive=adaptive, standardize=std, **extra),
    )
    for (rule, (dim, extra)), adaptive, std in itertools.product(
        RULES.items(), (True, False), (False, True)
    )
}
DEFAULT = "subspace-adaptive-raw"  # what the service runs for a new stream
assert StreamSpec(latent_dims=(1, 3), device="cpu") == CASES[DEFAULT].spec


@pytest.fixture(params=list(CASES), ids=list(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


def test_learn_many_does_not_mutate_input(case: Case) -> None:
    x = case.batches(1)[0]
    before = x.copy()
    Learner(case.dim, case.spec).learn_many(x)
    np.testing.assert_array_equal(x, before)


def test_same_seed_gives_identical_reports_and_state(case: Case) -> None:
    a, b = Learner(case.dim, case.spec), Learner(case.dim, case.spec)
    for x in case.batches():
        assert a.learn_many(x) == b.learn_many(x)
    assert a.params(3) == b.params(3)


def test_other_seed_gives_other_models(case: Case) -> None:
    a, b = Learner(case.dim, case.spec), Learner(case.dim, case.spec.replace(seed=1))
    for x in case.batches(3):
        a.learn_many(x)
        b.learn_many(x)
    if case.spec.gradient:
        assert a.params(3).W != b.params(3).W  # seeded initialisation
    else:  # the fit is exact: only the tracked basis's first draw depends on the seed
        fa, fb = (m.report().models[0].entropy_elbo for m in (a, b))
        assert fa == pytest.approx(fb, rel=1e-9 if case.rule == "subspace" else 1e-3)


def test_save_load_mid_stream_continues_identically(case: Case) -> None:
    batches = case.batches(10)
    original = Learner(case.dim, case.spec)
    for x in batches[:5]:
        original.learn_many(x)
    copy = Learner.from_bytes(original.state_bytes())
    assert copy.report() == original.report()
    for x in batches[5:]:
        assert copy.learn_many(x) == original.learn_many(x)
    assert copy.params(1) == original.params(1)
    assert _values(copy.state_bytes()) == _values(original.state_bytes())


def _values(state: bytes) -> object:
    """A state's values as nested plain lists (torch.save's bytes of equal states can differ in
    layout: pickle's memo)."""

    def plain(v: object) -> object:
        if isinstance(v, torch.Tensor):
            return ("tensor", v.dtype, v.tolist())
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        if isinstance(v, float) and math.isnan(v):
            return "nan"
        return v

    return plain(torch.load(io.BytesIO(state), weights_only=True))


BAD = {  # (D -> a bad batch, what the error says)
    "columns": (lambda d: np.zeros((3, d - 1), np.float32), "expected {d} columns, got {e}"),
    "1-d": (lambda d: np.zeros(d, np.float32), "expected a 2-D batch"),
    "empty": (lambda d: np.zeros((0, d), np.float32), "expected at least one row"),
    "nan": (lambda d: np.full((2, d), np.nan, np.float32), "expected finite numbers"),
    "strings": (lambda d: np.array([["a"] * d]), "expected numbers"),
    "list": (lambda d: [[0.0] * d], "expected a 2-D numpy array or torch tensor, got list"),
}


@pytest.mark.parametrize("bad", list(BAD), ids=list(BAD))
def test_bad_batch_raises_and_changes_nothing(case: Case, bad: str) -> None:
    make, message = BAD[bad]
    learner = Learner(case.dim, case.spec)
    learner.learn_many(case.batches(1)[0])
    state = learner.state_bytes()
    with pytest.raises(InvalidBatchError, match=message.format(d=case.dim, e=case.dim - 1)):
        learner.learn_many(make(case.dim))
    assert learner.state_bytes() == state


def test_step_that_would_overflow_is_refused_and_changes_nothing(case: Case) -> None:
    # float32 rows whose squares overflow: the gradient rules' float32 arithmetic cannot take
    # them (refused, parameters, moments and generator untouched); the subspace rule squares in
    # float64 and learns them
    learner = Learner(case.dim, case.spec)
    batches = case.batches(3)
    for x in batches[:2]:
        learner.learn_many(x)
    state = learner.state_bytes()
    bad = batches[2].copy()
    bad[3, 1] = 1e20
    if not case.spec.gradient or case.spec.standardize:
        assert learner.learn_many(bad).step == 3
        return
    with pytest.raises(InvalidBatchError, match="non-finite"):
        learner.learn_many(bad)
    assert learner.state_bytes() == state


def test_report_before_any_step_has_no_batch_scores(case: Case) -> None:
    report = Learner(case.dim, case.spec).report()
    assert report.step == 0 and report.rows_seen == 0
    assert all(m.batch_elbo is None and m.batch_bic is None for m in report.models)
    assert not report.converged


def test_encode_and_reconstruct_give_float32_of_the_right_shape(case: Case) -> None:
    learner = Learner(case.dim, case.spec)
    x = case.batches(1)[0]
    learner.learn_many(x)
    z, back = learner.encode(x[:4], 3), learner.reconstruct(x[:4], 1)
    assert (z.shape, z.dtype, back.shape, back.dtype) == (
        (4, 3), np.float32, (4, case.dim), np.float32,
    )  # fmt: skip


def test_unknown_latent_dim_raises(case: Case) -> None:
    learner = Learner(case.dim, case.spec)
    with pytest.raises(InvalidConfigError, match=r"latent_dim: expected one of \[1, 3\], got 2"):
        learner.params(2)


def test_resident_bytes_covers_the_arrays_it_holds(case: Case) -> None:
    # what the memory budget reserves per stream: at least the arrays of the state (a
    # snapshot's tensors, the sampler's generator aside), and not wildly more
    learner = Learner(case.dim, case.spec)
    for x in case.batches(3):
        learner.learn_many(x)
    state = torch.load(io.BytesIO(learner.state_bytes()), weights_only=True)
    rule = {k: v for k, v in state["rule"].items() if k != "rng"}
    held = _tensor_bytes(rule) + _tensor_bytes(state["scaler"])
    assert held <= learner.resident_bytes() <= 3 * held + 4096


def _tensor_bytes(v: object) -> int:
    if isinstance(v, torch.Tensor):
        return v.numel() * v.element_size()
    if isinstance(v, dict):
        return sum(_tensor_bytes(x) for x in v.values())
    if isinstance(v, list | tuple):
        return sum(_tensor_bytes(x) for x in v)
    return 0
