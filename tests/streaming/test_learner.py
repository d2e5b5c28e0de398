"""The learner's answers against exact references (docs/math.md): the closed-form p-PCA
optimum of the rows seen, scikit-learn, the paper's stream, collapse, the served models."""

import math
from typing import Any

import numpy as np
import pytest
from sklearn.decomposition import PCA

from streaming import ppca
from streaming.arrays import Arrays
from streaming.data import paper_stream, ppca_data
from streaming.errors import InvalidBatchError
from streaming.learner import Learner, learn_together
from streaming.rules import Stepped, SubspaceRule
from streaming.spec import StreamSpec
from streaming.tracking import detection_delay
from tests.streaming.helpers import WINE, exact, exact_pick, shuffled

WINE_DIMS = (1, 2, 4, 6)


def _learn(learner: Learner, batches: list[np.ndarray]) -> None:
    for x in batches:
        learner.learn_many(x)


@pytest.mark.parametrize(
    ("dim", "dims"), [(8, (1, 3, 5)), (64, (2, 4, 8))], ids=["full", "tracked"]
)
def test_entropy_elbo_equals_the_exact_optimum_of_the_rows_seen(
    dim: int, dims: tuple[int, ...]
) -> None:
    # Corollary 2: at the stationary point F_ent is the maximum p-PCA log-likelihood. With
    # D <= K + 8 the learner keeps the whole covariance (exact to rounding); at D = 64 it tracks
    # a subspace of K = 16 directions.
    x = ppca_data(6000, dim, 4, noise=0.3, seed=1, mean=np.linspace(-50, 50, dim))
    learner = Learner(dim, StreamSpec(latent_dims=dims, device="cpu"))
    _learn(learner, [x[i : i + 50] for i in range(0, len(x), 50)])
    got = np.array([m.entropy_elbo for m in learner.report().models])
    tolerance = 1e-9 if dim == 8 else 2e-3
    np.testing.assert_allclose(got, exact(x, dims), rtol=tolerance)


def test_entropy_elbo_matches_sklearn_pca_score_on_raw_wine() -> None:
    # scikit-learn fits with ddof 1 and scores with 1/N: it agrees with the 1/N optimum to
    # about D / (4 N^2) (docs/math.md); the learner is that optimum (1/N) to rounding
    learner = Learner(13, StreamSpec(latent_dims=WINE_DIMS, device="cpu"))
    learner.learn_many(WINE)
    n, x = len(WINE), WINE.astype(np.float64)
    for m in learner.report().models:
        score = PCA(m.latent_dim).fit(x).score(x)
        assert m.entropy_elbo == pytest.approx(score, abs=2 * 13 / (4 * n**2))


def test_raw_wine_picks_the_exact_bic_choice_that_is_not_the_smallest() -> None:
    learner = Learner(13, StreamSpec(latent_dims=WINE_DIMS, device="cpu"))
    _learn(learner, shuffled(WINE, 300, 10, seed=0))
    pick = exact_pick(exact(WINE, WINE_DIMS), WINE_DIMS, 13)
    assert pick == 4 != min(WINE_DIMS)
    assert learner.best_latent_dim == pick


def test_selection_tracks_the_shortened_paper_stream() -> None:
    x, _ = paper_stream((6, 2, 4), chunk_size=3000, seed=0)
    learner = Learner(10, StreamSpec(device="cpu"))
    picks = np.array([learner.learn_many(x[i : i + 10]).best_latent_dim
                      for i in range(0, len(x), 10)])  # fmt: skip
    for chunk, k in enumerate((6, 2, 4)):
        part = picks[chunk * 300 : (chunk + 1) * 300]
        delay = detection_delay(part, k, run=100)
        assert delay is not None and delay <= 20, (k, delay)
        assert (part[150:] == k).all()
    assert learner.report().training.restarts == 2


def test_collapse_leaves_two_active_latents_of_six() -> None:
    x = ppca_data(5000, 10, 2, noise=0.3, seed=3)
    learner = Learner(10, StreamSpec(latent_dims=(6,), device="cpu"))
    _learn(learner, [x[i : i + 50] for i in range(0, len(x), 50)])
    model = learner.report().models[0]
    assert model.active_latents == 2
    assert model.collapsed == (False, False, True, True, True, True)


