"""The installed `dimwatch` console script as processes: a `dimwatch serve` and client commands."""

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
from typing import IO

import httpx

from tests import children

DIMWATCH = str(Path(sys.executable).parent / "dimwatch")
START_TIMEOUT = 120.0  # seconds for `dimwatch serve` to import torch and answer /readyz
COMMAND_TIMEOUT = 120.0  # seconds any client command may take


@dataclass
class Served:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any DIMWATCH_* setting, plus `extra`. A wide terminal, so that
    tables do not wrap; XDG_STATE_HOME (where push keeps its records) as the caller's, which
    tests/clients/conftest.py points into the test's tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIMWATCH_")}
    return {**env, "COLUMNS": "200", **extra}


def wait_until_ready(served: Served) -> None:
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
def serve(
    args: list[str], env: dict[str, str], port: int, data_dir: Path, log: IO[bytes] | None = None
) -> Iterator[Served]:
    """`dimwatch serve ARGS` until it answers /readyz; SIGTERM afterwards. Its output (the log:
    access lines on stdout, the rest on stderr) goes to `log` if given."""
    sink = log if log is not None else subprocess.DEVNULL
    process = children.popen([DIMWATCH, "serve", *args], env=env, stdout=sink, stderr=sink)
    served = Served(f"http://127.0.0.1:{port}", data_dir, process)
    try:
        wait_until_ready(served)
        yield served
    finally:
        stop(process)


def stop(process: "subprocess.Popen[bytes]") -> None:
    """SIGTERM, then SIGKILL if it has not exited within 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def dimwatch(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `dimwatch ARGS` to the end; its exit status, stdout and stderr."""
    return children.run(
        [DIMWATCH, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=COMMAND_TIMEOUT,
    )
