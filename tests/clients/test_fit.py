"""`fit_array`: shuffled passes over an array until the selection converges or `max_rows`.

The order of the rows and the stop rule without a server; the sync client against a real
uvicorn server and the async client against the real app. Reaching `converged` on a file is
tested by the README's walk-through (tests/test_readme.py), against the exact p-PCA pick.
"""

import dataclasses

import numpy as np
import pytest

from clients import AsyncDimwatchClient, DimwatchClient, errors
from clients._fit import Fit, shuffled
from clients._progress import fit_state
from clients.models import PushResult, Selection, Stream
from streaming.data import ppca_data
from tests.clients import samples

STREAM = Stream.from_json({**samples.STREAM, "dim": 3, "step": 7, "rows_seen": 70})
UNCONVERGED = Selection.from_json({**samples.SELECTION, "converged": False})


def test_shuffled_passes_are_permutations_cut_at_pass_ends() -> None:
    batches = shuffled(rows=5, seed=0, start=0, batch_size=2, stop=12)

    assert [len(b) for b in batches] == [2, 2, 1, 2, 2, 1, 2]
    passes = np.concatenate(batches)
    assert sorted(passes[:5]) == sorted(passes[5:10]) == [0, 1, 2, 3, 4]
    assert not np.array_equal(passes[:5], passes[5:10])  # each pass in a fresh order


def test_shuffled_from_an_offset_continues_the_same_sequence() -> None:
    whole = np.concatenate(shuffled(rows=7, seed=3, start=0, batch_size=3, stop=30))

    rest = np.concatenate(shuffled(rows=7, seed=3, start=13, batch_size=3, stop=30))

    assert np.array_equal(rest, whole[13:])


def _answer(selection: Selection, rows: int) -> PushResult:
    seen = dataclasses.replace(selection, rows_seen=selection.rows_seen + rows)
    return PushResult(step=seen.step, rows=rows, duplicate=False, selection=seen)


def test_fit_sends_batches_from_the_streams_step_until_max_rows() -> None:
    fit = Fit(np.ones((4, 3)), "s", batch_size=3, max_rows=80)
    fit.start(STREAM, dataclasses.replace(UNCONVERGED, rows_seen=70))

    sent = []
    while (batch := fit.next_batch()) is not None:
        sent.append((batch[0], len(batch[1])))
        assert fit.selection is not None
        fit.record(_answer(fit.selection, len(batch[1])))

    assert sent == [(7, 2), (8, 3), (9, 1), (10, 3), (11, 1)]  # rows 70..79: passes of 4 rows
    assert fit.selection is not None and fit.selection.rows_seen == 80


def test_fit_stops_once_the_selection_has_converged() -> None:
    fit = Fit(np.ones((4, 3)), "s")
    fit.start(STREAM, dataclasses.replace(UNCONVERGED, converged=True))

    assert fit.next_batch() is None


def test_fit_into_a_stream_of_another_dimension_is_refused() -> None:
    fit = Fit(np.ones((4, 5)), "s")

    with pytest.raises(errors.InputError, match=r"X has 5 columns, but stream 'sensors' has D = 3"):
        fit.start(STREAM, UNCONVERGED)


def test_fit_progress_shows_passes_margin_and_candidates_converged() -> None:
    models = (UNCONVERGED.models[0], dataclasses.replace(UNCONVERGED.models[1], converged=True))

    state = fit_state(dataclasses.replace(UNCONVERGED, models=models, margin=28.9), rows=605)

    assert state == "pass 2.0  best H [cyan]4[/cyan] (margin 28.9)  converged 1/2 candidates"


def test_fit_progress_bar_counts_the_rows_the_stream_has_learnt() -> None:
    fit = Fit(np.ones((4, 3)), "s", max_rows=5000, progress=True)

    fit.start(STREAM, UNCONVERGED)

    assert fit._progress is not None
    (task,) = fit._progress.tasks
    assert (task.completed, task.total) == (1210, 5000)


def test_fit_array_stops_provisional_at_max_rows(live_client: DimwatchClient) -> None:
    X = ppca_data(300, 6, 2, seed=1)  # adam never reports converged: the cap must stop it

    result = live_client.fit_array("f", X, max_rows=650, optimizer="adam", latent_dims=[1, 2])

    assert (result.converged, result.rows_seen, result.pushed) == (False, 700, 700)
    assert (result.rows, result.passes) == (300, pytest.approx(700 / 300))
    assert result.best_latent_dim in (1, 2) and result.selection.margin is not None
    assert [m.latent_dim for m in result.collapse.models] == [1, 2]
    assert live_client.get_stream("f").step == 7  # batches of 100 rows: the last is not cut


def test_fit_array_run_again_goes_on_as_one_run_would(live_client: DimwatchClient) -> None:
    X = ppca_data(250, 6, 2, seed=2)
    settings = {"optimizer": "adam", "latent_dims": [1, 2], "batch_size": 40}

    live_client.fit_array("twice", X, max_rows=300, **settings)  # type: ignore[arg-type]
    again = live_client.fit_array("twice", X, max_rows=700, **settings)  # type: ignore[arg-type]
    once = live_client.fit_array("once", X, max_rows=700, **settings)  # type: ignore[arg-type]

    assert (again.pushed, again.rows_seen) == (370, 700)  # the first stopped at 250 + 2 * 40
    assert again.selection.models == once.selection.models  # the same rows in the same order


@pytest.mark.anyio
async def test_async_fit_array_creates_the_stream_with_d_from_the_array(
    app_client: AsyncDimwatchClient,
) -> None:
    X = ppca_data(120, 5, 2, seed=3)

    result = await app_client.fit_array("a", X, max_rows=240, latent_dims=[1, 2, 3], seed=4)

    stream = await app_client.get_stream("a")
    assert (stream.dim, stream.latent_dims, stream.seed) == (5, (1, 2, 3), 4)
    assert (result.rows_seen, result.selection.step) == (stream.rows_seen, stream.step)
    assert 0 < result.rows_seen <= 240
