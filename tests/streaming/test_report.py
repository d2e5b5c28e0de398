"""The plain results of a step: ModelScore's hand-written __init__ (streaming/report.py) is the
dataclass's own, field for field."""

import dataclasses

import pytest

from streaming.report import ModelScore

VALUES = {"latent_dim": 2, "entropy_elbo": -1.5, "bic": 40.0, "batch_elbo": -1.75,
          "batch_bic": 45.0, "sigma2": 0.25, "tau2": (0.5, 0.75), "encoder_entropies": (1.0, 1.2),
          "collapsed": (False, True), "active_latents": 1, "s_reg": -0.5, "s_rec": -1.0,
          "converged": True}  # fmt: skip


def test_model_score_takes_every_field_by_name_and_in_field_order() -> None:
    assert [f.name for f in dataclasses.fields(ModelScore)] == list(VALUES)
    by_name, by_position = ModelScore(**VALUES), ModelScore(*VALUES.values())
    assert dataclasses.asdict(by_name) == dataclasses.asdict(by_position) == VALUES
    assert by_name == by_position and hash(by_name) == hash(by_position)
    assert dataclasses.replace(by_name, bic=1.0).bic == 1.0


def test_model_score_defaults_converged_and_stays_frozen() -> None:
    score = ModelScore(*list(VALUES.values())[:-1])
    assert score.converged is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        score.bic = 0.0  # type: ignore[misc]
