"""Admission in the cluster: the queue depth counts a stream's batches admitted through every API
node, a worker's memory budget answers as the embedded server's does, and a batch whose owner
cannot be asked (frozen, changing) is logged all the same and waits for it."""

import asyncio
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import numpy as np
import pytest

from service.cluster import layout, local
from service.settings import Settings
from tests.cluster.helpers import Cluster
from tests.service.helpers import push, serve, wait_until

pytestmark = pytest.mark.cluster

X = np.random.default_rng(2).standard_normal((4, 8)).astype(np.float32)
WIDE = np.ones((1, 1000), np.float32)
BIG = {"latent_dims": [100, 200, 300, 400]}  # a bank of ~13 MB at D = 1000
LIMITS = {"DIMWATCH_QUEUE_DEPTH": "2", "DIMWATCH_MEMORY_BUDGET_MB": "1"}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A server and one worker with a queue depth of 2 and a memory budget of 1 MB."""
    tmp = tmp_path_factory.mktemp("limited")
    server = local.start(tmp / "nats")
    running = Cluster(server.url, tmp)
    running.env.update(LIMITS)
    try:
        running.worker()
        yield running
    finally:
        running.close()
        server.stop()


async def _admit(url: str, name: str, times: int) -> list[Any]:
    """Ask the stream's owner to admit `times` batches of X's shape, as an API node does before
    it appends one to the log (and then never append them)."""
    nc = await nats.connect(url)
    try:
        subject = layout.read_subject(layout.partition(name, 4))
        request = json.dumps({"op": "admit", "name": name, "rows": 4, "dim": 8}).encode()
        return [json.loads((await nc.request(subject, request, 5)).data) for _ in range(times)]
    finally:
        await nc.close()


def _budget_answers(client: httpx.Client) -> list[tuple[int, Any]]:
    answers = [
        client.post("/v1/streams", json={"name": "big", "dim": 1000, **BIG}),  # 422
        client.post("/v1/streams", json={"name": "wide", **BIG}),
        push(client, "wide", WIDE),  # 413: the bank and the step cannot fit
        client.get("/v1/streams/wide"),
    ]
    out = []
    for response in answers:
        body = response.json()
        body.pop("created_at", None)
        out.append((response.status_code, body))
    return out


def test_memory_budget_answers_as_the_embedded_server(limited: Cluster, tmp_path: Path) -> None:
    with limited.api() as api:
        got = _budget_answers(api.client)
    embedded = Settings(data_dir=tmp_path / "embedded", device="cpu", memory_budget_mb=1)
    with serve(embedded) as server:
        expected = _budget_answers(server.client)
    assert [status for status, _ in got] == [422, 201, 413, 200]
    assert got == expected


def test_queue_depth_counts_batches_admitted_through_any_node(limited: Cluster) -> None:
    with limited.api() as api:
        assert api.client.post("/v1/streams", json={"name": "q", "latent_dims": [1, 2]}).is_success
        tickets = asyncio.run(_admit(limited.url, "q", 2))  # held by "another node"
        response = push(api.client, "q", X)
    assert [sorted(t["ok"]) for t in tickets] == [["ticket"], ["ticket"]]
    assert (response.status_code, response.headers["retry-after"]) == (429, "1")
    assert response.json() == {
        "error": "rate_limited",
        "message": "stream 'q' has 2 batches queued; the limit queue_depth is 2; retry later",
        "details": None,
    }


async def _log_end(url: str) -> int:
    nc = await nats.connect(url)
    try:
        return (await nc.jetstream().stream_info(layout.LOG)).state.last_seq
    finally:
        await nc.close()


def test_a_batch_its_frozen_owner_cannot_admit_waits_in_the_log(cluster: Cluster) -> None:
    worker = cluster.worker()
    with cluster.api() as api:
        assert api.client.post("/v1/streams", json={"name": "f"}).status_code == 201
        logged = asyncio.run(_log_end(cluster.url))
        answers: list[httpx.Response] = []
        os.kill(worker.pid, signal.SIGSTOP)  # asked to admit the batch, it cannot answer
        try:
            thread = threading.Thread(target=lambda: answers.append(push(api.client, "f", X, 0)))
            thread.start()
            wait_until(lambda: asyncio.run(_log_end(cluster.url)) > logged, 30)  # logged anyway
        finally:
            os.kill(worker.pid, signal.SIGCONT)
        thread.join(60)
    assert [(a.status_code, a.json()["step"]) for a in answers] == [(200, 1)]
