"""`dimwatch fit FILE [STREAM]` through `main([...])` against a real uvicorn server.

Reaching `converged`, and the pick then being the exact p-PCA one, is tested on the README's
walk-through (tests/test_readme.py); here the cap, the names and the refusals."""

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from clients import DimwatchClient, _render
from clients._fit_command import default_name
from clients.cli import main
from clients.models import Collapse, FitResult, PathPiece, Selection
from streaming.data import ppca_data
from tests.clients import samples


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DIMWATCH_URL", "DIMWATCH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")


def _pandas_csv(path: Path, data: np.ndarray) -> str:
    """As `pandas.DataFrame(data).to_csv(path)` writes it: the index first, unnamed."""
    lines = [",".join(["", *(str(j) for j in range(data.shape[1]))])]
    lines += [",".join([str(i), *(f"{v:.6f}" for v in row)]) for i, row in enumerate(data)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_fit_stops_at_max_rows_and_says_the_pick_is_provisional(
    live_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = _pandas_csv(tmp_path / "frame.csv", ppca_data(200, 6, 2, seed=1))
    flags = ["--max-rows", "300", "--optimizer", "adam", "--latent-dims", "1,2", "--no-progress"]

    code = main(["fit", file, "--url", live_url, *flags])

    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert code == 0
    assert "the row index pandas writes" in err
    assert lines[1] == (
        "stream 'frame' trains with adam, which never reports converged: the fit goes on to "
        "--max-rows"
    )
    assert lines[2] == (
        f"fitted {file} (200 rows, D = 6) into stream 'frame': provisional: not converged after "
        "300 rows (1.5 passes), the most --max-rows allows"
    )
    assert lines[3].startswith("best H = ") and " BIC units" in lines[3]
    assert lines[4].startswith("the pick for each N of the BIC: H = ")
    assert "encoder entropy of each latent" in out
    assert lines[-1] == "to go on from here: the same command with --max-rows 600"


def test_fit_into_a_stream_holding_other_rows_is_refused(
    live_url: str,
    live_client: DimwatchClient,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    live_client.create_stream("sensors", latent_dims=[1])
    live_client.push("sensors", np.ones((5, 3)))
    file = tmp_path / "rows.npy"
    np.save(file, ppca_data(50, 3, 1))

    code = main(["fit", str(file), "sensors", "--url", live_url, "--no-progress"])

    assert code == 1
    assert capsys.readouterr().err == (
        f"error: stream 'sensors' holds 5 rows, and no fit or push of {file} into it is "
        f"recorded here: fit into a stream of its own (`dimwatch fit {file} NAME`), or delete it "
        "first (`dimwatch delete sensors`)\n"
    )
    assert live_client.get_stream("sensors").rows_seen == 5


def test_fit_after_a_push_of_the_same_file_goes_on(
    live_url: str, live_client: DimwatchClient, tmp_path: Path
) -> None:
    file = tmp_path / "rows.npy"
    np.save(file, ppca_data(50, 3, 1))
    flags = ["--url", live_url, "--latent-dims", "1", "--optimizer", "adam", "--no-progress"]
    assert main(["push", "s", str(file), *flags]) == 0

    assert main(["fit", str(file), "s", "--max-rows", "120", *flags]) == 0

    assert live_client.get_stream("s").rows_seen == 150  # 50 pushed, then passes to 150


@pytest.mark.parametrize(
    ("file", "name"),
    [("data/wine.csv", "wine"), ("my readings (2024).npy", "my-readings-2024"), ("-", "stdin")],
)
def test_default_name_is_the_files_name_as_a_stream_name(file: str, name: str) -> None:
    assert default_name(file) == name


def _result(selection: Selection, converged: bool = True) -> FitResult:
    collapse = Collapse.from_json(samples.COLLAPSE)
    return FitResult("s", 605, 1210, 1210, converged, 5000, 1.0, selection, collapse)


def test_fit_lines_name_the_runner_up_and_the_pick_for_each_n() -> None:
    path = (PathPiece(4, 3.0, 41.25), PathPiece(2, 41.25, None))
    selection = Selection.from_json({**samples.SELECTION, "margin": 28.9, "converged": True})

    lines = _render.fit_lines(_result(dataclasses.replace(selection, path=path)), "f.csv", 10, 10)

    assert lines == [
        "fitted f.csv (605 rows, D = 10) into stream 's': converged after 1,210 rows (2.0 passes)",
        "best H = 4, ahead of H = 2 by 28.9 BIC units",
        "the pick for each N of the BIC: H = 4 for 3 <= N < 41.2, H = 2 for N >= 41.2 (this "
        "stream's N = 10)",
    ]


def test_fit_lines_say_when_the_switch_margin_holds_the_pick() -> None:
    selection = Selection.from_json({**samples.SELECTION, "margin": -3.5})

    assert _render.fit_lines(_result(selection), "f.csv", 10, 10)[1] == (
        "best H = 4, held against H = 2 (3.5 BIC units behind it)"
    )


def test_collapse_table_marks_collapsed_latents() -> None:
    buffer = io.StringIO()
    table = _render.collapse_table(Collapse.from_json(samples.COLLAPSE))

    Console(file=buffer, width=100, color_system=None).print(table)

    assert "│ 2 │    1/2 │ 0.20  1.30*" in buffer.getvalue()
    assert "* collapsed: encoder entropy above 1" in buffer.getvalue()
