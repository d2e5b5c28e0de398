"""Network partitions on hosts made of network namespaces (tests/cluster/netns.py): a worker
cut off mid-stream, an API node cut off mid-request, one NATS server of three cut off from its
peers, each healed after. Every time: no acknowledged batch lost, none applied twice (every
stream ends equal, number for number, to a single-process run of the same batches), and the
time until the cluster serves again is printed (docs/deployment.md lists the figures)."""

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cluster import netns
from tests.cluster.helpers import batches, reference, state
from tests.cluster.hosts import HostCluster, Pusher, serves
from tests.service.helpers import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

NAMES = ["s0", "s1.x", "s2"]
COUNT = 18
PAUSE = 6  # the fault goes in before this seq


@pytest.fixture
def sandbox() -> Iterator[netns.Sandbox]:
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(reason)
    made = netns.Sandbox()
    try:
        yield made
    finally:
        made.close()


def report(capsys: pytest.CaptureFixture[str], what: str, seconds: float) -> None:
    with capsys.disabled():
        print(f"\n  partition: {what}: {seconds:.1f} s", end="")


def finish(url: str, pusher: Pusher, tmp: Path) -> None:
    """The pusher done, every batch acknowledged once; the states equal the reference."""
    assert pusher.error is None, repr(pusher.error)
    seqs = sorted((name, seq) for _, name, seq, _ in pusher.acks)
    assert seqs == sorted((name, seq) for name in NAMES for seq in range(COUNT))
    wait_until(lambda: all(serves(url, name) for name in NAMES), 60)  # no partition moving
    with httpx.Client(base_url=url, timeout=30) as client:
        got = {name: state(client, name) for name in NAMES}
    expected = reference(tmp, pusher.sent)
    for name in NAMES:
        assert got[name]["stream"]["step"] == COUNT
        assert got[name] == expected[name], name


def create(url: str) -> None:
    for name in NAMES:
        assert httpx.post(f"{url}/v1/streams", json={"name": name}, timeout=30).status_code == 201


def test_worker_cut_off_mid_stream_is_fenced_and_rejoins(
    sandbox: netns.Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = HostCluster(sandbox, tmp_path, ["nats"])
    cluster.worker_on("w1")
    cluster.worker_on("w2")
    url = cluster.api_on("api")
    wait_until(lambda: cluster.balanced(2), 60)
    create(url)
    pusher = Pusher([url], {name: batches(name, COUNT) for name in NAMES}, pause_at=PAUSE)
    thread = pusher.start()
    pusher.pause()
    victim = cluster.hosts[cluster.owner_pid("s0")]
    cut = time.monotonic()
    sandbox.cut(victim)  # it still runs, and believes it owns s0 until its lease runs out
    pusher.resume.set()  # s0's next batch waits for the successor
    wait_until(lambda: pusher.acknowledged_after(cut), 90)
    report(capsys, "worker cut off: s0 served again after", pusher.first_after(cut))
    wait_until(lambda: cluster.balanced(1), 60)  # the other worker holds every partition
    healed = time.monotonic()
    sandbox.heal(victim)
    wait_until(lambda: cluster.balanced(2), 120)  # it rejoins and takes its share back
    report(capsys, "worker healed: back to its share after", time.monotonic() - healed)
    thread.join(300)
    finish(url, pusher, tmp_path)


def test_api_node_cut_off_mid_request_loses_nothing(
    sandbox: netns.Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = HostCluster(sandbox, tmp_path, ["nats"])
    cluster.worker_on("w1")
    first, second = cluster.api_on("api1"), cluster.api_on("api2")
    create(first)
    sent = {name: batches(name, COUNT) for name in NAMES}
    pusher = Pusher([first, second], sent, pause_at=PAUSE)
    thread = pusher.start()
    pusher.pause()
    logged = cluster.log_last_seq()
    worker = cluster.workers[0]
    os.kill(worker.pid, signal.SIGSTOP)  # s0's next batch will be logged, not yet applied
    pusher.resume.set()
    wait_until(lambda: cluster.log_last_seq() > logged, 30)  # in the log: api1 waits for it
    cut = time.monotonic()
    sandbox.cut("api1")  # mid-request: the batch will be applied, its answer cannot come back
    os.kill(worker.pid, signal.SIGCONT)
    wait_until(lambda: pusher.acknowledged_after(cut), 90)
    report(
        capsys,
        "API node cut off: the batch answered through the other after",
        pusher.first_after(cut),
    )
    assert [(n, seq) for _, n, seq, dup in pusher.acks if dup] == [("s0", PAUSE)]
    time.sleep(3)  # isolated for a while longer
    healed = time.monotonic()
    sandbox.heal("api1")
    wait_until(lambda: serves(first, "s0"), 120)
    report(capsys, "API node healed: serves again after", time.monotonic() - healed)
    thread.join(300)
    assert pusher.failovers >= 1
    finish(second, pusher, tmp_path)


def test_nats_server_cut_off_from_its_peers(
    sandbox: netns.Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = HostCluster(sandbox, tmp_path, ["n0", "n1", "n2"])
    cluster.worker_on("w1")
    url = cluster.api_on("api")
    create(url)
    pusher = Pusher([url], {name: batches(name, COUNT) for name in NAMES}, pause_at=PAUSE)
    thread = pusher.start()
    pusher.pause()
    victim = cluster.connected_to("dimwatch-worker")  # the worker must find another server
    cut = time.monotonic()
    sandbox.cut(victim)
    pusher.resume.set()
    wait_until(lambda: pusher.acknowledged_after(cut), 120)
    report(capsys, f"NATS server {victim} cut off: served again after", pusher.first_after(cut))
    healed = time.monotonic()
    sandbox.heal(victim)
    monitor = f"http://{cluster.nats[victim]}:8222/healthz"
    wait_until(lambda: _ok(monitor), 120)  # caught up with its peers
    report(capsys, f"NATS server {victim} healed: healthy again after", time.monotonic() - healed)
    thread.join(300)
    finish(url, pusher, tmp_path)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False
