"""A dimwatch cluster on the hosts of a netns.Sandbox: nats-servers, `dimwatch worker` and
`dimwatch serve --nats` processes each on a host of its own, a pusher that fails over between
API nodes and stamps every acknowledgement with the time it came."""

import asyncio
import contextlib
import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats
import numpy as np

from service.cluster import layout, local
from tests.cluster.helpers import READY_SECONDS, Cluster
from tests.cluster.netns import Sandbox
from tests.service.helpers import push, wait_until

NATS_PORT, ROUTE_PORT, MONITOR_PORT, API_PORT = 4222, 6222, 8222, 8000
REQUEST_SECONDS = 5.0  # the pusher's patience with one node before it tries another
PUSH_SECONDS = 120.0  # one batch, through a partition and its healing


def nats_config(name: str, address: str, store: Path, peers: list[str]) -> str:
    """A server on its host's address (fsync per write, monitoring on 8222); with peers, one
    of a JetStream cluster whose routes list every member (itself included, as in
    docs/deployment.md's three-machine configuration)."""
    text = f"""
server_name: {name}
listen: {address}:{NATS_PORT}
http: {address}:{MONITOR_PORT}
max_payload: 8MB
jetstream {{
  store_dir: "{store}"
  sync_interval: always
}}
"""
    if peers:
        routes = ", ".join(f'"nats-route://{p}:{ROUTE_PORT}"' for p in peers)
        text += (
            f"cluster {{\n  name: dw\n  listen: {address}:{ROUTE_PORT}\n  routes: [{routes}]\n}}\n"
        )
    return text


def wait_listening(address: str, port: int, seconds: float = READY_SECONDS) -> None:
    def listening() -> bool:
        with contextlib.suppress(OSError):
            socket.create_connection((address, port), 0.5).close()
            return True
        return False

    wait_until(listening, seconds)


class HostCluster(Cluster):
    """Cluster (tests/cluster/helpers.py) whose processes run on sandbox hosts."""

    def __init__(self, sandbox: Sandbox, tmp: Path, nats_hosts: list[str]) -> None:
        self.sandbox = sandbox
        self.nats = {name: sandbox.host(name) for name in nats_hosts}
        peers = list(self.nats.values()) if len(nats_hosts) > 1 else []
        for name, address in self.nats.items():
            store = tmp / name
            store.mkdir()
            (store / "nats.conf").write_text(nats_config(name, address, store / "js", peers))
            command = [local.binary(), "-c", str(store / "nats.conf")]
            sandbox.run(name, command, dict(os.environ), store / "nats.log")
        for address in self.nats.values():
            wait_listening(address, NATS_PORT)
        url = ",".join(f"nats://{a}:{NATS_PORT}" for a in self.nats.values())
        super().__init__(url, tmp)
        if len(nats_hosts) > 1:
            self.env["DIMWATCH_NATS_REPLICAS"] = str(len(nats_hosts))
        self.hosts: dict[int, str] = {}  # pid -> host

    def worker_on(self, host: str) -> int:
        """A `dimwatch worker` on a new host; its pid."""
        self.sandbox.host(host)
        command = [str(Path(sys.executable).parent / "dimwatch"), "worker"]
        log = self.tmp / f"{host}.log"
        process = self.sandbox.run(host, command, {**os.environ, **self.env}, log)
        self.workers.append(process)
        self.hosts[process.pid] = host
        return process.pid

    def api_on(self, host: str) -> str:
        """A `dimwatch serve --nats` on a new host; its URL once /readyz answers 200."""
        address = self.sandbox.host(host)
        dimwatch = str(Path(sys.executable).parent / "dimwatch")
        command = [dimwatch, "serve", "--host", address, "--port", str(API_PORT)]
        self.sandbox.run(host, command, {**os.environ, **self.env}, self.tmp / f"{host}.log")
        url = f"http://{address}:{API_PORT}"
        wait_until(lambda: _status(f"{url}/readyz") == 200, READY_SECONDS)
        return url

    def log_last_seq(self) -> int:
        """The last sequence number of the batch log (JetStream stream DW_LOG)."""
        return asyncio.run(_log_last_seq(self.url))

    def connected_to(self, client_name: str) -> str:
        """The NATS host a client (by connection name prefix) is connected to."""
        for host, address in self.nats.items():
            connz = _json(f"http://{address}:{MONITOR_PORT}/connz")
            names = [c.get("name", "") for c in connz.get("connections", [])]
            if any(n.startswith(client_name) for n in names):
                return host
        raise AssertionError(f"no NATS server has a connection named {client_name}*")


