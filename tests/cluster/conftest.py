"""Fixtures of the cluster tests: a real nats-server (the cluster extra's binary) per test, in a
temp dir on a free loopback port; workers as real `dimwatch worker` processes (so that they can
be killed with SIGKILL or frozen with SIGSTOP); API nodes as the real app under uvicorn."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.cluster import local
from tests.cluster.helpers import Cluster


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[local.NatsServer]:
    server = local.start(tmp_path / "nats")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cluster(nats_server: local.NatsServer, tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(nats_server.url, tmp_path)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One server and one worker for a module's tests that only add streams of their own."""
    tmp = tmp_path_factory.mktemp("shared")
    server = local.start(tmp / "nats")
    running = Cluster(server.url, tmp)
    try:
        running.worker(metrics_port=local.free_port())
        yield running
    finally:
        running.close()
        server.stop()
