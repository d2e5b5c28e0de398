"""The installed `dimwatch` console script, run as processes: `serve` and client commands."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.clients.conftest import TOKEN, rows
from tests.clients.processes import Served, clean_env, dimwatch, free_port, serve


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`dimwatch serve` configured by flags, wanting TOKEN."""
    port, data_dir = free_port(), tmp_path_factory.mktemp("served")
    flags = ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    with serve(
        [*flags, "--token", TOKEN, "--device", "cpu"], clean_env(), port, data_dir
    ) as served:
        yield served


def test_serve_creates_its_data_dir(server: Served) -> None:
    assert (server.data_dir / "dimwatch.sqlite3").is_file()


def test_push_then_status_round_trip(server: Served, tmp_path: Path) -> None:
    path = tmp_path / "rows.npy"
    np.save(path, rows(40))

    pushed = dimwatch("push", "procs", str(path), "--url", server.url, "--token", TOKEN)
    status = dimwatch("status", "--url", server.url, DIMWATCH_TOKEN=TOKEN)

    assert (pushed.returncode, pushed.stderr.count("40/40")) == (0, 1)
    assert "pushed 40 rows in 4 batches to 'procs'" in pushed.stdout
    assert status.returncode == 0
    assert "│ procs " in status.stdout


def test_push_from_stdin_reads_csv(server: Served) -> None:
    text = "\n".join(",".join(f"{v:.3f}" for v in row) for row in rows(5, dim=3))

    done = dimwatch(
        "push", "stdin", "-", "--latent-dims", "1,2", "--no-progress", stdin=text,
        DIMWATCH_URL=server.url, DIMWATCH_TOKEN=TOKEN,
    )  # fmt: skip

    assert (done.returncode, done.stderr) == (0, "")
    assert "pushed 5 rows in 1 batches to 'stdin'" in done.stdout


def test_status_without_the_token_fails_readably(server: Served) -> None:
    done = dimwatch("status", "--url", server.url)

    assert done.returncode == 1
    assert done.stderr.startswith(f"error: a token is required by {server.url} (")
    assert "Traceback" not in done.stderr


def test_status_without_a_server_fails_readably() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    done = dimwatch("status", "--url", url)

    assert (done.returncode, done.stdout) == (1, "")
    assert (
        done.stderr == f"error: cannot reach dimwatch at {url} — start it with `dimwatch serve`\n"
    )


def test_serve_reads_dimwatch_variables(tmp_path: Path) -> None:
    port, data_dir = free_port(), tmp_path / "from-env"
    env = clean_env(DIMWATCH_PORT=str(port), DIMWATCH_DATA_DIR=str(data_dir))

    with serve([], env, port, data_dir) as served:
        health = httpx.get(f"{served.url}/healthz", timeout=30)
        listed = httpx.get(f"{served.url}/v1/streams", timeout=30)

    assert (health.json(), listed.status_code) == ({"status": "ok"}, 200)
    assert (data_dir / "dimwatch.sqlite3").is_file()
