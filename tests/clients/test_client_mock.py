"""The sync and async clients over httpx.MockTransport: exact requests, retries, errors, events."""

import json
from collections.abc import Callable

import httpx
import numpy as np
import pytest

from clients import AsyncDimwatchClient, DimwatchClient, RetryPolicy, errors
from clients.models import ResetEvent, SelectionChangeEvent, StepEvent
from tests.clients import samples

FAST = RetryPolicy(attempts=3, backoff=0.0, max_delay=1.0)

Handler = Callable[[httpx.Request], httpx.Response]


class Server:
    """Answers requests from a list of canned responses (or a handler) and records them."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self, token: str | None = None) -> DimwatchClient:
        return DimwatchClient(
            "http://dw.test/", token, transport=httpx.MockTransport(self), retry=FAST
        )


def ok(body: object, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_push_sends_binary_float32_with_dim_and_seq_headers() -> None:
    server = Server(ok(samples.PUSH))

    result = server.client().push("sensors", np.array([[1.0, 2.0], [3.0, 4.0]]), seq=3)

    request = server.requests[0]
    assert (request.method, str(request.url)) == (
        "POST",
        "http://dw.test/v1/streams/sensors/batches",
    )
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert (request.headers["X-Dim"], request.headers["X-Seq"]) == ("2", "3")
    assert request.content == np.array([1, 2, 3, 4], dtype="<f4").tobytes()
    assert (result.step, result.rows, result.duplicate) == (121, 10, False)
    assert result.selection.best_latent_dim == 4


def test_client_sends_the_bearer_token() -> None:
    server = Server(ok({"status": "ok"}))

    server.client(token="s3cret").health()

    assert server.requests[0].headers["Authorization"] == "Bearer s3cret"


def test_client_sends_no_authorization_without_a_token() -> None:
    server = Server(ok({"status": "ok"}))

    server.client().health()

    assert "Authorization" not in server.requests[0].headers


def test_create_stream_posts_exact_json() -> None:
    server = Server(ok(samples.STREAM, 201))

    stream = server.client().create_stream("sensors", latent_dims=[2, 4], estimator="mc")

    assert json.loads(server.requests[0].content) == {
        "name": "sensors",
        "latent_dims": [2, 4],
        "estimator": "mc",
    }
    assert stream.name == "sensors"


def test_list_streams_reads_data() -> None:
    server = Server(ok({"data": [samples.STREAM], "count": 1}))

    streams = server.client().list_streams()

    assert [s.name for s in streams] == ["sensors"]


def test_list_streams_follows_the_pages() -> None:
    second = {**samples.STREAM, "name": "wine"}
    server = Server(
        ok({"data": [samples.STREAM], "count": 1, "next": "sensors"}),
        ok({"data": [second], "count": 1, "next": None}),
    )

    streams = server.client().list_streams()

    assert [s.name for s in streams] == ["sensors", "wine"]
    assert [str(r.url) for r in server.requests] == [
        "http://dw.test/v1/streams",
        "http://dw.test/v1/streams?after=sensors",
    ]


def test_history_sends_after_and_limit() -> None:
    server = Server(ok(samples.HISTORY))

    history = server.client().history("sensors", after=5, limit=20)

    assert (
        str(server.requests[0].url) == "http://dw.test/v1/streams/sensors/history?after=5&limit=20"
    )
    assert (history.count, history.capacity, history.data[0].models[0].batch_bic) == (1, 10000, 2.0)


def test_model_reads_arrays_with_their_shapes() -> None:
    server = Server(ok(samples.MODEL))

    params = server.client().model("sensors", 2)

    assert server.requests[0].url.path == "/v1/streams/sensors/models/2"
    assert (params.W.shape, params.V.shape, params.mu.shape) == ((3, 2), (2, 3), (3,))
    assert params.W[2, 1] == 6.0


def test_collapse_reads_flags() -> None:
    server = Server(ok(samples.COLLAPSE))

    collapse = server.client().collapse("sensors")

    assert collapse.models[0].collapsed == (False, True)


def test_transform_reads_latent_rows() -> None:
    server = Server(ok({"latent_dim": 2, "data": [[0.5, -0.5]]}))

    projection = server.client().transform("sensors", [[1.0, 2.0, 3.0]])

    assert json.loads(server.requests[0].content) == {"data": [[1.0, 2.0, 3.0]], "latent_dim": None}
    assert projection.data.tolist() == [[0.5, -0.5]]


def test_delete_stream_accepts_204() -> None:
    server = Server(httpx.Response(204))

    server.client().delete_stream("sensors")

    assert (server.requests[0].method, server.requests[0].url.path) == (
        "DELETE",
        "/v1/streams/sensors",
    )


def test_push_retries_after_429_and_then_succeeds() -> None:
    busy = ok(samples.error("rate_limited", "queue full"), 429, **{"Retry-After": "0"})
    server = Server(busy, ok(samples.PUSH))

    result = server.client().push("sensors", np.ones((1, 2)), seq=0)

    assert len(server.requests) == 2
    assert result.step == 121


def test_push_raises_rate_limited_after_the_last_attempt() -> None:
    busy = ok(samples.error("rate_limited", "queue full"), 429, **{"Retry-After": "0"})
    server = Server(busy, busy, busy)

    with pytest.raises(errors.RateLimitedError) as info:
        server.client().push("sensors", np.ones((1, 2)), seq=0)

    assert len(server.requests) == 3
    assert (info.value.message, info.value.retry_after) == ("queue full", 0.0)


def test_push_with_seq_resends_the_same_batch_after_a_lost_answer() -> None:
    duplicate = {**samples.PUSH, "duplicate": True}
    server = Server(httpx.ReadError("reset"), ok(duplicate))

    result = server.client().push("sensors", np.ones((1, 2)), seq=4)

    assert [r.headers["X-Seq"] for r in server.requests] == ["4", "4"]
    assert server.requests[0].content == server.requests[1].content
    assert result.duplicate is True


def test_push_without_seq_does_not_resend_after_a_lost_answer() -> None:
    server = Server(httpx.ReadError("reset"), ok(samples.PUSH))

    with pytest.raises(errors.ConnectionError, match="lost the connection to dimwatch"):
        server.client().push("sensors", np.ones((1, 2)))

    assert len(server.requests) == 1


def test_client_raises_connection_error_when_nothing_listens() -> None:
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    server = Server(refused, refused, refused)

    with pytest.raises(errors.ConnectionError) as info:
        server.client().health()

    assert str(info.value) == (
        "cannot reach dimwatch at http://dw.test (ConnectError: [Errno 111] Connection refused)"
    )
    assert len(server.requests) == 3


def test_push_raises_validation_error_with_the_server_message() -> None:
    server = Server(ok(samples.error("invalid_batch", "expected 10 columns, got 9"), 422))

    with pytest.raises(errors.ValidationError) as info:
        server.client().push("sensors", np.ones((1, 9)), seq=0)

    assert info.value.message == "expected 10 columns, got 9"
    assert len(server.requests) == 1


def test_push_raises_seq_gap_with_expected_seq() -> None:
    body = samples.error("seq_gap", "expected seq 2, got 5", {"expected_seq": 2})
    server = Server(ok(body, 409))

    with pytest.raises(errors.SeqGapError) as info:
        server.client().push("sensors", np.ones((1, 2)), seq=5)

    assert info.value.expected_seq == 2


def test_ensure_stream_creates_a_missing_stream() -> None:
    server = Server(
        ok(samples.error("not_found", "no stream 'sensors'"), 404), ok(samples.STREAM, 201)
    )

    stream, created = server.client().ensure_stream("sensors", seed=3)

    assert (stream.name, created) == ("sensors", True)
    assert [r.method for r in server.requests] == ["GET", "POST"]


def test_ensure_stream_returns_an_existing_stream() -> None:
    server = Server(ok(samples.STREAM))

    stream, created = server.client().ensure_stream("sensors")

    assert (stream.step, created) == (120, False)


def _push_answer(step: int, rows: int, duplicate: bool = False) -> httpx.Response:
    return ok({**samples.PUSH, "step": step, "rows": rows, "duplicate": duplicate})


def test_stream_array_numbers_batches_from_the_stream_step() -> None:
    server = Server(
        ok(samples.STREAM), _push_answer(121, 2), _push_answer(122, 2), _push_answer(123, 1)
    )

    summary = server.client().stream_array("sensors", np.ones((5, 3)), batch_size=2, progress=False)

    assert [r.headers.get("X-Seq") for r in server.requests] == [None, "120", "121", "122"]
    assert (summary.batches, summary.rows, summary.duplicates) == (3, 5, 0)
    assert summary.last is not None and summary.last.step == 123


def test_stream_array_counts_duplicates_of_a_resumed_upload() -> None:
    server = Server(_push_answer(1, 2, duplicate=True), _push_answer(2, 2))

    summary = server.client().stream_array(
        "sensors", np.ones((4, 3)), batch_size=2, progress=False, start_seq=0
    )

    assert [r.headers["X-Seq"] for r in server.requests] == ["0", "1"]
    assert (summary.batches, summary.duplicates) == (2, 1)


def test_stream_array_draws_progress_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    server = Server(_push_answer(1, 2))

    server.client().stream_array("sensors", np.ones((2, 3)), progress=True, start_seq=0)

    captured = capsys.readouterr()
    assert captured.out == ""
    assert "2/2" in captured.err


END = 'event: end\ndata: {"reason": "deleted"}\n\n'


def _events_body(end: str = END) -> bytes:
    step = json.dumps(samples.SELECTION)
    change = json.dumps({"step": 121, "previous": 6, "best_latent_dim": 4})
    text = (
        ": keep-alive\n\n"
        f"event: step\nid: 121\ndata: {step}\n\n"
        f"event: selection_change\ndata: {change}\n\n"
    )
    return (text + end).encode()


def _events_response(text: bytes | None = None) -> httpx.Response:
    return httpx.Response(
        200,
        content=_events_body() if text is None else text,
        headers={"Content-Type": "text/event-stream; charset=utf-8"},
    )


def test_watch_reconnects_with_last_event_id_until_the_stream_is_deleted() -> None:
    step = json.dumps({**samples.SELECTION, "step": 122})
    server = Server(
        _events_response(_events_body(end="")),  # the connection closes without an end
        httpx.ReadError("connection reset"),
        _events_response(f"event: step\nid: 122\ndata: {step}\n\n{END}".encode()),
    )

    events = list(server.client().watch("sensors"))

    assert [r.headers.get("Last-Event-ID") for r in server.requests] == [None, "121", "121"]
    assert [type(e).__name__ for e in events] == [
        "StepEvent",
        "SelectionChangeEvent",
        "StepEvent",
    ]
    assert isinstance(events[2], StepEvent) and events[2].step == 122


def test_watch_gives_up_after_the_attempts_in_a_row() -> None:
    server = Server(*[httpx.ConnectError("refused")] * 3)

    with pytest.raises(errors.ConnectionError, match="cannot reach dimwatch"):
        list(server.client().watch("sensors"))

    assert len(server.requests) == 3


def test_watch_yields_reset_when_the_server_lost_events() -> None:
    reset = {
        "reason": "too_old",
        "last_event_id": "3",
        "step": 400,
        "replayed_from": 144,
        "message": "cannot resume after Last-Event-ID '3'",
    }
    server = Server(_events_response(f"event: reset\ndata: {json.dumps(reset)}\n\n{END}".encode()))

    (event,) = list(server.client().watch("sensors"))

    assert event == ResetEvent(
        reason="too_old",
        last_event_id="3",
        step=400,
        replayed_from=144,
        message="cannot resume after Last-Event-ID '3'",
    )


def test_watch_yields_typed_events() -> None:
    server = Server(_events_response())

    events = list(server.client().watch("sensors"))

    assert server.requests[0].headers["Accept"] == "text/event-stream"
    assert isinstance(events[0], StepEvent) and events[0].step == 121
    assert events[1] == SelectionChangeEvent(step=121, previous=6, best_latent_dim=4)


def test_watch_raises_not_found_for_a_missing_stream() -> None:
    server = Server(ok(samples.error("not_found", "no stream 'x'"), 404))

    with pytest.raises(errors.NotFoundError, match="no stream 'x'"):
        list(server.client().watch("x"))


def test_watch_raises_protocol_error_on_json() -> None:
    server = Server(ok({"status": "ok"}))

    with pytest.raises(errors.ProtocolError, match="expected a text/event-stream answer"):
        list(server.client().watch("sensors"))


def _async_client(server: Server) -> AsyncDimwatchClient:
    async def handler(request: httpx.Request) -> httpx.Response:
        return server(request)

    return AsyncDimwatchClient("http://dw.test", transport=httpx.MockTransport(handler), retry=FAST)


@pytest.mark.anyio
async def test_async_push_retries_after_429() -> None:
    busy = ok(samples.error("rate_limited", "queue full"), 429, **{"Retry-After": "0"})
    server = Server(busy, ok(samples.PUSH))

    async with _async_client(server) as client:
        result = await client.push("sensors", np.ones((1, 2)), seq=0)

    assert [r.headers["X-Seq"] for r in server.requests] == ["0", "0"]
    assert result.selection.step == 121


@pytest.mark.anyio
async def test_async_get_stream_raises_auth_error() -> None:
    server = Server(ok(samples.error("unauthorized", "missing or wrong bearer token"), 401))

    async with _async_client(server) as client:
        with pytest.raises(errors.AuthError, match="missing or wrong bearer token"):
            await client.get_stream("sensors")


@pytest.mark.anyio
async def test_async_watch_yields_typed_events() -> None:
    server = Server(_events_response())

    async with _async_client(server) as client:
        events = [event async for event in client.watch("sensors")]

    assert [type(e).__name__ for e in events] == ["StepEvent", "SelectionChangeEvent"]


@pytest.mark.anyio
async def test_async_stream_array_pushes_every_batch() -> None:
    server = Server(_push_answer(1, 2), _push_answer(2, 2))

    async with _async_client(server) as client:
        summary = await client.stream_array(
            "sensors", np.ones((4, 3)), batch_size=2, progress=False, start_seq=0
        )

    assert (summary.batches, summary.rows) == (2, 4)


def test_create_stream_reports_a_read_timeout_without_resending() -> None:
    server = Server(httpx.ReadTimeout("timed out"), ok(samples.STREAM, 201))

    with pytest.raises(errors.ConnectionError) as info:
        server.client().create_stream("sensors")

    assert str(info.value) == (
        "dimwatch at http://dw.test did not answer in time (ReadTimeout: timed out)"
    )
    assert len(server.requests) == 1


def test_get_stream_resends_after_a_read_timeout() -> None:
    server = Server(httpx.ReadTimeout("timed out"), ok(samples.STREAM))

    assert server.client().get_stream("sensors").name == "sensors"
    assert len(server.requests) == 2
