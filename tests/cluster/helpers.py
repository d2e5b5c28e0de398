"""Helpers of the cluster tests: worker processes, API nodes, retrying pushes, whole states."""

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import nats
import numpy as np
from nats.js.errors import NotFoundError

from service.cluster import layout
from service.settings import Settings
from tests import children
from tests.service.helpers import Server, push, serve

READY_SECONDS = 90.0  # a worker imports torch: seconds on a busy 2-core machine
PUSH_SECONDS = 60.0  # one batch through a takeover, retried on 503


class Cluster:
    """Workers and API nodes on one NATS URL, with test-sized settings: 4 partitions, 2 s
    leases, a snapshot every 4 batches."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.tmp = tmp
        self.workers: list[subprocess.Popen[bytes]] = []
        self.metrics_url = ""  # the last worker started with a metrics port
        self.env = {
            "DIMWATCH_NATS_URL": url,
            "DIMWATCH_PARTITIONS": "4",
            "DIMWATCH_LEASE_SECONDS": "2",
            "DIMWATCH_SNAPSHOT_EVERY": "4",
            "DIMWATCH_ANSWER_TIMEOUT": "20",
            "DIMWATCH_DEVICE": "cpu",
            "DIMWATCH_LOG_LEVEL": "info",
        }

    def settings(self, **overrides: Any) -> Settings:
        given: dict[str, Any] = {
            "nats_url": self.url,
            "partitions": 4,
            "lease_seconds": 2,
            "snapshot_every": 4,
            "answer_timeout": 20,
            "device": "cpu",
            "data_dir": self.tmp / "api-node-has-no-data",
        }
        return Settings(**{**given, **overrides})

    def worker(self, metrics_port: int | None = None) -> subprocess.Popen[bytes]:
        """Start a `dimwatch worker` process (its log in tmp/worker-N.log)."""
        command = [str(Path(sys.executable).parent / "dimwatch"), "worker"]
        env = {**os.environ, **self.env}
        if metrics_port is not None:
            env["DIMWATCH_METRICS_PORT"] = str(metrics_port)
            self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        with (self.tmp / f"worker-{len(self.workers)}.log").open("wb") as out:
            process = children.popen(command, env=env, stdout=out, stderr=out)
        self.workers.append(process)
        return process

    @contextmanager
    def api(self, **overrides: Any) -> Iterator[Server]:
        """An API node, once every partition is served (/readyz 200)."""
        with serve(self.settings(**overrides), ready_timeout=READY_SECONDS) as server:
            yield server

    def owner_pid(self, name: str) -> int:
        """The pid of the worker holding the lease of the stream's partition."""
        key = layout.lease_key(layout.partition(name, 4))
        return _pid(asyncio.run(_get(self.url, layout.LEASES, key)))

    def balanced(self, workers: int) -> bool:
        """Every partition's lease held, each of `workers` workers holding its fair share."""
        held = Counter(_pid(epoch) for epoch in asyncio.run(_values(self.url, layout.LEASES)))
        return sorted(held.values()) == [4 // workers] * workers

    def record_epochs(self, names: list[str]) -> list[str]:
        keys = [layout.stream_key(layout.partition(n, 4), layout.token(n)) for n in names]
        records = [asyncio.run(_get(self.url, layout.STREAMS, k)) for k in keys]
        return [layout.StreamRecord.decode(r.encode()).epoch or "" for r in records]

    def close(self) -> None:
        """Kill the workers (their graceful stop is the hand-over the tests exercise already)."""
        for process in self.workers:
            if process.poll() is None:
                process.kill()
                process.wait(20)


def _pid(epoch: str) -> int:
    """The pid in a lease's epoch, <host>-<pid>.<n>."""
    return int(epoch.rsplit(".", 1)[0].rsplit("-", 1)[1])


async def _values(url: str, bucket: str) -> list[str]:
    nc = await nats.connect(url)
    try:
        kv = await nc.jetstream().key_value(bucket)
        values = []
        for key in await layout.keys(kv):
            with contextlib.suppress(NotFoundError):  # deleted since listed (a hand-over)
                values.append(((await kv.get(key)).value or b"").decode())
        return values
    finally:
        await nc.close()


async def _get(url: str, bucket: str, key: str) -> str:
    nc = await nats.connect(url)
    try:
        entry = await (await nc.jetstream().key_value(bucket)).get(key)
        return (entry.value or b"").decode()
    finally:
        await nc.close()


def push_until_acknowledged(client: httpx.Client, name: str, x: np.ndarray, seq: int) -> dict:
    """POST one batch with its seq until a 2xx, retrying 503/429 (as the client library does):
    returns the acknowledged answer."""
    deadline = time.monotonic() + PUSH_SECONDS
    while True:
        try:
            response = push(client, name, x, seq)
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 200:
            answer: dict = response.json()
            return answer
        if response is not None and response.status_code not in (503, 429):
            raise AssertionError(f"seq {seq}: {response.status_code} {response.text}")
        if time.monotonic() > deadline:
            raise AssertionError(f"seq {seq} not acknowledged within {PUSH_SECONDS} s")
        time.sleep(0.05)


def start_pusher(
    client: httpx.Client, sent: dict[str, list[np.ndarray]], acknowledged: dict[str, int]
) -> threading.Thread:
    """A thread that pushes every stream's batches in turn, seq by seq, each until acknowledged,
    counting them in `acknowledged`."""

    def pusher() -> None:
        for seq in range(len(next(iter(sent.values())))):
            for name, xs in sent.items():
                push_until_acknowledged(client, name, xs[seq], seq)
                acknowledged[name] += 1

    thread = threading.Thread(target=pusher, daemon=True)  # an interrupted run need not wait
    thread.start()
    return thread


def batches(name: str, count: int, rows: int = 5, dim: int = 8) -> list[np.ndarray]:
    """Reproducible batches of one stream (their seed depends on the name and the index)."""
    base = sum(name.encode())
    rng = [np.random.default_rng(base * 1000 + i) for i in range(count)]
    return [r.standard_normal((rows, dim)).astype(np.float32) for r in rng]


def state(client: httpx.Client, name: str) -> dict[str, Any]:
    """Everything the API says of a stream, but when it was created."""
    stream = client.get(f"/v1/streams/{name}").json()
    stream.pop("created_at")
    probe = {"data": [[0.5, -1.0, 0.25, 2.0, 0.0, 1.0, -0.5, 3.0]]}
    out = {
        "stream": stream,
        "selection": client.get(f"/v1/streams/{name}/selection").json(),
        "collapse": client.get(f"/v1/streams/{name}/collapse").json(),
        "history": client.get(f"/v1/streams/{name}/history", params={"limit": 10_000}).json(),
        "transform": client.post(f"/v1/streams/{name}/transform", json=probe).json(),
        "reconstruct": client.post(f"/v1/streams/{name}/reconstruct", json=probe).json(),
    }
    for h in stream["latent_dims"]:
        out[f"model {h}"] = client.get(f"/v1/streams/{name}/models/{h}").json()
    return out


def reference(tmp: Path, sent: dict[str, list[np.ndarray]]) -> dict[str, dict[str, Any]]:
    """The states of a single-process (embedded) server given the same batches in order."""
    with serve(Settings(data_dir=tmp / "reference", device="cpu")) as server:
        for name, xs in sent.items():
            assert server.client.post("/v1/streams", json={"name": name}).status_code == 201
            for seq, x in enumerate(xs):
                assert push(server.client, name, x, seq).status_code == 200
        return {name: state(server.client, name) for name in sent}
