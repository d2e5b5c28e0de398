"""The spread check the `converged` flag waits on (streaming/spread.py): a change that removes
directions from the stream turns the flag off at its first batch; stationary heavy-tailed data
never trips it."""

import math

import numpy as np
import pytest
from scipy.special import gammainc
from sklearn.datasets import load_breast_cancer, load_digits

from streaming import spread
from streaming.data import paper_stream, ppca_data
from streaming.learner import Learner
from streaming.spec import StreamSpec
from tests.streaming.helpers import shuffled


@pytest.mark.parametrize("a", [0.1, 0.5, 1.0, 5.0, 128.0])
def test_tail_bound_is_above_the_gamma_law(a: float) -> None:
    # log_tail bounds log P(a, a r) from above (so the check is never more sure than the law)
    # and is close to it in the far tail, where the check decides
    for r in np.geomspace(1e-6, 1.2, 60):
        p = gammainc(a, a * r)
        assert p == 0.0 or spread.log_tail(float(r), a) >= math.log(p) - 1e-9
    far = 1e-3 if a < 50 else 0.2
    assert spread.log_tail(far, a) - math.log(gammainc(a, a * far)) < 0.05


@pytest.mark.parametrize(
    ("dim", "rows", "seed"),
    [(10, 10, 0), (10, 10, 2), (40, 10, 1), (64, 64, 3)],
    ids=["paper-s0", "paper-s2", "D40-tracked", "D64-B64-tracked"],
)
def test_flag_is_off_from_the_first_batch_after_latents_vanish(
    dim: int, rows: int, seed: int
) -> None:
    # 6 latents, then only the 2 smallest of them: the new rows score a little better under
    # the old models (the batch ELBO cannot tell), the detector takes batches to alarm, and
    # before the check the flag stayed on meanwhile (paper stream: 5 batches, F_ent 568% from
    # the new optimum). Now: off at the change's first batch, and until the restart.
    x = _vanishing(dim, seed, 2000 if dim == 10 else 100 * rows)
    change = len(x) // 2
    learner = Learner(dim, StreamSpec(latent_dims=(2, 4, 6), device="cpu", seed=seed))
    for i in range(0, change, rows):
        report = learner.learn_many(x[i : i + rows])
    assert report.converged, "the flag must be on before the change for the test to mean much"
    snapshot = learner.state_bytes()
    flags = []
    for i in range(change, change + 10 * rows, rows):
        report = learner.learn_many(x[i : i + rows])
        flags.append(report.converged)
        if report.training.restarts:
            break
    assert not any(flags), flags
    # the check's state travels with the learner's
    again = Learner.from_bytes(snapshot)
    assert not again.learn_many(x[change : change + rows]).converged


def _vanishing(dim: int, seed: int, chunk: int) -> np.ndarray:
    """The paper's stream (D = 10), or 6 latents of scales 2 .. 10 and then only the 2 smallest
    of them, in noise of variance 1 (a fall of 100x at most: no single latent is proof enough
    in a batch of 10 rows, the 4 together are)."""
    if dim == 10:
        return paper_stream((6, 2), chunk_size=chunk, seed=seed)[0]
    rng = np.random.default_rng(seed)
    u = np.linalg.qr(rng.standard_normal((dim, 6)))[0]
    parts = []
    for keep in (6, 2):
        s = np.where(np.arange(6) < keep, np.linspace(2.0, 10.0, 6), 0.0)
        g, e = rng.standard_normal((chunk, 6)), rng.standard_normal((chunk, dim))
        parts.append((g * s) @ u.T + e)
    return np.concatenate(parts).astype(np.float32)


@pytest.mark.parametrize(
    ("data", "dims"),
    [(load_breast_cancer().data, (4, 8, 12, 16)), (load_digits().data, (1, 2, 4, 8))],
    ids=["breast_cancer-raw", "digits-raw"],
)
def test_stationary_heavy_tailed_data_never_trips_the_check(
    data: np.ndarray, dims: tuple[int, ...]
) -> None:
    # raw units, heavy tails (breast cancer: variances over 12 orders of magnitude, latents of
    # kurtosis up to ~70): a Gaussian yardstick would find batches narrow; the learnt one must not
    x = data.astype(np.float32)
    learner = Learner(x.shape[1], StreamSpec(latent_dims=dims, device="cpu"))
    tripped = 0
    for xb in shuffled(x, 2000, 10, seed=1):
        learner.learn_many(xb)
        tripped += any(learner.spread.suspect)
    assert tripped == 0


def test_what_the_check_cannot_judge_is_never_suspect() -> None:
    # rows at the running mean have no spread along any latent: suspect in a batch of 10 under
    # the subspace rule; a batch of one row says nothing of a spread, a gradient rule gives none
    x = ppca_data(2000, 8, 3, seed=2)
    fit = Learner(8, StreamSpec(latent_dims=(2, 3), device="cpu"))
    adam = Learner(8, StreamSpec(latent_dims=(2, 3), optimizer="adam", device="cpu"))
    for i in range(0, len(x), 10):
        fit.learn_many(x[i : i + 10])
        adam.learn_many(x[i : i + 10])
    still = np.repeat(x.mean(0, keepdims=True), 10, 0)
    assert fit.learn_many(still[:1]).converged and not any(fit.spread.suspect)
    report = fit.learn_many(still)
    assert all(fit.spread.suspect) and not report.converged
    adam.learn_many(still)
    assert not any(adam.spread.suspect)


def test_a_young_fit_in_high_dimension_does_not_trip_the_check() -> None:
    # D = 128, batches of 256, 16 latents over two decades of variance: a fit to a few batches
    # overstates its top variances (new rows spread less along them, by a level that fades as
    # the rows grow) and the flag is on from the 4th-6th batch; with the Gaussian law around 1 of
    # a batch of 256 rows that level alone is "suspect" (the flag 5-15x late at D = 256, 784)
    x = ppca_data(256 * 40, 128, 16, noise=1.0, seed=4, scales=np.geomspace(10.0, 1.0, 16))
    learner = Learner(128, StreamSpec(latent_dims=(8, 16, 32), bic_n=100, device="cpu"))
    tripped = 0
    for i in range(0, len(x), 256):
        learner.learn_many(x[i : i + 256] + 300.0)
        tripped += any(learner.spread.suspect)
    assert learner.report().converged
    assert tripped == 0
