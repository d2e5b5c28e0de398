"""Snapshots of earlier releases (LinearVAEBank / AdaptiveBank states, made by the code of
commit ea2bf86 and kept in tests/streaming/legacy/) load into the learner and go on."""

import json
from pathlib import Path

import numpy as np
import pytest

from streaming.learner import Learner

LEGACY = Path(__file__).parent / "legacy"
EXPECTED = json.loads((LEGACY / "expected.json").read_text())
ROWS = np.load(LEGACY / "rows.npy")


def _load(name: str) -> Learner:
    return Learner.from_bytes((LEGACY / f"{name}.pt").read_bytes(), device="cpu")


@pytest.mark.parametrize("name", ["adam_adaptive", "sgd_plain"])
def test_gradient_banks_continue_exactly_as_they_would_have(name: str) -> None:
    learner, expected = _load(name), EXPECTED[name]
    report = learner.report()
    assert (report.step, report.rows_seen) == (expected["step"], expected["rows_seen"])
    assert [m.entropy_elbo for m in report.models] == pytest.approx(expected["entropy_elbo"])
    for i, after in enumerate(expected["after_5_more"]):
        got = learner.learn_many(ROWS[(20 + i) * 10 : (21 + i) * 10])
        assert [m.entropy_elbo for m in got.models] == pytest.approx(after, abs=1e-5)


@pytest.mark.parametrize("name", ["natural_adaptive", "natural_standardize"])
def test_natural_step_banks_become_the_subspace_rule(name: str) -> None:
    learner, expected = _load(name), EXPECTED[name]
    assert learner.spec.optimizer == "subspace"
    assert learner.spec.adaptive == (name == "natural_adaptive")
    report = learner.report()
    assert (report.step, report.rows_seen) == (expected["step"], expected["rows_seen"])
    # the largest candidate's model is carried over as it was
    assert report.models[-1].entropy_elbo == pytest.approx(expected["entropy_elbo"][-1], rel=1e-6)
    for i in range(5):
        report = learner.learn_many(ROWS[(20 + i) * 10 : (21 + i) * 10])
    assert report.step == expected["step"] + 5
    assert all(np.isfinite(m.entropy_elbo) for m in report.models)
