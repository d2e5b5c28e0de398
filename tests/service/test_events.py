"""Server-sent events: one `step` event per applied batch, `selection_change` on a new best H."""

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import httpx
import numpy as np

from streaming.data import ppca_data
from tests.service.helpers import Server, batch, push


def _events(lines: Iterator[str], count: int) -> list[dict[str, str]]:
    """The next `count` events (comments skipped) as {field: value}."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in lines:
        if line.startswith(":"):
            continue
        if line == "":
            if current:
                events.append(current)
                current = {}
            if len(events) == count:
                return events
            continue
        field, _, value = line.partition(": ")
        current[field] = value
    return events


def test_events_send_each_step_in_order(server: Server) -> None:
    c = server.client
    c.post("/v1/streams", json={"name": "s"})
    with c.stream("GET", "/v1/streams/s/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines) == ": connected"
        bodies = [push(c, "s", batch(seed=i), seq=i).json() for i in range(3)]
        events = _events(lines, 3)
    assert [e["event"] for e in events] == ["step"] * 3
    assert [e["id"] for e in events] == ["1", "2", "3"]
    assert [json.loads(e["data"]) for e in events] == [b["selection"] for b in bodies]


def test_events_mark_selection_changes(server: Server) -> None:
    # Measured: with bic_n 1 and lr 0.1 on this 2-D data the best H moves 1 -> 2 -> 1 -> 2.
    c = server.client
    config = {"latent_dims": [1, 2], "learning_rate": 0.1, "bic_n": 1, "adaptive": False}
    c.post("/v1/streams", json={"name": "s", **config})
    X = ppca_data(50 * 30, 4, 2, noise=0.1, seed=0, scales=np.array([3.0, 3.0]))
    with c.stream("GET", "/v1/streams/s/events") as response:
        lines = response.iter_lines()
        next(lines)
        picks = [push(c, "s", X[50 * i : 50 * (i + 1)], seq=i).json() for i in range(30)]
        best = [p["selection"]["best_latent_dim"] for p in picks]
        changes = [i for i in range(1, 30) if best[i] != best[i - 1]]
        events = _events(lines, 30 + len(changes))
    assert changes, f"the best H never changed: {best}"
    got = [json.loads(e["data"]) for e in events if e["event"] == "selection_change"]
    assert got == [
        {"step": i + 1, "previous": best[i - 1], "best_latent_dim": best[i]} for i in changes
    ]
    metrics = c.get("/metrics").text
    assert f"dimwatch_selection_changes_total {float(len(changes))}" in metrics


def test_events_keep_alive_in_silence(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    with make_server(keepalive_seconds=0.3) as server:
        server.client.post("/v1/streams", json={"name": "s"})
        with server.client.stream("GET", "/v1/streams/s/events") as response:
            lines = response.iter_lines()
            assert [next(lines), next(lines), next(lines)] == [": connected", "", ": keep-alive"]


def test_events_end_when_stream_deleted(server: Server) -> None:
    c = server.client
    c.post("/v1/streams", json={"name": "s"})
    with c.stream("GET", "/v1/streams/s/events") as response:
        lines = response.iter_lines()
        next(lines)
        threading.Timer(0.1, lambda: httpx.delete(f"{server.url}/v1/streams/s")).start()
        assert list(lines) == [""]


def test_events_unknown_stream_is_404(client: httpx.Client) -> None:
    assert client.get("/v1/streams/nope/events").status_code == 404
