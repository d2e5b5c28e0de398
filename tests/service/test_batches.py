"""Batches: the three body formats, seq semantics, every kind of bad input, the limits."""

import io
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
import numpy as np

from service.routes.batches import INLINE_DECODE_BINARY_BYTES, INLINE_DECODE_BYTES
from tests.service.helpers import Server, batch, push

URL = "/v1/streams/s/batches"


def _stream(client: httpx.Client, **config: object) -> None:
    assert client.post("/v1/streams", json={"name": "s", **config}).status_code == 201


def _npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x)
    return buf.getvalue()


def _error(response: httpx.Response, status: int, code: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": code, "message": message, "details": None}


def test_push_json_applies_one_step(client: httpx.Client) -> None:
    _stream(client)
    response = client.post(URL, json={"data": batch(rows=4).tolist()})
    assert response.status_code == 200
    body = response.json()
    assert (body["step"], body["rows"], body["duplicate"]) == (1, 4, False)
    assert body["selection"]["step"] == 1
    assert body["selection"]["rows_seen"] == 4
    assert [m["latent_dim"] for m in body["selection"]["models"]] == [2, 4, 6]


def test_push_binary_and_npy_match_json(client: httpx.Client) -> None:
    x = batch(rows=6)
    for name in ("j", "b", "n"):
        client.post("/v1/streams", json={"name": name})
    client.post("/v1/streams/j/batches", json={"data": x.tolist()})
    push(client, "b", x)
    client.post(
        "/v1/streams/n/batches", content=_npy(x), headers={"Content-Type": "application/x-npy"}
    )
    models = [client.get(f"/v1/streams/{n}/models/4").json() for n in ("j", "b", "n")]
    assert models[0] == models[1] == models[2]


def test_push_large_bodies_decode_off_the_loop_alike(client: httpx.Client) -> None:
    x = batch(rows=5000, dim=64)  # 1.28 MB as float32, more as JSON: both in the thread pool
    assert x.nbytes > max(INLINE_DECODE_BINARY_BYTES, INLINE_DECODE_BYTES)
    for name in ("j", "b"):
        client.post("/v1/streams", json={"name": name})
    answers = [
        client.post("/v1/streams/j/batches", json={"data": x.tolist()}).json(),
        push(client, "b", x).json(),
    ]
    assert [(a["step"], a["rows"]) for a in answers] == [(1, 5000), (1, 5000)]
    models = [client.get(f"/v1/streams/{n}/models/4").json() for n in ("j", "b")]
    assert models[0] == models[1]


def test_push_npy_float64_accepted(client: httpx.Client) -> None:
    _stream(client)
    x = batch(rows=3).astype(np.float64)
    response = client.post(
        URL, content=_npy(x), headers={"Content-Type": "application/x-npy", "X-Seq": "0"}
    )
    assert response.json()["step"] == 1


def test_push_first_batch_fixes_dim(client: httpx.Client) -> None:
    _stream(client)
    push(client, "s", batch(dim=7))
    assert client.get("/v1/streams/s").json()["dim"] == 7
    _error(push(client, "s", batch(dim=8)), 422, "invalid_batch", "expected 7 columns, got 8")


def test_push_dim_given_at_creation_checked(client: httpx.Client) -> None:
    _stream(client, dim=9)
    _error(push(client, "s", batch(dim=8)), 422, "invalid_batch", "expected 9 columns, got 8")
    assert client.get("/v1/streams/s").json()["step"] == 0


def test_push_dim_too_small_for_latents_rejected(client: httpx.Client) -> None:
    _stream(client)
    response = push(client, "s", batch(dim=5))
    message = (
        "latent_dims: expected every H < D = 5, got [6] >= 5; use latent_dims below 5 "
        "(e.g. [1, 2, 3]) or rows of more than 6 columns"
    )
    _error(response, 422, "invalid_config", message)
    assert client.get("/v1/streams/s").json()["dim"] is None


def test_push_seq_in_order_applies(client: httpx.Client) -> None:
    _stream(client)
    steps = [push(client, "s", batch(seed=i), seq=i).json()["step"] for i in range(3)]
    assert steps == [1, 2, 3]


def test_push_seq_repeated_is_duplicate(client: httpx.Client) -> None:
    _stream(client)
    for i in range(3):
        push(client, "s", batch(rows=2 + i, seed=i), seq=i)
    before = client.get("/v1/streams/s/models/2").json()
    # the same numbers as JSON: the batch is compared by its float32 values, whatever the body
    body = client.post(URL, json={"data": batch(rows=3, seed=1).tolist(), "seq": 1}).json()
    assert (body["step"], body["rows"], body["duplicate"]) == (3, 3, True)
    assert body["selection"] == client.get("/v1/streams/s/selection").json()
    assert client.get("/v1/streams/s/models/2").json() == before


def test_push_seq_reused_with_other_values_conflicts(client: httpx.Client) -> None:
    _stream(client)
    for i in range(3):
        push(client, "s", batch(seed=i), seq=i)
    before = client.get("/v1/streams/s/models/2").json()
    response = push(client, "s", batch(seed=7), seq=1)
    assert response.status_code == 409
    assert response.json() == {
        "error": "seq_reused",
        "message": "seq 1 of stream 's' was applied with another batch (10 x 8, rows x columns); "
        "this one has other values. A resend must repeat the batch exactly; a new batch takes "
        "the next seq (the stream's step) or none",
        "details": {"seq": 1, "applied_shape": [10, 8], "given_shape": [10, 8]},
    }
    assert client.get("/v1/streams/s/models/2").json() == before


def test_push_seq_reused_with_other_rows_names_both_shapes(client: httpx.Client) -> None:
    _stream(client)
    push(client, "s", batch(rows=10), seq=0)
    response = push(client, "s", batch(rows=4), seq=0)
    assert (response.status_code, response.json()["details"]) == (
        409,
        {"seq": 0, "applied_shape": [10, 8], "given_shape": [4, 8]},
    )
    assert "this one has shape 4 x 8" in response.json()["message"]


def test_push_seq_resent_with_other_width_fails_the_width_check_first(
    client: httpx.Client,
) -> None:
    _stream(client)
    push(client, "s", batch(dim=8), seq=0)
    push(client, "s", batch(dim=8, seed=1), seq=1)
    _error(
        push(client, "s", batch(dim=3), seq=0), 422, "invalid_batch", "expected 8 columns, got 3"
    )


def test_push_seq_gap_conflicts(client: httpx.Client) -> None:
    _stream(client)
    push(client, "s", batch(), seq=0)
    response = push(client, "s", batch(), seq=2)
    assert response.status_code == 409
    assert response.json() == {
        "error": "seq_gap",
        "message": "expected seq 1 (the next batch of 's'), got 2",
        "details": {"expected_seq": 1},
    }
    assert client.get("/v1/streams/s").json()["step"] == 1


def test_push_without_seq_counts_as_next(client: httpx.Client) -> None:
    _stream(client)
    push(client, "s", batch())
    push(client, "s", batch())
    assert push(client, "s", batch(), seq=1).json()["duplicate"] is True
    assert push(client, "s", batch(), seq=2).json()["step"] == 3


def test_push_unknown_stream_is_404(client: httpx.Client) -> None:
    _error(push(client, "nope", batch()), 404, "not_found", "stream 'nope' not found")


def test_push_bad_json_rejected(client: httpx.Client) -> None:
    _stream(client)
    cases: dict[str, tuple[object, str]] = {
        "empty": ({"data": []}, "data: List should have at least 1 item after validation, not 0"),
        "ragged": (
            {"data": [[1.0, 2.0, 3.0], [1.0, 2.0]]},
            "ragged rows: row 1 has 2 values, expected 3 like row 0",
        ),
        "no columns": (
            {"data": [[]]},
            "data.0: List should have at least 1 item after validation, not 0",
        ),
        "overflow": (
            {"data": [[1.0, 0.0, 1e39]]},
            "data.0.2: Input should be less than or equal to 3.4028235e+38, got a number 1e+39",
        ),
    }
    for label, (body, message) in cases.items():
        response = client.post(URL, json=body)
        assert response.status_code == 422, label
        assert response.json()["error"] == "invalid_batch", label
        assert response.json()["message"] == message, label
    assert client.get("/v1/streams/s").json()["step"] == 0


def test_push_nan_rejected(client: httpx.Client) -> None:
    _stream(client)
    for token in ("NaN", "Infinity", "-Infinity"):
        content = f'{{"data": [[1, 2, 3], [1, {token}, 3]]}}'
        response = client.post(URL, content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 422
        assert response.json() == {
            "error": "invalid_batch",
            "message": "data.1.1: Input should be a finite number",
            "details": [
                {
                    "loc": ["data", 1, 1],
                    "msg": "Input should be a finite number",
                    "type": "finite_number",
                }
            ],
        }
    x = batch()
    x[3, 2] = np.inf
    _error(
        push(client, "s", x),
        422,
        "invalid_batch",
        "expected finite numbers, got NaN or Inf in row 3",
    )
    assert client.get("/v1/streams/s").json()["step"] == 0


def test_push_non_numbers_rejected(client: httpx.Client) -> None:
    _stream(client)
    for data in ([["1.0", 2.0]], [[True, 2.0]], [[None, 1.0]], [1.0, 2.0], "x"):
        response = client.post(URL, json={"data": data})
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_batch"
    for content in (b"{", b"[]", b'{"data": [[1, 2]], "extra": 1}', b'{"seq": 0}'):
        response = client.post(URL, content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, content
        assert response.json()["error"] == "invalid_batch"


def test_push_wrong_content_type_rejected(client: httpx.Client) -> None:
    _stream(client)
    message = (
        "expected Content-Type application/json, application/octet-stream, application/x-npy, got "
    )
    _error(
        client.post(URL, content=b"1,2", headers={"Content-Type": "text/csv"}),
        415,
        "unsupported_media_type",
        message + "text/csv",
    )
    _error(client.post(URL, content=b"1,2"), 415, "unsupported_media_type", message + "none")


def test_push_bad_x_dim_rejected(client: httpx.Client) -> None:
    _stream(client)
    raw = batch(rows=2, dim=8).tobytes()
    for value in (None, "", "abc", "0", "-8", "8.0", "1e3", "9" * 30):
        headers = {"Content-Type": "application/octet-stream"}
        if value is not None:
            headers["X-Dim"] = value
        response = client.post(URL, content=raw, headers=headers)
        _error(
            response,
            422,
            "invalid_batch",
            f"X-Dim: expected the number of columns as a positive integer, got {value!r}",
        )
    response = client.post(
        URL, content=raw, headers={"Content-Type": "application/octet-stream", "X-Dim": "3"}
    )
    _error(
        response,
        422,
        "invalid_batch",
        "expected a multiple of 4 * X-Dim = 12 bytes of float32, got 64 bytes",
    )


def test_push_bad_x_seq_rejected(client: httpx.Client) -> None:
    _stream(client)
    headers = {"Content-Type": "application/octet-stream", "X-Dim": "8", "X-Seq": "-1"}
    response = client.post(URL, content=batch().tobytes(), headers=headers)
    _error(response, 422, "invalid_batch", "X-Seq: expected a non-negative integer, got '-1'")


def test_push_bad_npy_rejected(client: httpx.Client) -> None:
    _stream(client)
    headers = {"Content-Type": "application/x-npy"}
    for content in (
        b"",
        b"not npy",
        _npy(batch())[:-4],
        _npy(np.zeros(3, np.float32)),
        _npy(np.zeros((2, 3), bool)),
        _npy(np.array([["a"]])),
    ):
        response = client.post(URL, content=content, headers=headers)
        assert response.status_code == 422, content[:20]
        assert response.json()["error"] == "invalid_batch"
    assert client.get("/v1/streams/s").json()["step"] == 0


def test_push_over_row_limit_rejected(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    with make_server(max_rows_per_batch=5) as server:
        _stream(server.client)
        _error(
            push(server.client, "s", batch(rows=6)),
            413,
            "limit_exceeded",
            "batch has 6 rows; the limit max_rows_per_batch is 5",
        )
        assert push(server.client, "s", batch(rows=5)).status_code == 200


def test_push_over_dim_limit_rejected(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    with make_server(max_dim=8) as server:
        _stream(server.client)
        _error(
            push(server.client, "s", batch(dim=9)),
            422,
            "limit_exceeded",
            "X-Dim is 9; the limit max_dim is 8",
        )
        response = server.client.post(URL, json={"data": batch(dim=9).tolist()})
        _error(response, 422, "limit_exceeded", "batch has 9 columns; the limit max_dim is 8")


def test_push_over_body_limit_rejected(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    with make_server(max_body_bytes=2048) as server:
        _stream(server.client)
        message = "request body over 2048 bytes; the limit max_body_bytes is 2048"
        _error(push(server.client, "s", batch(rows=65)), 413, "payload_too_large", message)

        def chunks() -> object:
            yield batch(rows=64).tobytes()
            yield batch(rows=1).tobytes()

        headers = {"Content-Type": "application/octet-stream", "X-Dim": "8"}
        response = server.client.post(URL, content=chunks(), headers=headers)  # type: ignore[arg-type]
        _error(response, 413, "payload_too_large", message)
        assert server.client.get("/v1/streams/s").json()["step"] == 0


def test_push_overflowing_batch_refused_and_stream_unchanged(client: httpx.Client) -> None:
    # Adam trains in float32 (the subspace rule squares in float64 and takes such a batch)
    _stream(client, latent_dims=[1, 2], optimizer="adam")
    for seq in range(3):
        assert push(client, "s", batch(seed=seq), seq=seq).status_code == 200
    before = [client.get(f"/v1/streams/s{p}").json() for p in ("/selection", "/models/2")]
    x = batch(seed=3)
    x[4, 1] = 1e20  # finite in float32; its square is not
    _error(
        push(client, "s", x, seq=3),
        422,
        "invalid_batch",
        "this batch would make the model non-finite (largest |value| 1e+20: its squares overflow "
        "the arithmetic, or the step size is too large); nothing was applied, rescale the data "
        "(or lower learning_rate)",
    )
    after = [client.get(f"/v1/streams/s{p}").json() for p in ("/selection", "/models/2")]
    assert after == before
    assert push(client, "s", batch(seed=3), seq=3).json()["step"] == 4  # the stream goes on


def test_create_learning_rate_beyond_one_rejected(client: httpx.Client) -> None:
    response = client.post("/v1/streams", json={"name": "s", "learning_rate": 1000.0})
    assert response.status_code == 422
    assert response.json()["message"].startswith("body.learning_rate: Input should be less than")
