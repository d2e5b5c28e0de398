"""The `dimwatch` CLI through `main([...])` against a real uvicorn server, output via capsys."""

import io
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from clients import DimwatchClient, _demo
from clients.cli import main
from tests.clients.conftest import TOKEN, rows


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DIMWATCH_* from the outside; a wide terminal so that tables do not wrap."""
    for name in ("DIMWATCH_URL", "DIMWATCH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")


def _npy(tmp_path: Path, array: np.ndarray, name: str = "rows.npy") -> str:
    path = tmp_path / name
    np.save(path, array)
    return str(path)


def _push(url: str, file: str, *flags: str) -> int:
    return main(["push", "sensors", file, "--url", url, "--no-progress", *flags])


def test_push_npy_creates_the_stream_and_prints_a_summary(
    live_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _push(live_url, _npy(tmp_path, rows(100)), "--batch-size", "20")

    out = capsys.readouterr().out
    assert code == 0
    assert (
        "created stream 'sensors': D=10, candidates H=2,4,6, optimizer subspace, estimator "
        "analytic, BIC N=10, seed 0, device " in out
    )
    assert "pushed 100 rows in 5 batches to 'sensors'" in out
    assert "step 5, best H = " in out
    assert "<- best" in out


def test_push_flags_set_the_new_stream_settings(
    live_url: str, live_client: DimwatchClient, tmp_path: Path
) -> None:
    flags = ["--latent-dims", "1,3", "--seed", "5", "--estimator", "mc", "--mc-samples", "7"]

    flags += ["--optimizer", "sgd", "--no-adaptive", "--boost-learning-rate", "0.1"]
    assert _push(live_url, _npy(tmp_path, rows(10)), *flags) == 0

    stream = live_client.get_stream("sensors")
    assert (stream.latent_dims, stream.seed, stream.estimator, stream.mc_samples) == (
        (1, 3),
        5,
        "mc",
        7,
    )
    assert (stream.optimizer, stream.adaptive, stream.boost_learning_rate) == ("sgd", False, 0.1)


def test_push_a_second_file_continues_the_stream(
    live_url: str, live_client: DimwatchClient, tmp_path: Path
) -> None:
    assert _push(live_url, _npy(tmp_path, rows(30), "first.npy")) == 0
    assert _push(live_url, _npy(tmp_path, rows(30, seed=1), "second.npy")) == 0

    assert live_client.get_stream("sensors").step == 6


def test_push_to_an_existing_stream_says_its_settings_stay(
    live_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = _npy(tmp_path, rows(10))
    _push(live_url, file)

    _push(live_url, file, "--seed", "3")

    assert "stream 'sensors' exists; its settings stay (--seed ignored)" in capsys.readouterr().out


def test_push_csv_with_a_header_row(
    live_url: str, live_client: DimwatchClient, tmp_path: Path
) -> None:
    path = tmp_path / "rows.csv"
    lines = ["a,b,c"] + [",".join(f"{v:.4f}" for v in row) for row in rows(12, dim=3)]
    path.write_text("\n".join(lines) + "\n")

    assert _push(live_url, str(path), "--latent-dims", "1,2") == 0

    assert (live_client.get_stream("sensors").rows_seen, live_client.get_stream("sensors").dim) == (
        12,
        3,
    )


def test_push_reads_csv_from_stdin(
    live_url: str, live_client: DimwatchClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "\n".join(",".join(f"{v:.4f}" for v in row) for row in rows(7, dim=4))
    monkeypatch.setattr("sys.stdin", io.StringIO(text))

    assert _push(live_url, "-", "--latent-dims", "2") == 0

    assert live_client.get_stream("sensors").rows_seen == 7


def test_push_a_1d_array_fails_with_its_shape(
    live_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = _npy(tmp_path, np.zeros(5))

    code = _push(live_url, file)

    assert code == 1
    expected = f"error: {file}: expected a 2-D array (rows x columns), got shape (5,)\n"
    assert capsys.readouterr().err == expected


def test_push_ragged_csv_fails_with_the_row(
    live_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("1,2,3\n4,5\n")

    code = _push(live_url, str(path))

    assert code == 1
    assert capsys.readouterr().err == (
        f"error: {path}, line 2: 2 cells, expected 3 as on line 1 (the first row)\n"
    )


def test_push_a_missing_file_fails(live_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _push(live_url, "/nonexistent/rows.npy") == 1
    assert capsys.readouterr().err == "error: /nonexistent/rows.npy: no such file\n"


def test_push_wrong_columns_for_the_stream_fails_before_sending(
    live_url: str, live_client: DimwatchClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _push(live_url, _npy(tmp_path, rows(10)))
    file = _npy(tmp_path, rows(10, dim=9), "narrow.npy")

    code = _push(live_url, file)

    assert code == 1
    assert capsys.readouterr().err == (
        f"error: {file}: has 9 columns, but stream 'sensors' expects 10 "
        "(D is fixed by the stream's first batch)\n"
    )
    assert live_client.get_stream("sensors").step == 1


def test_status_lists_streams(
    live_url: str, live_client: DimwatchClient, capsys: pytest.CaptureFixture[str]
) -> None:
    live_client.create_stream("alpha")
    live_client.create_stream("beta", latent_dims=[1, 2])

    assert main(["status", "--url", live_url]) == 0

    out = capsys.readouterr().out
    assert "dimwatch streams" in out
    assert "│ alpha  │" in out and "│ beta   │" in out
    assert "│ 1,2        │" in out


def test_status_without_streams_says_how_to_add_one(
    live_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--url", live_url]) == 0

    assert capsys.readouterr().out == "no streams yet: push one with `dimwatch push NAME FILE`\n"


def test_status_of_a_stream_shows_every_candidate(
    live_url: str, live_client: DimwatchClient, capsys: pytest.CaptureFixture[str]
) -> None:
    live_client.create_stream("sensors")
    pushed = live_client.push("sensors", rows(10))

    assert main(["status", "sensors", "--url", live_url]) == 0

    out = capsys.readouterr().out
    best = pushed.selection.best_latent_dim
    table_rows = [line for line in out.splitlines() if line.startswith("│")]
    assert [line.split("│")[1].strip() for line in table_rows] == ["2", "4", "6"]
    assert [line.split("│")[1].strip() for line in table_rows if "<- best" in line] == [str(best)]


def test_status_of_a_stream_without_batches(
    live_url: str, live_client: DimwatchClient, capsys: pytest.CaptureFixture[str]
) -> None:
    live_client.create_stream("sensors")

    assert main(["status", "sensors", "--url", live_url]) == 0

    assert capsys.readouterr().out.endswith("no batches yet\n")


def test_status_of_a_missing_stream_fails(
    live_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "nope", "--url", live_url]) == 1

    err = capsys.readouterr().err
    assert err == f"error: no stream 'nope' at {live_url}: it has no streams yet\n"


def _push_slowly(url: str, stop: threading.Event) -> None:
    with DimwatchClient(url) as client:
        for seq in range(40):
            if stop.wait(0.05):
                return
            client.push("sensors", rows(10, seed=seq), seq=seq)


def test_watch_prints_a_line_per_event_until_max_events(
    live_url: str, live_client: DimwatchClient, capsys: pytest.CaptureFixture[str]
) -> None:
    live_client.create_stream("sensors")
    stop = threading.Event()
    pusher = threading.Thread(target=_push_slowly, args=(live_url, stop))
    pusher.start()
    try:
        code = main(["watch", "sensors", "--url", live_url, "--max-events", "3"])
    finally:
        stop.set()
        pusher.join(timeout=30)

    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0] == "watching 'sensors'"
    assert len(lines) == 4
    assert all(line.startswith(("step ", ">> step ")) for line in lines[1:])


def test_watch_in_a_terminal_redraws_the_scores_table(
    live_url: str,
    live_client: DimwatchClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich treats stdout as a terminal
    live_client.create_stream("sensors")
    stop = threading.Event()
    pusher = threading.Thread(target=_push_slowly, args=(live_url, stop))
    pusher.start()
    try:
        code = main(["watch", "sensors", "--url", live_url, "--max-events", "3"])
    finally:
        stop.set()
        pusher.join(timeout=30)

    out = capsys.readouterr().out
    assert code == 0
    assert "watching 'sensors' (Ctrl-C to stop)" in out
    assert "entropy BIC" in out and "<- best" in out


def test_watch_a_missing_stream_fails(live_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", "nope", "--url", live_url]) == 1
    assert capsys.readouterr().err.startswith("error: no stream 'nope' at ")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_client_command_without_a_server_says_to_start_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"

    assert main(["status", "--url", url]) == 1

    assert capsys.readouterr().err == (
        f"error: cannot reach dimwatch at {url} — start it with `dimwatch serve`\n"
    )


def test_client_command_reads_the_url_from_the_environment(
    live_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DIMWATCH_URL", live_url)

    assert main(["status"]) == 0

    assert capsys.readouterr().out.startswith("no streams yet")


def test_client_command_with_a_wrong_token_says_it_was_refused(
    token_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--url", token_url, "--token", "wrong"]) == 1

    err = capsys.readouterr().err
    assert err.startswith(f"error: a token was refused by {token_url} (")
    assert err.endswith("); pass --token or set DIMWATCH_TOKEN\n")


def test_client_command_without_a_token_says_one_is_required(
    token_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--url", token_url]) == 1

    assert capsys.readouterr().err.startswith(f"error: a token is required by {token_url} (")


def test_client_command_reads_the_token_from_the_environment(
    token_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIMWATCH_TOKEN", TOKEN)

    assert main(["status", "--url", token_url]) == 0


def _demo_table_rows(out: str) -> list[list[str]]:
    lines = [line for line in out.splitlines() if line.startswith("│")]
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines]


def test_demo_without_a_server_starts_one_and_prints_one_row_per_chunk(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    nobody = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setattr(_demo, "DEFAULT_URL", nobody)
    flags = ["--chunk-size", "200", "--batch-size", "50", "--no-progress", "--stream", "d"]

    assert main(["demo", *flags]) == 0

    out = capsys.readouterr().out
    assert out.startswith(f"no dimwatch server at {nobody}: started one in this process at ")
    # the banner names the stream's optimizer as the server created it: the default subspace
    # rule has no learning rate to print
    assert "into stream 'd': D=10, candidates H=2,4,6, optimizer subspace," in out
    assert "learning rate" not in out
    table = _demo_table_rows(out)
    assert [(r[0], r[1], r[2]) for r in table] == [
        ("1", "200", "6"),
        ("2", "200", "2"),
        ("3", "200", "4"),
    ]
    assert all(r[3] in {"2", "4", "6"} and r[4].endswith("%") for r in table)


def test_demo_uses_the_server_running_at_the_default_address(
    live_url: str,
    live_client: DimwatchClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(_demo, "DEFAULT_URL", live_url)  # where `dimwatch serve` listens
    flags = ["--chunk-size", "100", "--batch-size", "50", "--no-progress", "--stream", "d"]

    assert main(["demo", *flags]) == 0

    assert capsys.readouterr().out.startswith(
        f"replaying into the dimwatch server running at {live_url}\n"
    )
    assert live_client.get_stream("d").rows_seen == 300


def test_demo_against_a_given_server_leaves_the_stream_there(
    live_url: str, live_client: DimwatchClient
) -> None:
    flags = ["--chunk-size", "100", "--batch-size", "50", "--no-progress", "--stream", "d"]

    assert main(["demo", "--url", live_url, *flags]) == 0

    stream = live_client.get_stream("d")
    assert (stream.step, stream.rows_seen, stream.learning_rate) == (6, 300, 0.002)


def test_main_without_a_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])

    assert info.value.code == 2
    assert "the following arguments are required: COMMAND" in capsys.readouterr().err


def test_batch_size_zero_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["push", "s", "rows.npy", "--batch-size", "0"])

    assert info.value.code == 2
    assert "expected a positive integer, got '0'" in capsys.readouterr().err
