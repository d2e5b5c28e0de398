"""The /v1 API through cluster API nodes: the same answers and errors as the embedded server,
reads and events through any node, an honest /readyz while partitions have no owner."""

import os
import re
import signal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from service.settings import Settings
from tests.cluster.helpers import Cluster, batches, push_until_acknowledged, reference, state
from tests.service.helpers import serve, wait_until

pytestmark = pytest.mark.cluster

TOKEN = {"Authorization": "Bearer t"}
X = np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32)
BINARY = {"Content-Type": "application/octet-stream", "X-Dim": "8", **TOKEN}
# (method, path, request keywords): every answer, status and body, must match the embedded one.
SCRIPT: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/v1/streams", {"headers": {}}),  # no token: 401
    ("POST", "/v1/streams", {"json": {"name": "p.q"}}),
    ("POST", "/v1/streams", {"json": {"name": "p.q"}}),  # 409 stream_exists
    ("POST", "/v1/streams", {"json": {"name": "bad", "latent_dims": [0]}}),  # 422
    ("POST", "/v1/streams", {"json": {"name": "big", "latent_dims": [2000]}}),  # limit
    ("GET", "/v1/streams/p.q/selection", {}),  # step 0, no models
    ("GET", "/v1/streams/p=q/selection", {}),  # 404: not p.q (whose subject token is p=q)
    ("GET", "/v1/streams/p.q/models/best", {}),  # 409 no_data_yet
    ("GET", "/v1/streams/nope", {}),  # 404
    ("GET", "/v1/streams/%C2%97%C3%AD/selection", {}),  # 404: no stream name (nor NATS key)
    ("POST", "/v1/streams/a%20b/reconstruct", {"json": {"data": X.tolist()}}),  # 404 as well
    ("DELETE", "/v1/streams/a%3Db", {}),  # 404 (was published to the log: invalid subject)
    ("POST", "/v1/streams/nope/batches", {"content": X.tobytes(), "headers": BINARY}),
    ("POST", "/v1/streams/p.q/batches", {"json": {"data": X.tolist(), "seq": 0}}),
    ("POST", "/v1/streams/p.q/batches", {"json": {"data": X.tolist(), "seq": 0}}),  # dup
    ("POST", "/v1/streams/p.q/batches", {"json": {"data": (X + 1).tolist(), "seq": 0}}),  # 409
    ("POST", "/v1/streams/p.q/batches", {"json": {"data": [[1.0, 2.0, 3.0]], "seq": 1}}),
    ("POST", "/v1/streams/p.q/batches", {"json": {"data": X.tolist(), "seq": 5}}),  # gap
    ("POST", "/v1/streams/p.q/batches", {"json": {"data": [[1e39] * 8]}}),  # 422 not finite
    ("POST", "/v1/streams/p.q/batches", {"content": b"xx", "headers": BINARY}),  # 422
    ("POST", "/v1/streams/p.q/batches", {"content": (X + 1).tobytes(), "headers": BINARY}),
    ("GET", "/v1/streams/p.q/models/3", {}),  # 404 no such model
    ("GET", "/v1/streams/p.q/models/best", {}),
    ("POST", "/v1/streams/p.q/transform", {"json": {"data": X.tolist(), "latent_dim": 5}}),
    ("POST", "/v1/streams/p.q/reconstruct", {"json": {"data": X.tolist()}}),
    ("POST", "/v1/streams/p.q/transform", {"json": {"data": [[1.0, 2.0]]}}),  # 422 columns
    ("GET", "/v1/streams/p.q/history?limit=0", {}),  # 422
    ("GET", "/v1/streams/p.q/collapse", {}),
    ("POST", "/v1/streams", {"json": {"name": "other", "latent_dims": [1, 3]}}),
    ("GET", "/v1/streams", {}),
    ("GET", "/v1/streams?limit=1", {}),  # one page: "other", next "other"
    ("GET", "/v1/streams?after=other&limit=1", {}),  # the last page: "p.q", next null
    ("GET", "/v1/streams?limit=0", {}),  # 422
    ("DELETE", "/v1/streams/p.q", {}),
    ("DELETE", "/v1/streams/p.q", {}),  # 404
    ("GET", "/v1/streams/p.q/selection", {}),  # 404
    ("POST", "/v1/streams", {"json": {"name": "p.q"}}),  # the name is free again
    ("GET", "/v1/streams/p.q", {}),
]


