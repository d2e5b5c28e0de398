"""The sync client against a real uvicorn server over a real socket: round trip, events, errors."""

import socket
import threading

import pytest

from clients import AsyncDimwatchClient, DimwatchClient, errors
from clients.models import SelectionChangeEvent, StepEvent
from tests.clients.conftest import NO_RETRY, TOKEN, rows


def test_stream_array_round_trip_over_a_socket(live_client: DimwatchClient) -> None:
    live_client.create_stream("sensors", latent_dims=[2, 4])

    summary = live_client.stream_array("sensors", rows(50), batch_size=10, progress=False)

    stream = live_client.get_stream("sensors")
    assert (summary.batches, summary.rows) == (5, 50)
    assert (stream.step, stream.rows_seen, stream.dim) == (5, 50, 10)
    assert live_client.selection("sensors").best_latent_dim == stream.best_latent_dim


def _push_until(url: str, token: str | None, stop: threading.Event, batches: int) -> None:
    """Push numbered batches, slowly, until the watcher has what it needs (bounded)."""
    with DimwatchClient(url, token) as client:
        for seq in range(batches):
            if stop.wait(0.05):
                return
            client.push("sensors", rows(10, seed=seq), seq=seq)


def _pusher(
    url: str, stop: threading.Event, batches: int, token: str | None = None
) -> threading.Thread:
    thread = threading.Thread(target=_push_until, args=(url, token, stop, batches))
    thread.start()
    return thread


def test_watch_yields_a_step_event_per_pushed_batch(
    live_client: DimwatchClient, live_url: str
) -> None:
    live_client.create_stream("sensors")
    stop = threading.Event()
    events = live_client.watch("sensors")
    pusher = _pusher(live_url, stop, 40)
    try:
        got = [next(events) for _ in range(6)]
    finally:
        stop.set()
        events.close()
        pusher.join(timeout=30)

    steps = [e for e in got if isinstance(e, StepEvent)]
    assert [e.step for e in steps] == list(range(steps[0].step, steps[0].step + len(steps)))
    assert all(e.selection.step == e.step for e in steps)
    changes = [e for e in got if isinstance(e, SelectionChangeEvent)]
    assert all(c.previous != c.best_latent_dim for c in changes)


def test_watch_a_missing_stream_raises_not_found(live_client: DimwatchClient) -> None:
    with pytest.raises(errors.NotFoundError):
        next(iter(live_client.watch("nope")))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_client_raises_connection_error_when_no_server_listens() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"

    with (
        DimwatchClient(url, retry=NO_RETRY) as client,
        pytest.raises(errors.ConnectionError) as info,
    ):
        client.health()

    assert str(info.value).startswith(f"cannot reach dimwatch at {url} (ConnectError: ")


def test_client_with_a_wrong_token_raises_auth_error(token_url: str) -> None:
    with (
        DimwatchClient(token_url, "wrong", retry=NO_RETRY) as client,
        pytest.raises(errors.AuthError) as info,
    ):
        client.list_streams()

    assert info.value.status_code == 401


def test_client_with_the_token_watches_events(token_url: str) -> None:
    with DimwatchClient(token_url, TOKEN, retry=NO_RETRY) as client:
        client.create_stream("sensors")
        events = client.watch("sensors")
        pusher = _pusher(token_url, threading.Event(), 3, TOKEN)
        first = next(events)
        events.close()
        pusher.join(timeout=30)

    assert isinstance(first, StepEvent)


@pytest.mark.anyio
async def test_async_watch_yields_step_events_over_a_socket(live_url: str) -> None:
    stop = threading.Event()
    async with AsyncDimwatchClient(live_url, retry=NO_RETRY) as client:
        await client.create_stream("sensors")
        events = client.watch("sensors")
        pusher = _pusher(live_url, stop, 40)
        try:
            first = await anext(events)
            second = await anext(events)
        finally:
            stop.set()
            await events.aclose()
            pusher.join(timeout=30)

    assert isinstance(first, StepEvent)
    # After step N comes either the selection change at step N or step N + 1.
    expected = first.step if isinstance(second, SelectionChangeEvent) else first.step + 1
    assert second.step == expected
