"""Request building, response parsing and retry decisions, without any I/O."""

from datetime import UTC, datetime

import httpx
import numpy as np
import pytest

from clients import _requests as api
from clients import errors
from clients.models import Stream
from tests.clients import samples


def _response(status: int, body: object = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_encode_batch_writes_little_endian_float32_rows() -> None:
    content, dim, dtype = api.encode_batch(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))

    assert (dim, dtype) == (3, "float32")
    assert content == np.arange(1, 7, dtype="<f4").tobytes()


def test_encode_batch_sends_a_float16_array_as_float16() -> None:
    content, dim, dtype = api.encode_batch(np.array([[1.5, -2.0]], dtype=np.float16))

    assert (dim, dtype) == (2, "float16")
    assert content == np.array([1.5, -2.0], dtype="<f2").tobytes()


def test_encode_batch_rounds_to_the_nearest_bfloat16() -> None:
    # 1 + 2^-8 is halfway between bfloat16 neighbours 1 and 1 + 2^-7: ties go to even (1);
    # 1 + 3 * 2^-9 is nearer 1 + 2^-7; inf stays inf (the server refuses it, not a wrapped 0).
    values = np.array([[1 + 2**-8, 1 + 3 * 2**-9, np.inf, -3.0]], dtype=np.float32)
    content, _, dtype = api.encode_batch(values, "bfloat16")

    widened = (np.frombuffer(content, "<u2").astype("<u4") << 16).view("<f4")
    assert dtype == "bfloat16"
    assert widened.tolist() == [1.0, 1 + 2**-7, np.inf, -3.0]


def test_push_names_a_narrow_dtype_in_x_dtype_only() -> None:
    narrow = api.push("s", np.ones((2, 3)), dtype="bfloat16")
    plain = api.push("s", np.ones((2, 3)))

    assert narrow.headers["X-Dtype"] == "bfloat16"
    assert len(narrow.content or b"") == 2 * 2 * 3
    assert "X-Dtype" not in plain.headers


def test_encode_batch_rejects_a_1d_array() -> None:
    with pytest.raises(errors.InputError) as info:
        api.encode_batch(np.zeros(5))

    assert str(info.value) == "batch: expected a 2-D array (rows x columns), got shape (5,)"


def test_encode_batch_rejects_text() -> None:
    with pytest.raises(errors.InputError, match="batch: expected numbers"):
        api.encode_batch([["a", "b"]])


def test_push_without_seq_is_not_idempotent() -> None:
    call = api.push("s", np.ones((2, 3)))

    assert (call.method, call.path, call.idempotent) == ("POST", "/v1/streams/s/batches", False)
    assert call.headers == {"Content-Type": "application/octet-stream", "X-Dim": "3"}


def test_push_with_seq_sends_x_seq() -> None:
    call = api.push("s", np.ones((2, 3)), seq=7)

    assert call.idempotent is True
    assert call.headers["X-Seq"] == "7"


def test_stream_path_quotes_a_name_with_a_slash() -> None:
    assert api.get_stream("a/b").path == "/v1/streams/a%2Fb"


def test_batches_cuts_rows_and_numbers_them_from_start_seq() -> None:
    parts = list(api.batches(np.arange(10.0).reshape(5, 2), 2, start_seq=3))

    assert [seq for seq, _ in parts] == [3, 4, 5]
    assert [batch.shape for _, batch in parts] == [(2, 2), (2, 2), (1, 2)]


def test_batches_rejects_batch_size_zero() -> None:
    with pytest.raises(errors.InputError, match="batch_size: expected >= 1, got 0"):
        list(api.batches(np.ones((2, 2)), 0, start_seq=0))


def test_create_stream_sends_only_given_settings() -> None:
    call = api.create_stream("s", {"latent_dims": [1, 3], "seed": 4})

    assert call.json == {"name": "s", "latent_dims": [1, 3], "seed": 4}
    assert call.idempotent is False


def test_transform_sends_rows_as_json_floats() -> None:
    call = api.transform("s", [[0.1, 0.2]], latent_dim=None)

    assert call.json == {"data": [[0.1, 0.2]], "latent_dim": None}


def test_finish_parses_a_stream() -> None:
    stream = api.finish(api.get_stream("sensors"), _response(200, samples.STREAM))

    assert stream == Stream(
        name="sensors",
        latent_dims=(2, 4, 6),
        learning_rate=0.002,
        estimator="analytic",
        mc_samples=100,
        bic_n=10,
        collapse_threshold=1.0,
        seed=0,
        dim=10,
        device="cpu",
        step=120,
        rows_seen=1200,
        best_latent_dim=4,
        created_at=datetime(2026, 11, 25, 15, 0, tzinfo=UTC),
        optimizer="subspace",
        standardize=False,
        adaptive=True,
        boost_learning_rate=0.05,
        switch_margin=5.0,
        converged=False,
    )


def test_finish_raises_protocol_error_on_a_missing_field() -> None:
    body = {k: v for k, v in samples.STREAM.items() if k != "dim"}

    with pytest.raises(errors.ProtocolError) as info:
        api.finish(api.get_stream("sensors"), _response(200, body))

    assert str(info.value) == (
        "unexpected answer to GET /v1/streams/sensors (status 200): KeyError: 'dim'"
    )