SCRIPT_STREAMS = {"p.q", "bad", "big", "other"}


def _answers(clients: list[httpx.Client]) -> list[tuple[int, Any]]:
    """Run SCRIPT, the i-th request through clients[i % len(clients)]; lists keep the script's
    streams only (other tests add theirs to the same cluster)."""
    out = []
    for i, (method, path, kwargs) in enumerate(SCRIPT):
        kwargs = {"headers": TOKEN, **kwargs}
        response = clients[i % len(clients)].request(method, path, **kwargs)
        body = response.json() if response.content else None
        if path == "/v1/streams" and method == "GET" and response.status_code == 200:
            body["data"] = [s for s in body["data"] if s["name"] in SCRIPT_STREAMS]
            body["count"] = len(body["data"])
        for item in [body, *(body.get("data", []) if isinstance(body, dict) else [])]:
            if isinstance(item, dict):
                item.pop("created_at", None)
        out.append((response.status_code, body))
    return out


def test_answers_match_the_embedded_server(shared_cluster: Cluster, tmp_path: Path) -> None:
    limits = {"api_tokens": ("t",), "max_dim": 1000}
    with shared_cluster.api(**limits) as one, shared_cluster.api(**limits) as two:
        got = _answers([one.client, two.client])
    settings = Settings(data_dir=tmp_path / "embedded", device="cpu", **limits)
    with serve(settings) as embedded:
        expected = _answers([embedded.client])
    for (method, path, _), g, e in zip(SCRIPT, got, expected, strict=True):
        assert g == e, f"{method} {path}"


def test_events_reach_a_listener_on_another_node(shared_cluster: Cluster) -> None:
    with shared_cluster.api() as one, shared_cluster.api() as two:
        assert one.client.post("/v1/streams", json={"name": "e"}).status_code == 201
        with two.client.stream("GET", "/v1/streams/e/events", timeout=30) as events:
            lines = (line for line in events.iter_lines() if line)
            assert next(lines) == ": connected"
            push_until_acknowledged(one.client, "e", X, 0)
            received = [next(lines) for _ in range(3)]
    assert received[:2] == ["event: step", "id: 1"]
    assert received[2].startswith('data: {"step":1,"rows_seen":4,')


def test_api_node_restart_keeps_every_batch(shared_cluster: Cluster, tmp_path: Path) -> None:
    sent = {"r": batches("r", 10)}
    with shared_cluster.api() as first:
        assert first.client.post("/v1/streams", json={"name": "r"}).status_code == 201
        for seq in range(5):
            push_until_acknowledged(first.client, "r", sent["r"][seq], seq)
    with shared_cluster.api() as second:  # a fresh node: nothing of the first one is needed
        for seq in range(5, 10):
            push_until_acknowledged(second.client, "r", sent["r"][seq], seq)
        got = state(second.client, "r")
        api_metrics = second.client.get("/metrics").text
    assert got == reference(tmp_path, sent)["r"]
    # /metrics per process: the second node pushed 5 batches; the worker applied all 10 (and
    # whatever the module's other tests pushed before)
    assert "dimwatch_batches_total 5.0" in api_metrics
    worker_metrics = httpx.get(shared_cluster.metrics_url).text
    applied = re.search(r"^dimwatch_batches_total (\S+)$", worker_metrics, re.MULTILINE)
    assert applied is not None and float(applied.group(1)) >= 10


def test_readyz_503_while_a_partition_changes_owner(cluster: Cluster) -> None:
    cluster.worker()
    cluster.worker()
    with cluster.api() as api:
        wait_until(lambda: cluster.balanced(2), 60)  # two partitions each
        assert api.client.post("/v1/streams", json={"name": "w"}).status_code == 201
        push_until_acknowledged(api.client, "w", X, 0)
        os.kill(cluster.owner_pid("w"), signal.SIGKILL)  # its partitions wait for the lease time
        answer = api.client.get("/readyz")
        assert (answer.status_code, answer.headers["Retry-After"]) == (503, "1")
        read = api.client.get("/v1/streams/w/selection")
        assert (read.status_code, read.headers["Retry-After"]) == (503, "1")
        assert read.json()["error"] == "not_ready"
        wait_until(lambda: api.client.get("/readyz").status_code == 200, 60)
        assert api.client.get("/v1/streams/w/selection").json()["step"] == 1
