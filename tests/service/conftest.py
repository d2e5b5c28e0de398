"""Fixtures of the service tests: each test gets a fresh data directory and its own server.

Servers are the real app under a real uvicorn on 127.0.0.1 (tests/service/helpers.py).
"""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.settings import Settings
from tests.service.helpers import Server, serve


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Defaults, in a fresh data directory."""
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., AbstractContextManager[Server]]]:
    """make_server(**overrides) -> context manager of a server with those settings."""

    def make(**overrides: Any) -> AbstractContextManager[Server]:
        overrides.setdefault("data_dir", tmp_path / "data")
        return serve(Settings(**overrides))

    yield make


@pytest.fixture
def server(settings: Settings) -> Iterator[Server]:
    """A server with default settings."""
    with serve(settings) as running:
        yield running


@pytest.fixture
def client(server: Server) -> httpx.Client:
    return server.client
