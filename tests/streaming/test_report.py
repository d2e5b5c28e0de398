"""The plain results of a step: ModelScore's hand-written __init__ (streaming/report.py) is the
dataclass's own, field for field."""

import dataclasses
import math

import pytest

from streaming.report import U_MAX, ModelScore, n_of_u

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


@pytest.mark.parametrize("u", [U_MAX * (1 - 1e-9), 0.3, 0.1, 1e-3, 1e-8, 1e-40, 1e-300])
def test_n_of_u_inverts_log_n_over_n(u: float) -> None:
    n = n_of_u(u)
    assert n > 3.0
    assert math.log(n) / n == pytest.approx(u, rel=1e-12)


def test_n_of_u_is_three_from_the_top_of_u() -> None:
    assert n_of_u(U_MAX) == n_of_u(1.0) == 3.0
