"""What the CLI draws and computes without a server: lines, tables, the demo's chunk summary."""

import dataclasses
import io

import numpy as np
from rich.console import Console, RenderableType

from clients import _render
from clients._demo import DemoOptions, summarize
from clients.models import PushSummary, Selection, SelectionChangeEvent, Stream
from tests.clients import samples


def _text(renderable: RenderableType) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None).print(renderable)
    return buffer.getvalue()


SELECTION = Selection.from_json(samples.SELECTION)
STREAM = Stream.from_json(samples.STREAM)


def test_step_line_lists_every_candidate_bic() -> None:
    line = _render.step_line(SELECTION)

    assert line.plain == "step     121  best H=4  BIC  H2 329.4 | H4 300.5"


def test_change_line_names_both_latent_dims() -> None:
    event = SelectionChangeEvent(step=9, previous=6, best_latent_dim=2)

    assert _render.change_line(event).plain == ">> step 9: best H changed 6 -> 2"


def test_selection_table_has_a_row_per_candidate_and_marks_the_best() -> None:
    rows = [line for line in _text(_render.selection_table(SELECTION)).splitlines() if "│" in line]

    assert rows == [
        "│ 2 │      -14.100 │       329.4 │     337.0 │  0.8100 │            2/2 │       7.2 │"
        "       62.5% │         │",
        # a server that does not say (an older one): "-"
        "│ 4 │      -12.000 │       300.5 │         - │  0.5000 │            4/4 │         - │"
        "           - │ <- best │",
    ]


def test_selection_table_title_names_the_picks_effective_rank() -> None:
    title = _text(_render.selection_table(SELECTION)).splitlines()[0]

    assert title.strip() == "step 121, 1210 rows, best H = 4, effective rank 6.5"


def test_push_summary_reports_duplicates() -> None:
    summary = PushSummary(batches=4, rows=40, duplicates=2, seconds=2.0, last=None)

    text = _render.push_summary("s", summary)

    assert text == (
        "pushed 40 rows in 4 batches to 's' in 2.0 s (20 rows/s); "
        "2 batches were applied before and skipped"
    )


def test_watch_view_shows_recent_changes() -> None:
    view = _render.WatchView("s", SELECTION, (SelectionChangeEvent(3, 6, 4),))

    out = _text(view.render())

    assert out.splitlines()[0] == "watching 's' (Ctrl-C to stop)"
    assert ">> step 3: best H changed 6 -> 4" in out


def test_watch_view_waits_before_the_first_batch() -> None:
    assert "waiting for the next batch ..." in _text(_render.WatchView("s").render())


def test_summarize_scores_the_second_half_of_each_chunk() -> None:
    truth = np.array([6] * 8 + [2] * 8)
    picks = [6, 2, 6, 6, 6, 2, 6, 2]  # batches of 2 rows: 4 batches per chunk

    chunks = summarize(picks, 2, truth, chunk_size=8)

    assert [(c.true_dim, c.selected_at_end, c.right_in_second_half) for c in chunks] == [
        (6, 6, 1.0),
        (2, 2, 0.5),
    ]


def test_summarize_counts_no_selection_as_wrong() -> None:
    chunks = summarize([None, 4], 2, np.array([4, 4, 4, 4]), chunk_size=4)

    assert (chunks[0].selected_at_end, chunks[0].right_in_second_half) == (4, 1.0)


def test_demo_options_paper_are_the_papers_settings() -> None:
    paper = DemoOptions.paper()

    assert (paper.chunk_size, paper.batch_size, paper.learning_rate) == (100_000, 10, 0.002)
    assert (paper.estimator, paper.mc_samples, paper.intrinsic_dims) == ("mc", 100, (6, 2, 4))


def test_an_unconverged_pick_is_shown_as_provisional() -> None:
    unconverged = dataclasses.replace(SELECTION, converged=False)

    assert "best H = 4 (provisional: not converged yet)" in _text(
        _render.selection_table(unconverged)
    )
    assert _render.step_line(unconverged).plain.startswith("step     121  best H=4?  BIC")
    assert SELECTION.converged is None  # a server that does not say
    assert "provisional" not in _text(_render.selection_table(SELECTION))


def test_stream_line_names_the_optimizer_and_no_learning_rate_for_the_subspace_rule() -> None:
    assert _render.stream_line(STREAM) == (
        "stream 'sensors': D=10, candidates H=2,4,6, optimizer subspace, estimator analytic, "
        "BIC N=10, seed 0, device cpu"
    )


def test_stream_line_gives_the_learning_rate_of_adam() -> None:
    adam = dataclasses.replace(STREAM, optimizer="adam", estimator="mc")

    assert ", optimizer adam at learning rate 0.002, estimator mc, " in _render.stream_line(adam)


def test_streams_table_says_converged_or_provisional() -> None:
    streams = [
        dataclasses.replace(STREAM, name="final", converged=True),
        dataclasses.replace(STREAM, name="early", converged=False),
        dataclasses.replace(STREAM, name="empty", best_latent_dim=None, step=0, rows_seen=0),
    ]

    lines = _text(_render.streams_table(streams)).splitlines()

    assert lines[2].split("┃")[6].strip() == "pick"
    rows = [line.split("│")[6].strip() for line in lines if "│" in line]
    assert rows == ["converged", "provisional", "-"]


def test_powers_of_two_is_a_grid_below_the_limit_and_d() -> None:
    from clients.models import powers_of_two

    assert powers_of_two(256) == [2, 4, 8, 16, 32, 64, 128, 256]
    assert powers_of_two(256, dim=100, start=8) == [8, 16, 32, 64]
    assert powers_of_two(100, start=3) == [3, 6, 12, 24, 48, 96]
