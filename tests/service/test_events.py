"""Server-sent events: one `step` event per applied batch, `selection_change` on a new best H."""

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import httpx
import numpy as np
import pytest

from service import pubsub
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
    # one true dimension, then two: the best H moves from 1 to 2 as the stream changes
    c = server.client
    c.post("/v1/streams", json={"name": "s", "latent_dims": [1, 2], "switch_margin": 0.0})
    one = ppca_data(50 * 15, 4, 1, noise=0.1, seed=0, scales=np.array([3.0]))
    two = ppca_data(50 * 15, 4, 2, noise=0.1, seed=0, scales=np.array([3.0, 3.0]))
    X = np.concatenate([one, two])
    with c.stream("GET", "/v1/streams/s/events") as response:
        lines = response.iter_lines()
        next(lines)
        picks = [push(c, "s", X[50 * i : 50 * (i + 1)], seq=i).json() for i in range(30)]
        best = [p["selection"]["best_latent_dim"] for p in picks]
        changes = [i for i in range(1, 30) if best[i] != best[i - 1]]
        events = _events(lines, 30 + len(changes))
    assert best[0] == 1 and best[-1] == 2, best
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
        assert list(lines) == ["", "event: end", 'data: {"reason": "deleted"}', ""]


def test_events_unknown_stream_is_404(client: httpx.Client) -> None:
    assert client.get("/v1/streams/nope/events").status_code == 404


def _connect(
    client: httpx.Client, last_event_id: str | None = None
) -> AbstractContextManager[httpx.Response]:
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    return client.stream("GET", "/v1/streams/s/events", headers=headers)


@contextmanager
def _listening(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> Iterator[tuple[Server, Iterator[str]]]:
    """A server whose keep-alive interval is longer than any test's timeout (only a publish, a
    delete or a stop can wake its listener), stream s, and the lines of one listener of it."""
    with make_server(keepalive_seconds=3600) as server:
        server.client.post("/v1/streams", json={"name": "s"})
        with _connect(server.client) as response:
            lines = response.iter_lines()
            assert next(lines) == ": connected"
            yield server, lines


def test_events_wake_on_publish_not_on_a_timer(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    with _listening(make_server) as (server, lines):
        push(server.client, "s", batch(seed=0), seq=0)
        assert [e["id"] for e in _events(lines, 1)] == ["1"]


def test_events_replay_after_last_event_id(server: Server) -> None:
    c = server.client
    c.post("/v1/streams", json={"name": "s"})
    bodies = [push(c, "s", batch(seed=i), seq=i).json() for i in range(4)]
    with _connect(c, last_event_id="2") as response:
        lines = response.iter_lines()
        assert next(lines) == ": connected"
        events = _events(lines, 2)
    assert [(e["event"], e["id"]) for e in events] == [("step", "3"), ("step", "4")]
    assert [json.loads(e["data"]) for e in events] == [b["selection"] for b in bodies[2:]]


def test_events_reconnect_at_the_current_step_replays_nothing(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    with make_server(keepalive_seconds=0.3) as server:
        c = server.client
        c.post("/v1/streams", json={"name": "s"})
        push(c, "s", batch(), seq=0)
        with _connect(c, last_event_id="1") as response:
            lines = response.iter_lines()
            assert [next(lines), next(lines), next(lines)] == [": connected", "", ": keep-alive"]


def test_events_say_reset_when_missed_events_are_gone(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pubsub, "REPLAY", 2)  # hubs made from now on keep 2 batches
    c = server.client
    c.post("/v1/streams", json={"name": "s"})
    for i in range(5):
        push(c, "s", batch(seed=i), seq=i)
    with _connect(c, last_event_id="1") as response:
        lines = response.iter_lines()
        next(lines)
        reset, *replayed = _events(lines, 3)
    assert reset["event"] == "reset"
    assert json.loads(reset["data"]) == {
        "reason": "too_old",
        "last_event_id": "1",
        "step": 5,
        "replayed_from": 4,
        "message": "cannot resume after Last-Event-ID '1': some events after it are no longer "
        "kept; re-read the selection and the history",
    }
    assert [e["id"] for e in replayed] == ["4", "5"]


def test_events_unknown_last_event_id_says_reset(server: Server) -> None:
    c = server.client
    c.post("/v1/streams", json={"name": "s"})
    push(c, "s", batch(), seq=0)
    with _connect(c, last_event_id="nine") as response:
        lines = response.iter_lines()
        next(lines)
        reset, step = _events(lines, 2)
    assert json.loads(reset["data"])["reason"] == "unknown_id"
    assert step["id"] == "1"


def test_events_end_at_once_on_server_stop(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    with _listening(make_server) as (server, lines):
        threading.Thread(target=server.app.state.closing.set).start()  # as SIGTERM does
        assert list(lines) == ["", "event: end", 'data: {"reason": "shutdown"}', ""]


@pytest.mark.anyio
async def test_hub_subscribe_after_delete_ends_at_once() -> None:
    # The race: the route found the stream, the stream was deleted, then the listener subscribed.
    hub = pubsub.Hub()
    hub.close("deleted")
    listener = hub.subscribe(None, 0)
    assert await listener.next(keepalive=3600) == 'event: end\ndata: {"reason": "deleted"}\n\n'
    assert await listener.next(keepalive=3600) is None
    assert not hub.listening