def test_served_model_is_the_linear_vae_the_scores_describe() -> None:
    x = ppca_data(3000, 30, 5, noise=0.5, seed=4, mean=np.arange(30.0))
    learner = Learner(30, StreamSpec(latent_dims=(3, 5), device="cpu"))
    _learn(learner, [x[i : i + 100] for i in range(0, len(x), 100)])
    score = learner.report().models[1]
    p = learner.params(5)
    W, V, b, mu = (np.array(v) for v in (p.W, p.V, p.b, p.mu))
    gram = W.T @ W
    np.testing.assert_allclose(gram, np.diag(np.diag(gram)), atol=1e-9 * gram.max())
    # the exact posterior: V = (W^T W + sigma^2 I)^-1 W^T, tau^2 = sigma^2 / (|w|^2 + sigma^2)
    np.testing.assert_allclose(V, np.linalg.solve(gram + p.sigma2 * np.eye(5), W.T), rtol=1e-8)
    np.testing.assert_allclose(p.tau2, p.sigma2 / (np.diag(gram) + p.sigma2), rtol=1e-8)
    assert p.tau2 == pytest.approx(score.tau2) and p.sigma2 == pytest.approx(score.sigma2)
    # and its Eq. 26 log-likelihood on the rows seen is the entropy ELBO (Corollary 2)
    cov = ppca.covariance(x.astype(np.float64), mean=mu)
    # (D = 30 > K + 8: a tracked subspace, whose tail is modelled by its mean variance)
    assert ppca.loglik(W, p.sigma2, cov) == pytest.approx(score.entropy_elbo, rel=1e-4)
    np.testing.assert_allclose(learner.encode(x[:7], 5), x[:7] @ V.T + b, rtol=1e-5, atol=1e-5)
    z = x[:7].astype(np.float64) @ V.T + b
    np.testing.assert_allclose(learner.reconstruct(x[:7], 5), z @ W.T + mu, rtol=1e-5)


def test_offset_and_scale_shift_f_ent_as_the_invariances_say() -> None:
    """x' = 1000 x + 100: every H's F_ent shifts by -D log 1000, the pick is unchanged."""
    x = ppca_data(4000, 8, 3, noise=0.3, seed=2)
    reports = []
    for data in (x, 1000.0 * x + 100.0):
        learner = Learner(8, StreamSpec(latent_dims=(1, 3, 5), device="cpu"))
        _learn(learner, shuffled(data.astype(np.float32), 400, 10, seed=3))
        reports.append(learner.report())
    shift = -8 * math.log(1000.0)
    for a, b in zip(reports[0].models, reports[1].models, strict=True):
        assert b.entropy_elbo - shift == pytest.approx(a.entropy_elbo, abs=1e-4)
    assert reports[0].best_latent_dim == reports[1].best_latent_dim == 3


