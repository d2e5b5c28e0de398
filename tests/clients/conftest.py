"""Fixtures of the client and CLI tests: the real app in-process, and real servers on sockets."""

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from clients import AsyncDimwatchClient, DimwatchClient, RetryPolicy
from clients._local_server import local_server

TOKEN = "client-test-token"
NO_RETRY = RetryPolicy(attempts=1, wait_ready=0)


@pytest.fixture(autouse=True)
def _own_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`dimwatch push` keeps its records under XDG_STATE_HOME: a fresh one per test."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@asynccontextmanager
async def running_app(data_dir: Path, **settings: Any) -> AsyncIterator[ASGIApp]:
    """The real app with its lifespan running, for httpx.ASGITransport (which runs none).

    The lifespan's state is handed to every request the way an ASGI server does it.
    """
    from service.app import create_app
    from service.settings import Settings

    app = create_app(Settings.model_validate({"data_dir": data_dir, **settings}))
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            await app({**scope, "state": dict(state or {})}, receive, send)

        await _wait_until_ready(with_state)
        yield with_state


async def _wait_until_ready(app: ASGIApp) -> None:
    """Stored streams load in the background; the API answers 503 until /readyz says ready."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dimwatch.test") as http:
        deadline = time.monotonic() + 60  # torch's warm-up step on a busy machine
        while time.monotonic() < deadline:
            if (await http.get("/readyz")).status_code == 200:
                return
            await anyio.sleep(0.01)
    raise RuntimeError("the app did not become ready")


@pytest.fixture
async def app_client(tmp_path: Path) -> AsyncIterator[AsyncDimwatchClient]:
    async with running_app(tmp_path) as app:
        transport = httpx.ASGITransport(app=app)
        async with AsyncDimwatchClient("http://dimwatch.test", transport=transport) as client:
            yield client


@pytest.fixture
def live_url(tmp_path: Path) -> Iterator[str]:
    """A real uvicorn server (in a thread) on a free 127.0.0.1 port, without auth."""
    with local_server(tmp_path / "data") as url:
        yield url


@pytest.fixture
def live_client(live_url: str) -> Iterator[DimwatchClient]:
    with DimwatchClient(live_url, retry=NO_RETRY) as client:
        yield client


@pytest.fixture
def token_url(tmp_path: Path) -> Iterator[str]:
    """A real uvicorn server that wants `Authorization: Bearer TOKEN`."""
    with local_server(tmp_path / "data", tokens=(TOKEN,)) as url:
        yield url


def rows(n: int, dim: int = 10, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 standard-normal rows."""
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