async def _log_last_seq(url: str) -> int:
    nc = await nats.connect(url.split(","))
    try:
        info = await nc.jetstream().stream_info(layout.LOG)
        return int(info.state.last_seq)
    finally:
        await nc.close()


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=REQUEST_SECONDS).status_code
    except httpx.TransportError:
        return 0


def _json(url: str) -> dict:
    try:
        found: dict = httpx.get(url, timeout=REQUEST_SECONDS).json()
        return found
    except (httpx.TransportError, json.JSONDecodeError):
        return {}


def serves(url: str, name: str) -> bool:
    """The node answers a stream's read (its owner reachable through NATS)."""
    return _status(f"{url}/v1/streams/{name}/selection") == 200


@dataclass
class Pusher:
    """Pushes every stream's batches in turn, seq by seq, each until acknowledged: 503/429 are
    retried on the same node, a request without an answer within REQUEST_SECONDS on the next
    node (with the same seq: a batch that was applied answers duplicate: true)."""

    urls: list[str]
    sent: dict[str, list[np.ndarray]]
    pause_at: int = -1  # before this seq: set `paused`, wait for `resume` (the fault goes in)
    paused: threading.Event = field(default_factory=threading.Event)
    resume: threading.Event = field(default_factory=threading.Event)
    acks: list[tuple[float, str, int, bool]] = field(default_factory=list)  # t, name, seq, dup
    failovers: int = 0
    error: BaseException | None = None

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run)
        thread.start()
        return thread

    def pause(self) -> None:
        """Wait until the pusher stands before pause_at."""
        assert self.paused.wait(PUSH_SECONDS), "the pusher never reached its pause"

    def acknowledged_after(self, t: float) -> bool:
        return any(a[0] > t for a in self.acks)

    def first_after(self, t: float) -> float:
        """Seconds from t to the first acknowledgement after it."""
        return min(a[0] for a in self.acks if a[0] > t) - t

    def _run(self) -> None:
        clients = [httpx.Client(base_url=u, timeout=REQUEST_SECONDS) for u in self.urls]
        try:
            for seq in range(len(next(iter(self.sent.values())))):
                if seq == self.pause_at:
                    self.paused.set()
                    assert self.resume.wait(PUSH_SECONDS)
                for name, xs in self.sent.items():
                    duplicate = self._push(clients, name, xs[seq], seq)
                    self.acks.append((time.monotonic(), name, seq, duplicate))
        except BaseException as exc:
            self.error = exc
        finally:
            for client in clients:
                client.close()

    def _push(self, clients: list[httpx.Client], name: str, x: np.ndarray, seq: int) -> bool:
        deadline = time.monotonic() + PUSH_SECONDS
        while time.monotonic() < deadline:
            try:
                response = push(clients[0], name, x, seq)
            except httpx.TransportError:
                clients.append(clients.pop(0))  # this node is away: the next one
                self.failovers += 1
                continue
            if response.status_code == 200:
                return bool(response.json()["duplicate"])
            assert response.status_code in (503, 429), f"{name} seq {seq}: {response.text}"
            time.sleep(0.05)
        raise AssertionError(f"{name} seq {seq} not acknowledged within {PUSH_SECONDS} s")