def test_standardize_models_the_correlation_matrix_and_answers_raw_units() -> None:
    learner = Learner(13, StreamSpec(latent_dims=(2, 4), standardize=True, device="cpu"))
    _learn(learner, shuffled(WINE, 2000, 10, seed=4))
    corr = np.corrcoef(WINE.astype(np.float64).T)
    expected = [ppca.ml_loglik(np.linalg.eigvalsh(corr), h) for h in (2, 4)]
    got = [m.entropy_elbo for m in learner.report().models]
    np.testing.assert_allclose(got, expected, rtol=0.02)
    p = learner.params(4)
    assert p.standardized and p.scaler_mean is not None and p.scaler_scale is not None
    np.testing.assert_allclose(p.scaler_scale, WINE.std(0), rtol=0.05)
    mean, scale = np.array(p.scaler_mean), np.array(p.scaler_scale)
    z = (WINE[:20].astype(np.float64) - mean) / scale
    nu = z @ np.array(p.V).T + np.array(p.b)
    raw = (nu @ np.array(p.W).T + np.array(p.mu)) * scale + mean
    np.testing.assert_allclose(learner.reconstruct(WINE[:20], 4), raw, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(learner.encode(WINE[:20], 4), nu, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dim", [6, 40])  # the whole covariance; a tracked subspace
def test_a_standardized_fit_is_that_of_every_row_in_the_scaler_of_today(dim: int) -> None:
    # the running scaler moves most in the first rows (a column in other units, one of rare
    # spikes): the fit is that of all rows seen standardized with the learner's scaler, not of
    # a mixture of rows each standardized with the scaler of its time (F_ent 4% off on
    # standardized digits at 630 rows before)
    rng = np.random.default_rng(3)
    x = ppca_data(600, dim, 3, noise=0.3, seed=6)
    x[:, 0] *= 1000.0
    x[:, 1] = (rng.random(600) < 0.03) * rng.exponential(5.0, 600)
    dims = (1, 3)
    learner = Learner(dim, StreamSpec(latent_dims=dims, standardize=True, device="cpu"))
    for s in range(0, 600, 10):
        learner.learn_many(x[s : s + 10])
        if s + 10 in (100, 300, 600):
            scaler = learner.scaler
            assert scaler is not None
            z = (x[: s + 10] - scaler.mean) / scaler.scale
            got = [m.entropy_elbo for m in learner.report().models]
            rtol = 1e-9 if dim == 6 else 2e-3
            np.testing.assert_allclose(got, exact(z, dims), rtol=rtol)


def test_repushing_the_same_rows_keeps_the_pick_on_stationary_data() -> None:
    x = ppca_data(2000, 10, 4, noise=0.3, seed=5)
    learner = Learner(10, StreamSpec(device="cpu"))
    picks = [learner.learn_many(x[s : s + 10]).best_latent_dim
             for _ in range(3) for s in range(0, len(x), 10)]  # fmt: skip
    assert set(picks[len(picks) // 3 :]) == {4}
    assert learner.report().training.restarts == 0


def test_values_at_the_float32_limit_train_in_float64() -> None:
    # Schemathesis' row: float32 values whose squares overflow float32 (the previous default
    # refused it); the subspace rule squares in float64
    learner = Learner(7, StreamSpec(device="cpu"))
    row = np.array([[0, -0.99999, -4.9e-51, 2.7e38, -7.5e-163, 3.6e37, 1.4e16]], np.float32)
    report = learner.learn_many(np.concatenate([row, -row]))
    assert report.step == 1
    assert all(np.isfinite([m.entropy_elbo, m.bic, m.sigma2]).all() for m in report.models)


def test_rows_beyond_float32_are_refused_and_change_nothing() -> None:
    learner = Learner(3, StreamSpec(latent_dims=(1,), device="cpu"))
    state = learner.state_bytes()
    with pytest.raises(InvalidBatchError, match="finite"):
        learner.learn_many(np.array([[1.0, 2.0, 1e39], [0.0, 1.0, 2.0]]))
    assert learner.state_bytes() == state


def test_a_decomposition_that_fails_refuses_its_streams_step_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # LAPACK's eigh, called directly (streaming/arrays.py), gives NaN where it does not
    # converge: that stream's step is refused and changes nothing, the others' are learnt
    x = ppca_data(200, 10, 3, seed=2).astype(np.float32)
    learners = [Learner(10, StreamSpec(device="cpu", seed=s)) for s in range(3)]
    for learner in learners:
        learner.learn_many(x[:20])
    states = [learner.state_bytes() for learner in learners]
    eigh = Arrays.eigh

    def failing_first(self: Arrays, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w, v = (part.copy() for part in eigh(self, a))
        w[0], v[0] = np.nan, np.nan  # the first stream's
        return w, v

    monkeypatch.setattr(Arrays, "eigh", failing_first)
    with pytest.raises(InvalidBatchError, match="non-finite"):
        learners[0].learn_many(x[20:30])
    assert learners[0].state_bytes() == states[0]
    out = learn_together([(learner, x[30:40]) for learner in learners])
    assert isinstance(out[0], InvalidBatchError) and learners[0].state_bytes() == states[0]
    assert [r.step for r in out[1:] if not isinstance(r, InvalidBatchError)] == [2, 2]


def test_transform_of_overflowing_rows_is_refused() -> None:
    learner = Learner(4, StreamSpec(latent_dims=(1,), device="cpu"))
    rng = np.random.default_rng(8)
    for _ in range(5):  # tiny data: the encoder's weights are ~1e20
        learner.learn_many((rng.normal(size=(10, 4)) * 1e-20).astype(np.float32))
    with pytest.raises(InvalidBatchError, match="projection overflows float32"):
        learner.encode(np.full((1, 4), 1e30, dtype=np.float32))


def test_path_is_the_lower_envelope_of_the_bic_over_n() -> None:
    learner = Learner(13, StreamSpec(latent_dims=WINE_DIMS, device="cpu"))
    rep = learner.learn_many(WINE)
    f = {m.latent_dim: m.entropy_elbo for m in rep.models}
    for n in np.geomspace(3.0, 1e6, 400):
        brute = min(WINE_DIMS, key=lambda h: (h * 13 + 1) * math.log(n) - 2 * n * f[h])
        piece = next(p for p in rep.path if p.n_from <= n and (p.n_to is None or n < p.n_to))
        assert piece.latent_dim == brute, n


def test_learning_together_equals_learning_one_by_one_to_the_bit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # small streams stepped in one stacked computation: the same reports as learn_many, for
    # stackable learners (whole covariance; standardized ones re-expressed as their scaler
    # moves), others (tracked, adam) and bad batches alike
    specs = [
        StreamSpec(latent_dims=(1, 3), device="cpu", seed=s, standardize=s == 2) for s in range(3)
    ]
    specs += [StreamSpec(latent_dims=(1, 3), device="cpu", optimizer="adam")]
    dims = [6, 6, 6, 6, 40]
    specs.append(StreamSpec(latent_dims=(1, 3), device="cpu"))
    alone = [Learner(d, s) for d, s in zip(dims, specs, strict=True)]
    together = [Learner(d, s) for d, s in zip(dims, specs, strict=True)]
    stacked: list[int] = []
    step_many = SubspaceRule.step_many

    def counted(
        rules: list[SubspaceRule], xs: list[np.ndarray], remaps: list[Any] | None = None
    ) -> list[Stepped]:
        stacked.append(len(rules))
        return step_many(rules, xs, remaps)

    monkeypatch.setattr(SubspaceRule, "step_many", staticmethod(counted))
    rng = np.random.default_rng(0)
    for step in range(30):
        xs = [rng.normal(size=(10, d)).astype(np.float32) * (1 + i) for i, d in enumerate(dims)]
        if step == 7:
            xs[1][2, 3] = np.nan  # refused for that stream only
        expected = []
        for learner, x in zip(alone, xs, strict=True):
            try:
                expected.append(learner.learn_many(x))
            except InvalidBatchError as exc:
                expected.append(exc)
        got = learn_together([*zip(together, xs, strict=True), (together[0], xs[0])])
        assert got[-1] == together[0].report()  # a second batch of a stream comes after
        alone[0].learn_many(xs[0])
        for e, g in zip(expected, got[:-1], strict=True):
            assert (str(e) == str(g)) if isinstance(e, Exception) else e == g
    assert max(stacked) == 3  # the three D = 6 subspace streams stepped as one
    for a, t in zip(alone, together, strict=True):
        assert a.params(1) == t.params(1) and a.params(3) == t.params(3)


def test_batch_unlikely_beyond_float64_is_learnt_with_its_elbo_unmeasured() -> None:
    # every row alike so far: sigma^2 at its floor, and a new row is infinitely unlikely under
    # that fit; the batch is learnt, its batch ELBO reported as not measured (None), not inf
    learner = Learner(4, StreamSpec(latent_dims=(1,), device="cpu"))
    learner.learn_many(np.ones((3, 4), np.float32))
    report = learner.learn_many(np.array([[1e30, -1e30, 3e30, 0.0], [1, 1, 1, 1]], np.float32))
    assert report.step == 2 and report.models[0].batch_elbo is None
    assert np.isfinite(report.models[0].entropy_elbo)
    assert learner.learn_many(np.ones((2, 4), np.float32)).step == 3
