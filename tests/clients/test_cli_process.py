"""The installed `dimwatch` console script, run as processes: `serve` and client commands."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.clients.conftest import TOKEN, rows

DIMWATCH = str(Path(sys.executable).parent / "dimwatch")
START_TIMEOUT = 120.0  # seconds for `dimwatch serve` to import torch and answer /readyz
COMMAND_TIMEOUT = 120.0  # seconds any client command may take


@dataclass
class Served:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    """This environment without any DIMWATCH_* setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIMWATCH_")}
    return {**env, "COLUMNS": "200", **extra}


def _wait_until_ready(served: Served) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise RuntimeError(f"dimwatch serve exited with {served.process.returncode}")
        try:
            if httpx.get(f"{served.url}/readyz", timeout=10).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("dimwatch serve did not become ready")


@contextmanager
def serve(args: list[str], env: dict[str, str], port: int, data_dir: Path) -> Iterator[Served]:
    process = subprocess.Popen(
        [DIMWATCH, "serve", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    served = Served(f"http://127.0.0.1:{port}", data_dir, process)
    try:
        _wait_until_ready(served)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`dimwatch serve` configured by flags, wanting TOKEN."""
    port, data_dir = _free_port(), tmp_path_factory.mktemp("served")
    flags = ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    with serve([*flags, "--token", TOKEN, "--device", "cpu"], _env(), port, data_dir) as served:
        yield served


def dimwatch(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DIMWATCH, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=_env(**env),
        timeout=COMMAND_TIMEOUT,
    )


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
    url = f"http://127.0.0.1:{_free_port()}"

    done = dimwatch("status", "--url", url)

    assert (done.returncode, done.stdout) == (1, "")
    assert (
        done.stderr == f"error: cannot reach dimwatch at {url} — start it with `dimwatch serve`\n"
    )


def test_serve_reads_dimwatch_variables(tmp_path: Path) -> None:
    port, data_dir = _free_port(), tmp_path / "from-env"
    env = _env(DIMWATCH_PORT=str(port), DIMWATCH_DATA_DIR=str(data_dir))

    with serve([], env, port, data_dir) as served:
        health = httpx.get(f"{served.url}/healthz", timeout=30)
        listed = httpx.get(f"{served.url}/v1/streams", timeout=30)

    assert (health.json(), listed.status_code) == ({"status": "ok"}, 200)
    assert (data_dir / "dimwatch.sqlite3").is_file()
