"""Change detection (the controller) and the convergence flag, judged on streams whose truth is
known: stationary real and synthetic data, and the paper's changing stream."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from streaming import ppca
from streaming.data import paper_stream, ppca_data
from streaming.learner import Learner
from streaming.spec import StreamSpec
from tests.streaming.helpers import WINE, shuffled


def test_stationary_raw_real_data_raises_no_alarm() -> None:
    # raw breast cancer: variances over 12 orders of magnitude, heavy tails
    x = load_breast_cancer().data.astype(np.float32)
    learner = Learner(30, StreamSpec(latent_dims=(4, 8, 12, 16), device="cpu"))
    for xb in shuffled(x, 1500, 10, seed=0):
        report = learner.learn_many(xb)
    assert (report.training.alarms, report.training.restarts) == (0, 0)


def test_change_of_dimension_is_detected_and_training_restarts() -> None:
    x, _ = paper_stream((6, 2), chunk_size=2000, seed=1)
    learner = Learner(10, StreamSpec(device="cpu"))
    alarmed_at = None
    for i in range(0, len(x), 10):
        report = learner.learn_many(x[i : i + 10])
        if report.training.alarms and alarmed_at is None:
            alarmed_at = i
    assert alarmed_at is not None and 2000 <= alarmed_at < 2100  # within 10 batches
    assert report.training.restarts == 1
    assert report.best_latent_dim == 2


def test_without_detection_nothing_restarts() -> None:
    x, _ = paper_stream((6, 2), chunk_size=1000, seed=1)
    learner = Learner(10, StreamSpec(device="cpu", adaptive=False))
    for i in range(0, len(x), 10):
        report = learner.learn_many(x[i : i + 10])
    assert (report.training.alarms, report.training.restarts) == (0, 0)


def test_adam_rate_starts_boosted_and_decays_to_the_quiet_rate() -> None:
    x = ppca_data(6000, 6, 2, noise=0.3, seed=4)
    spec = StreamSpec(latent_dims=(1, 2), optimizer="adam", device="cpu")
    learner = Learner(6, spec)
    first = learner.learn_many(x[:10]).training.step_size
    assert first == pytest.approx(spec.boost_learning_rate, rel=0.05)
    for i in range(10, len(x), 10):
        report = learner.learn_many(x[i : i + 10])
    assert report.training.step_size == pytest.approx(spec.learning_rate, rel=0.1)


def test_adam_alarm_cannot_last_forever_on_data_its_models_cannot_match() -> None:
    # raw wine, then the same rows in units a thousand times larger, which Adam's steps of
    # ~0.002 cannot follow: the alarm rises, and ends after MAX_ALARM_BATCHES at the latest
    learner = Learner(13, StreamSpec(latent_dims=(1, 2), optimizer="adam", device="cpu"))
    for xb in shuffled(WINE, 300, 10, seed=7):
        learner.learn_many(xb)
    alarmed = [learner.learn_many(xb * 1000).training.alarmed
               for xb in shuffled(WINE, 600, 10, seed=8)]  # fmt: skip
    assert alarmed[:20].count(True) > 0
    assert not any(alarmed[-100:])
    assert learner.report().training.alarms >= 1


@pytest.mark.parametrize(("dim", "rows"), [(10, 10), (64, 256)], ids=["D10", "D64"])
def test_converged_only_when_every_candidate_is_near_the_optimum(dim: int, rows: int) -> None:
    # p-PCA data with a known population optimum: the flag must speak, and never while a
    # candidate's F_ent is more than 5% off
    x = ppca_data(40 * rows * (10 if dim == 10 else 1), dim, 4, noise=0.5, seed=5)
    lam = np.sort(np.linalg.eigvalsh(_population(dim, seed=5)))[::-1]
    dims = (2, 4, 6)
    truth = np.array([ppca.ml_loglik(lam, h) for h in dims])
    learner = Learner(dim, StreamSpec(latent_dims=dims, device="cpu"))
    flagged = []
    for i in range(0, len(x), rows):
        report = learner.learn_many(x[i : i + rows])
        gap = np.abs(np.array([m.entropy_elbo for m in report.models]) - truth) / np.abs(truth)
        if report.converged:
            flagged.append(gap.max())
    assert flagged, "never converged"
    assert max(flagged) < 0.05


def _population(dim: int, seed: int) -> np.ndarray:
    """The covariance ppca_data(..., dim, 4, noise=0.5, seed) draws from."""
    from streaming.data import random_orthogonal

    u = random_orthogonal(dim, np.random.default_rng(seed))[:, :4]
    s = np.linspace(1.0, 3.0, 4)[::-1]
    return (u * s**2) @ u.T + 0.25 * np.eye(dim)


def test_adam_never_reports_converged() -> None:
    x = ppca_data(4000, 6, 2, noise=0.3, seed=6)
    learner = Learner(6, StreamSpec(latent_dims=(1, 2), optimizer="adam", device="cpu"))
    assert not any(learner.learn_many(x[i : i + 10]).converged for i in range(0, len(x), 10))
