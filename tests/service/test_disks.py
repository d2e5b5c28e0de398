"""Embedded mode on a full and on a slow disk (real ones: tests/service/disks.py). A full disk
answers 503 storage_error (with Retry-After) and acknowledges nothing it did not store; a slow
disk answers slowly; after kill -9 on either, every acknowledged batch is there, none twice."""

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.cluster.helpers import reference, state
from tests.service import disks
from tests.service.helpers import batch, push, server_process, wait_until

pytestmark = pytest.mark.slow
SNAPSHOTS = {"DIMWATCH_SNAPSHOT_EVERY": "4"}  # snapshots written on the full disk too


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[disks.Disk]:
    reason = disks.unavailable()
    if reason is not None:
        pytest.skip(reason)
    with disks.small_disk(tmp_path / "disk", 32) as made:
        yield made


def report(capsys: pytest.CaptureFixture[str], what: str) -> None:
    with capsys.disabled():
        print(f"\n  disk: {what}", end="")


def _push_until_refused(client: httpx.Client, xs: list[np.ndarray], acked: list[int]) -> None:
    """Push the next batches until one is refused: it must be a 503 storage_error that says
    the disk is full (blocks the database holds already may take a few more batches first)."""
    for _ in range(200):
        seq = len(acked)
        answer = push(client, "f", xs[seq], seq)
        if answer.status_code != 200:
            break
        acked.append(seq)
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "storage_error" and "full" in answer.json()["message"]
    assert answer.headers["Retry-After"] == "1"
    assert client.get("/v1/streams/f").json()["step"] == len(acked)  # nothing half-applied


def test_full_disk_refuses_with_503_and_keeps_every_acknowledged_batch(
    disk: disks.Disk, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xs = [batch(rows=256, dim=32, seed=i) for i in range(400)]  # 32 KiB each
    acked: list[int] = []
    data, log = disk.mount / "data", tmp_path / "server.log"
    with server_process(data, log, SNAPSHOTS) as (_, client):
        assert client.post("/v1/streams", json={"name": "f"}).status_code == 201
        for seq in range(6):  # a snapshot (every 4) and two batches in the log
            assert push(client, "f", xs[seq], seq).status_code == 200
            acked.append(seq)
        filler = disk.fill()
        _push_until_refused(client, xs, acked)
        assert client.get("/v1/streams/f/selection").status_code == 200  # reads go on
        filler.unlink()
        freed = time.monotonic()
        wait_until(lambda: push(client, "f", xs[len(acked)], len(acked)).status_code == 200)
        report(capsys, f"full: served again {time.monotonic() - freed:.2f} s after space freed")
        acked.append(len(acked))
        filler = disk.fill()
        _push_until_refused(client, xs, acked)
    # killed (SIGKILL) on the full disk; restarted on it, still full
    with server_process(data, log, SNAPSHOTS) as (_, client):
        assert client.get("/v1/streams/f").json()["step"] == len(acked)
        filler.unlink()
        for seq in acked:
            assert push(client, "f", xs[seq], seq).json()["duplicate"] is True
        for seq in range(len(acked), len(acked) + 4):
            assert push(client, "f", xs[seq], seq).status_code == 200
        got = state(client, "f")
    assert got == reference(tmp_path, {"f": xs[: len(acked) + 4]})["f"]
    report(capsys, f"full: {len(acked)} batches acknowledged, every one kept")


def _pusher(
    url: str, name: str, xs: list[np.ndarray], acked: list[int], seconds: list[float]
) -> None:
    """Push until the server dies; 429 and 503 are retried (a slow disk may fill the queue)."""
    with httpx.Client(base_url=url, timeout=60) as client:
        for seq, x in enumerate(xs):
            started = time.monotonic()
            while True:
                try:
                    answer = push(client, name, x, seq)
                except httpx.TransportError:
                    return  # killed: that is the point
                if answer.status_code == 200:
                    break
                assert answer.status_code in (429, 503), answer.text
                time.sleep(0.05)
            acked.append(seq)
            seconds.append(time.monotonic() - started)


def test_slow_disk_keeps_every_acknowledged_batch_through_kill(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = disks.unavailable(slow=True)
    if reason is not None:
        pytest.skip(reason)
    names, xs = ["a", "b", "c"], [batch(rows=64, dim=8, seed=i) for i in range(30)]
    acked: dict[str, list[int]] = {name: [] for name in names}
    slow: list[float] = []
    with disks.small_disk(tmp_path / "disk", 64) as disk, disk.throttled(20) as procs:
        data, log = disk.mount / "data", tmp_path / "server.log"
        with server_process(data, log, SNAPSHOTS) as (proc, client):
            procs.write_text(str(proc.pid))  # its writes now go at 20 per second
            for name in names:
                assert client.post("/v1/streams", json={"name": name}).status_code == 201
            url = str(client.base_url)
            threads = [
                threading.Thread(target=_pusher, args=(url, n, xs, acked[n], slow)) for n in names
            ]
            for thread in threads:
                thread.start()
            wait_until(lambda: min(len(a) for a in acked.values()) >= 6, 120)
            proc.kill()
            for thread in threads:
                thread.join(60)
        fast: list[float] = []
        with server_process(data, log, SNAPSHOTS) as (_, client):  # not throttled any more
            for name in names:
                step = client.get(f"/v1/streams/{name}").json()["step"]
                assert step in (len(acked[name]), len(acked[name]) + 1), name
                for seq in acked[name]:
                    assert push(client, name, xs[seq], seq).json()["duplicate"] is True
                for seq in range(step, len(xs)):
                    started = time.monotonic()
                    assert push(client, name, xs[seq], seq).status_code == 200
                    fast.append(time.monotonic() - started)
            got = {name: state(client, name) for name in names}
    expected = reference(tmp_path, dict.fromkeys(names, xs))
    assert got == expected
    ratio = statistics.median(slow) / statistics.median(fast)
    report(capsys, f"slow (20 writes/s): median batch {statistics.median(slow) * 1e3:.0f} ms, "
           f"{ratio:.0f}x the same disk unthrottled; every acknowledged batch kept")  # fmt: skip
