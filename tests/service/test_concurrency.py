"""Concurrency: many clients on many streams, per-stream order, bounded queues (429)."""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager

import httpx

from tests.service.helpers import Server, batch, push, wait_until


def _push_new_client(url: str, name: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as c:
        push(c, name, batch(rows=2, dim=4))


def test_many_clients_many_streams_all_applied(server: Server) -> None:
    names = [f"s{i}" for i in range(6)]
    for name in names:
        server.client.post("/v1/streams", json={"name": name, "latent_dims": [1, 2]})

    def client_run(name: str) -> list[int]:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            return [
                push(c, name, batch(rows=4, dim=4, seed=i), seq=i).json()["step"] for i in range(15)
            ]

    with ThreadPoolExecutor(len(names)) as pool:
        steps = list(pool.map(client_run, names))
    assert steps == [list(range(1, 16))] * len(names)
    for name in names:
        assert server.client.get(f"/v1/streams/{name}").json()["step"] == 15


def test_many_clients_one_stream_every_batch_applied_once(server: Server) -> None:
    server.client.post("/v1/streams", json={"name": "s", "latent_dims": [1, 2]})

    def client_run(seed: int) -> list[int]:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            return [push(c, "s", batch(rows=3, dim=4, seed=seed)).json()["step"] for _ in range(10)]

    with ThreadPoolExecutor(5) as pool:
        steps = [s for run in pool.map(client_run, range(5)) for s in run]
    assert sorted(steps) == list(range(1, 51))
    history = server.client.get("/v1/streams/s/history").json()
    assert [p["step"] for p in history["data"]] == list(range(1, 51))


def test_queued_batches_apply_in_arrival_order(server: Server) -> None:
    server.client.post("/v1/streams", json={"name": "s", "latent_dims": [1, 2]})
    entry = server.registry.get("s")
    results: dict[int, int] = {}

    def send(i: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            results[i] = push(c, "s", batch(rows=2, dim=4, seed=i), seq=i).status_code

    threads = []
    with entry.live.lock:  # hold the stream: every batch below waits in its queue
        for i in range(8):
            threads.append(threading.Thread(target=send, args=(i,)))
            threads[-1].start()
            wait_until(lambda: entry.pending == len(threads))
    for t in threads:
        t.join(30)
    assert results == dict.fromkeys(range(8), 200)
    assert server.client.get("/v1/streams/s").json()["step"] == 8


def test_full_queue_answers_429_and_changes_nothing(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    with make_server(queue_depth=3) as server:
        server.client.post("/v1/streams", json={"name": "s", "latent_dims": [1, 2]})
        entry = server.registry.get("s")
        codes: list[int] = []

        def send(i: int) -> None:
            with httpx.Client(base_url=server.url, timeout=30) as c:
                codes.append(push(c, "s", batch(rows=2, dim=4, seed=i)).status_code)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
        with entry.live.lock:
            for t in threads:
                t.start()
            wait_until(lambda: entry.pending == 3)
            response = push(server.client, "s", batch(rows=2, dim=4))
            assert response.status_code == 429
            assert response.headers["retry-after"] == "1"
            assert response.json() == {
                "error": "rate_limited",
                "message": "stream 's' has 3 batches queued; the limit queue_depth is 3; "
                "retry later",
                "details": None,
            }
            other = server.client.post("/v1/streams", json={"name": "t", "latent_dims": [1, 2]})
            assert other.status_code == 201
            assert push(server.client, "t", batch(rows=2, dim=4)).status_code == 200
        for t in threads:
            t.join(30)
        assert codes == [200, 200, 200]
        assert server.client.get("/v1/streams/s").json()["step"] == 3


def test_reads_not_blocked_by_queued_training(server: Server) -> None:
    server.client.post("/v1/streams", json={"name": "s", "latent_dims": [1, 2]})
    push(server.client, "s", batch(rows=2, dim=4), seq=0)
    entry = server.registry.get("s")
    with entry.live.lock:
        thread = threading.Thread(target=_push_new_client, args=(server.url, "s"))
        thread.start()
        wait_until(lambda: entry.pending == 1)
        assert server.client.get("/v1/streams/s/selection").json()["step"] == 1
        assert server.client.get("/healthz").status_code == 200
    thread.join(30)
