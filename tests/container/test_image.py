"""The image under a real Docker engine: it builds, its container serves as a non-root user,
its health check turns healthy, and a container killed with SIGKILL loses no acknowledged
batch: a new container on the same volume has every one of them (docs/deployment.md)."""

import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.cluster import local
from tests.cluster.helpers import batches, reference, state
from tests.container import docker
from tests.service.helpers import push, wait_until

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]  # a cold build takes minutes

# batches sent; the container is killed after the 8th is acknowledged, and enough are left for
# pushes to be in flight then however fast the server answers (at 24, a fast run had every batch
# acknowledged before `docker kill` took effect)
COUNT = 1000


def report(capsys: pytest.CaptureFixture[str], what: str) -> None:
    with capsys.disabled():
        print(f"\n  container: {what}", end="")


def test_container_serves_as_non_root_and_turns_healthy(
    image: str, volume: str, logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with docker.container(volume, local.free_port(), logs / "container.log") as running:
        assert running.health() == "healthy"
        report(capsys, f"healthy and ready {running.started:.1f} s after docker run")
        assert docker.docker("exec", running.id, "id", "-u") == "10001"
        client = running.client
        assert client.post("/v1/streams", json={"name": "s"}).status_code == 201  # /data writable
        answer = push(client, "s", batches("s", 1)[0], seq=0)
        assert (answer.status_code, answer.json()["step"]) == (200, 1)


def _push_until_refused(client: httpx.Client, xs: list[np.ndarray], acked: list[int]) -> None:
    """Push batch after batch once each; stop at the first that gets no answer (the kill)."""
    for seq, x in enumerate(xs):
        try:
            response = push(client, "k", x, seq)
        except httpx.TransportError:
            return
        assert response.status_code == 200, response.text
        acked.append(seq)


def test_container_killed_keeps_every_acknowledged_batch(
    image: str, volume: str, logs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xs = batches("k", COUNT)
    acked: list[int] = []
    port = local.free_port()
    with docker.container(volume, port, logs / "first.log") as first:
        assert first.client.post("/v1/streams", json={"name": "k"}).status_code == 201
        pusher = threading.Thread(target=_push_until_refused, args=(first.client, xs, acked))
        pusher.start()
        wait_until(lambda: len(acked) >= 8 or not pusher.is_alive(), 120)
        first.kill()  # pushes in flight: one may be committed with its answer lost
        pusher.join(60)
    assert 8 <= len(acked) < COUNT, len(acked)
    with docker.container(volume, port, logs / "second.log") as second:
        step = second.client.get("/v1/streams/k").json()["step"]
        assert len(acked) <= step <= len(acked) + 1
        restart = f"ready {second.started:.1f} s after docker run"
        report(capsys, f"killed after {len(acked)} acks; a new container: step {step}, {restart}")
        for seq in acked:  # every acknowledged batch is there: resent, it is a duplicate
            answer = push(second.client, "k", xs[seq], seq)
            assert (answer.status_code, answer.json()["duplicate"]) == (200, True), seq
        for seq in range(step, COUNT):
            assert push(second.client, "k", xs[seq], seq).status_code == 200
        got = state(second.client, "k")
    # number for number what one process given the same batches in order has (same torch)
    assert got == reference(tmp_path, {"k": xs})["k"]
