"""A NATS server of a three-server JetStream cluster (R3) killed with SIGKILL while batches flow:
no acknowledged batch is lost, none is applied twice."""

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from service.cluster import layout, local
from tests.cluster.helpers import (
    Cluster,
    batches,
    reference,
    start_pusher,
    state,
)
from tests.service.helpers import wait_until

pytestmark = pytest.mark.cluster

NAMES = ["n0", "n1"]
COUNT = 16


@pytest.fixture
def three_servers(tmp_path: Path) -> Iterator[list[local.NatsServer]]:
    routes = tuple(local.free_port() for _ in range(3))
    servers = []
    try:
        for i, port in enumerate(routes):
            options = {"name": f"n{i}", "cluster_port": port, "routes": routes}
            servers.append(local.start(tmp_path / f"nats{i}", **options))
        yield servers
    finally:
        for server in servers:
            server.stop()


async def _log_leader(url: str) -> str:
    """The server name of the log's stream leader (once the stream exists)."""
    nc = await nats.connect(url.split(","))
    try:
        info = await nc.jetstream().stream_info(layout.LOG)
        assert info.cluster is not None and info.cluster.leader is not None
        return info.cluster.leader
    finally:
        await nc.close()


def test_log_leader_killed_loses_no_acknowledged_batch(
    three_servers: list[local.NatsServer], tmp_path: Path
) -> None:
    url = ",".join(server.url for server in three_servers)
    cluster = Cluster(url, tmp_path)
    cluster.env["DIMWATCH_NATS_REPLICAS"] = "3"
    sent = {name: batches(name, COUNT) for name in NAMES}
    acknowledged = {name: 0 for name in NAMES}
    try:
        cluster.worker()
        with cluster.api(nats_replicas=3) as api:
            for name in NAMES:
                assert api.client.post("/v1/streams", json={"name": name}).status_code == 201

            thread = start_pusher(api.client, sent, acknowledged)
            wait_until(lambda: acknowledged["n0"] >= 6 or not thread.is_alive(), 60)
            leader = asyncio.run(_log_leader(url))
            victim = three_servers[int(leader.removeprefix("n"))]
            victim.process.send_signal(signal.SIGKILL)
            thread.join(180)
            assert not thread.is_alive()
            got = {name: state(api.client, name) for name in NAMES}
    finally:
        cluster.close()
    assert acknowledged == {name: COUNT for name in NAMES}
    expected = reference(tmp_path, sent)
    for name in NAMES:
        assert got[name] == expected[name], name
