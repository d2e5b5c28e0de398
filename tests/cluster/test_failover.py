"""Exactly-once effect through worker failures: every stream ends identical, number for number,
to a single-process run of the same batches, and its step equals the acknowledged batches."""

import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.cluster.helpers import (
    Cluster,
    batches,
    push_until_acknowledged,
    reference,
    start_pusher,
    state,
)
from tests.service.helpers import wait_until

pytestmark = pytest.mark.cluster

NAMES = ["s0", "s1.x", "s2"]  # a dot: stream names are encoded in subject tokens
COUNT = 18


def _create(client: httpx.Client, names: list[str]) -> None:
    for name in names:
        assert client.post("/v1/streams", json={"name": name}).status_code == 201


def test_worker_killed_mid_stream_another_takes_over(cluster: Cluster, tmp_path: Path) -> None:
    sent = {name: batches(name, COUNT) for name in NAMES}
    cluster.worker()
    cluster.worker()  # two workers share the 4 partitions (one hands some over as B joins)
    acknowledged = {name: 0 for name in NAMES}
    with cluster.api() as api:
        _create(api.client, NAMES)

        thread = start_pusher(api.client, sent, acknowledged)
        wait_until(lambda: acknowledged["s0"] >= 7 or not thread.is_alive(), 60)
        os.kill(cluster.owner_pid("s0"), signal.SIGKILL)  # batches in flight, some unsnapshotted
        thread.join(180)
        assert not thread.is_alive()
        got = {name: state(api.client, name) for name in NAMES}
    assert acknowledged == {name: COUNT for name in NAMES}
    expected = reference(tmp_path, sent)
    for name in NAMES:
        assert got[name]["stream"]["step"] == COUNT
        assert got[name] == expected[name], name


def test_frozen_owner_is_fenced(cluster: Cluster, tmp_path: Path) -> None:
    sent = {name: batches(name, 4 * 5) for name in NAMES}
    cluster.worker()
    cluster.worker()
    with cluster.api() as api:
        _create(api.client, NAMES)
        wait_until(lambda: cluster.balanced(2), 60)  # two partitions each
        frozen, successor = sorted(cluster.workers, key=lambda w: w.pid != cluster.owner_pid("s0"))

        def push_round(r: int) -> None:
            for seq in range(5 * r, 5 * r + 5):
                for name in NAMES:
                    push_until_acknowledged(api.client, name, sent[name][seq], seq)

        push_round(0)
        os.kill(frozen.pid, signal.SIGSTOP)  # owns s0's partition; its leases run out
        push_round(1)  # served once the successor claimed the frozen worker's partitions
        os.kill(frozen.pid, signal.SIGCONT)  # must stop on its own and write nothing
        push_round(2)
        epochs = cluster.record_epochs(NAMES)
        assert all(e.rsplit(".", 1)[0].endswith(f"-{successor.pid}") for e in epochs), epochs
        os.kill(successor.pid, signal.SIGKILL)  # the thawed worker takes everything back
        push_round(3)
        got = {name: state(api.client, name) for name in NAMES}
    expected = reference(tmp_path, sent)
    for name in NAMES:
        assert got[name] == expected[name], name
