"""The bounded history: constant memory, whole span kept, deterministic thinning."""

from service.history import History
from streaming.report import ModelScore, StepReport


def _report(step: int) -> StepReport:
    score = ModelScore(
        latent_dim=2,
        entropy_elbo=-1.0,
        bic=float(step),
        batch_elbo=None,
        batch_bic=None,
        sigma2=1.0,
        tau2=(1.0, 1.0),
        encoder_entropies=(1.4, 1.4),
        collapsed=(True, True),
        active_latents=0,
        s_reg=0.0,
        s_rec=-1.0,
    )
    return StepReport(step=step, rows=1, rows_seen=step, best_latent_dim=2, models=(score,))


def test_add_keeps_every_step_below_capacity() -> None:
    history = History(capacity=5)
    for step in range(1, 6):
        history.add(_report(step))
    assert [p.step for p in history.since(-1, 100)] == [1, 2, 3, 4, 5]


def test_add_thins_to_even_multiples_over_capacity() -> None:
    history = History(capacity=4)
    changes = [history.add(_report(step)) for step in range(1, 18)]
    assert [p.step for p in history.since(-1, 100)] == [4, 8, 12, 16]
    assert history.stride == 4
    assert [c.thinned_to for c in changes if c.thinned_to] == [2, 4]


def test_add_memory_bounded_over_long_stream() -> None:
    history = History(capacity=10)
    for step in range(1, 5000):
        history.add(_report(step))
        assert len(history) <= 10
    steps = [p.step for p in history.since(-1, 100)]
    assert steps == list(range(512, 5000, 512))  # the whole span, every 512th step


def test_since_pages_after_step() -> None:
    history = History(capacity=100)
    for step in range(1, 11):
        history.add(_report(step))
    assert [p.step for p in history.since(3, 4)] == [4, 5, 6, 7]
    assert history.since(10, 4) == []
