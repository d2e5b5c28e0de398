"""Helpers of the service tests: a real uvicorn server in a thread, batches, pushes."""

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import uvicorn
from fastapi import FastAPI

from service.app import create_app
from service.registry import Registry
from service.settings import Settings
from tests import children


@dataclass
class Server:
    """A running server: its app (for white-box checks), base URL and a client."""

    app: FastAPI
    url: str
    client: httpx.Client

    @property
    def registry(self) -> Registry:
        registry: Registry = self.app.state.registry
        return registry


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll until condition() holds; fail the test after timeout seconds (generous: CI is a
    busy 2-core machine, and a condition that holds returns at once)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.005)


@contextmanager
def serve(settings: Settings, ready_timeout: float = 60.0, port: int = 0) -> Iterator[Server]:
    """The app for these settings under uvicorn in a thread, ready, with a client; on `port`
    (0: a free one; a given one can be reused at once by the next server, for restarts).
    ready_timeout is generous: CI is a busy 2-core machine and a ready server returns at once."""
    app = create_app(settings)
    # proto=IPPROTO_TCP: asyncio then sets TCP_NODELAY on accepted connections (else +40 ms each)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive())
        with httpx.Client(base_url=url, timeout=30.0) as client:
            wait_until(lambda: client.get("/readyz").status_code == 200, ready_timeout)
            yield Server(app, url, client)
    finally:
        app.state.closing.set()
        server.should_exit = True
        thread.join(30)
        sock.close()


def batch(rows: int = 10, dim: int = 8, seed: int = 0) -> np.ndarray:
    """A reproducible float32 batch (rows, dim)."""
    return np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)


def push(client: httpx.Client, name: str, x: np.ndarray, seq: int | None = None) -> httpx.Response:
    """POST one batch as float32 bytes."""
    headers = {"Content-Type": "application/octet-stream", "X-Dim": str(x.shape[1])}
    if seq is not None:
        headers["X-Seq"] = str(seq)
    return client.post(f"/v1/streams/{name}/batches", content=x.tobytes(), headers=headers)


@contextmanager
def server_process(
    data_dir: Path, log: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """`python -m service` on a free port (more settings in `env`); yields the process and a
    client once it is ready, kills it on the way out."""
    env = {
        **os.environ,
        "DIMWATCH_DATA_DIR": str(data_dir),
        "DIMWATCH_PORT": "0",
        "DIMWATCH_LOG_LEVEL": "info",
        **(env or {}),
    }
    offset = log.stat().st_size if log.exists() else 0  # the log of this run starts here
    with log.open("ab") as out:
        proc = children.popen([sys.executable, "-m", "service"], env=env, stdout=out, stderr=out)
    try:
        port: list[int] = []

        def started() -> bool:
            assert proc.poll() is None, log.read_text()
            text = log.read_text()[offset:]
            found = re.findall(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", text)
            port[:] = [int(p) for p in found[-1:]]
            return bool(port)

        wait_until(started, timeout=60)
        with httpx.Client(base_url=f"http://127.0.0.1:{port[0]}", timeout=30) as client:
            wait_until(lambda: client.get("/readyz").status_code == 200, timeout=60)
            yield proc, client
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