def test_finish_raises_protocol_error_on_html() -> None:
    response = httpx.Response(200, text="<html>hello</html>")

    with pytest.raises(errors.ProtocolError, match="unexpected answer to GET /healthz"):
        api.finish(api.health(), response)


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (422, "invalid_batch", errors.ValidationError),
        (401, "unauthorized", errors.AuthError),
        (403, "forbidden", errors.AuthError),
        (404, "not_found", errors.NotFoundError),
        (409, "stream_exists", errors.ConflictError),
        (413, "payload_too_large", errors.PayloadTooLargeError),
        (415, "unsupported_media_type", errors.HTTPStatusError),
        (500, "internal", errors.ServerError),
        (503, "unavailable", errors.ServerError),
    ],
    ids=lambda v: str(v) if not isinstance(v, type) else v.__name__,
)
def test_error_from_response_maps_status_to_class(
    status: int, code: str, cls: type[errors.HTTPStatusError]
) -> None:
    exc = api.error_from_response(_response(status, samples.error(code, "what was wrong")))

    assert type(exc) is cls
    assert (exc.status_code, exc.code, exc.message) == (status, code, "what was wrong")
    assert str(exc) == f"{status} {code}: what was wrong"


def test_error_from_response_reads_expected_seq() -> None:
    body = samples.error("seq_gap", "expected seq 7, got 9", {"expected_seq": 7})

    exc = api.error_from_response(_response(409, body))

    assert isinstance(exc, errors.SeqGapError)
    assert exc.expected_seq == 7


def test_error_from_response_reads_retry_after() -> None:
    response = _response(429, samples.error("rate_limited", "queue full"), **{"Retry-After": "2"})

    exc = api.error_from_response(response)

    assert isinstance(exc, errors.RateLimitedError)
    assert exc.retry_after == 2.0


def test_error_from_response_keeps_a_body_outside_the_contract() -> None:
    exc = api.error_from_response(httpx.Response(502, text="Bad gateway\n"))

    assert type(exc) is errors.ServerError
    assert (exc.code, exc.message) == ("http_502", "Bad gateway")


def _delay(
    attempt: int,
    *,
    idempotent: bool = True,
    response: httpx.Response | None = None,
    error: httpx.TransportError | None = None,
    elapsed: float = 0.0,
) -> float | None:
    policy = api.RetryPolicy(attempts=4, backoff=0.5, max_delay=3.0, wait_ready=20.0)
    return api.retry_delay(
        policy, attempt, idempotent=idempotent, response=response, error=error, elapsed=elapsed
    )


def test_retry_delay_honours_retry_after() -> None:
    assert _delay(1, response=_response(429, None, **{"Retry-After": "2.5"})) == 2.5


def test_retry_delay_doubles_backoff_without_retry_after() -> None:
    delays = [_delay(a, response=_response(429)) for a in (1, 2, 3)]

    assert delays == [0.5, 1.0, 2.0]


def test_retry_delay_gives_up_after_the_last_attempt() -> None:
    assert _delay(4, response=_response(429)) is None


def test_retry_delay_gives_up_on_a_retry_after_over_max_delay() -> None:
    assert _delay(1, response=_response(429, None, **{"Retry-After": "30"})) is None


def test_retry_delay_honours_retry_after_of_a_503() -> None:
    assert _delay(1, response=_response(503, None, **{"Retry-After": "1"})) == 1.0


def test_retry_delay_resends_a_503_past_the_attempts_within_wait_ready() -> None:
    # A create answered 503 not_ready on a busy machine: resent until wait_ready, not attempts.
    not_ready = _response(503, None, **{"Retry-After": "1"})
    assert _delay(10, idempotent=False, response=not_ready, elapsed=18.5) == 1.0
    assert _delay(11, idempotent=False, response=not_ready, elapsed=19.5) is None


def test_retry_delay_caps_a_503_retry_after_at_max_delay() -> None:
    # A restoring server asks for 5 s; the policy waits at most 3 s and asks again (a watch
    # with a short max_delay used to give up here while the server restarted).
    assert _delay(1, response=_response(503, None, **{"Retry-After": "5"})) == 3.0


def test_retry_delay_does_not_retry_a_503_without_retry_after() -> None:
    assert _delay(1, response=_response(503)) is None


def test_retry_delay_never_retries_a_500() -> None:
    assert _delay(1, response=_response(500, None, **{"Retry-After": "1"})) is None


def test_retry_delay_resends_a_request_that_never_connected() -> None:
    assert _delay(1, idempotent=False, error=httpx.ConnectError("refused")) == 0.5


def test_retry_delay_does_not_resend_a_non_idempotent_request_after_a_read_error() -> None:
    assert _delay(1, idempotent=False, error=httpx.ReadError("reset")) is None


def test_retry_delay_resends_an_idempotent_request_after_a_read_error() -> None:
    assert _delay(2, idempotent=True, error=httpx.ReadError("reset")) == 1.0


def test_connection_error_names_the_url() -> None:
    exc = api.connection_error("http://h:1", httpx.ConnectError("refused"))

    assert str(exc) == "cannot reach dimwatch at http://h:1 (ConnectError: refused)"
    assert exc.url == "http://h:1"
