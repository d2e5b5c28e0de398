"""float16 and bfloat16 binary bodies (X-Dtype): the same rows train the same model as float32,
and they are validated the same way."""

import io
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
import numpy as np
import pytest

from clients import DimwatchClient
from tests.service.helpers import Server, batch

URL = "/v1/streams/s/batches"


def _bfloat16(x: np.ndarray) -> bytes:
    """The top 16 bits of each float32 (exact for values that bfloat16 holds)."""
    return (np.ascontiguousarray(x, "<f4").view("<u4") >> 16).astype("<u2").tobytes()


def _narrow(x: np.ndarray, dtype: str) -> bytes:
    return x.astype("<f2").tobytes() if dtype == "float16" else _bfloat16(x)


def _exact_rows(rows: int = 10, dim: int = 8) -> np.ndarray:
    """float32 rows that float16 and bfloat16 both hold exactly (multiples of 1/8 below 16)."""
    return np.round(batch(rows, dim) * 8) / 8


def _post(client: httpx.Client, body: bytes, **headers: str) -> httpx.Response:
    sent = {"Content-Type": "application/octet-stream", "X-Dim": "8", **headers}
    return client.post(URL, content=body, headers=sent)


def test_narrow_bodies_train_the_same_model_as_float32(client: httpx.Client) -> None:
    x = _exact_rows()
    for name in ("f32", "f16", "bf16"):
        assert client.post("/v1/streams", json={"name": name}).status_code == 201
    bodies = {"f32": ("float32", x.tobytes()), "f16": ("float16", _narrow(x, "float16")),
              "bf16": ("bfloat16", _narrow(x, "bfloat16"))}  # fmt: skip
    for name, (dtype, body) in bodies.items():
        headers = {"Content-Type": "application/octet-stream", "X-Dim": "8", "X-Dtype": dtype}
        response = client.post(f"/v1/streams/{name}/batches", content=body, headers=headers)
        assert response.status_code == 200, response.text

    models = [client.get(f"/v1/streams/{n}/models/4").json() for n in bodies]
    assert models[0] == models[1] == models[2]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_narrow_non_finite_rows_refused_like_float32(
    client: httpx.Client, dtype: str, bad: float
) -> None:
    client.post("/v1/streams", json={"name": "s"})
    x = _exact_rows()
    x[6, 1] = bad

    response = _post(client, _narrow(x, dtype), **{"X-Dtype": dtype})

    assert response.status_code == 422
    assert response.json() == {
        "error": "invalid_batch",
        "message": "expected finite numbers, got NaN or Inf in row 6",
        "details": None,
    }
    assert client.get("/v1/streams/s").json()["step"] == 0


def test_narrow_body_of_a_wrong_length_refused(client: httpx.Client) -> None:
    client.post("/v1/streams", json={"name": "s"})

    response = _post(client, b"\0" * 17, **{"X-Dtype": "float16"})

    assert response.status_code == 422
    assert response.json()["message"] == (
        "expected a multiple of 2 * X-Dim = 16 bytes of float16, got 17 bytes"
    )


def test_unknown_x_dtype_refused(client: httpx.Client) -> None:
    client.post("/v1/streams", json={"name": "s"})

    response = _post(client, _exact_rows().tobytes(), **{"X-Dtype": "float64"})

    assert response.status_code == 422
    assert response.json()["message"] == (
        "X-Dtype: expected one of float32, float16, bfloat16, got 'float64'"
    )
    assert client.get("/v1/streams/s").json()["step"] == 0


def test_npy_float16_accepted(client: httpx.Client) -> None:
    client.post("/v1/streams", json={"name": "s"})
    buffer = io.BytesIO()
    np.save(buffer, _exact_rows().astype(np.float16))

    response = client.post(
        URL, content=buffer.getvalue(), headers={"Content-Type": "application/x-npy"}
    )

    assert response.status_code == 200, response.text


def test_schema_declares_x_dtype(client: httpx.Client) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/streams/{name}/batches"]["post"]

    header = next(p for p in operation["parameters"] if p["name"] == "X-Dtype")
    assert header["schema"] == {
        "type": "string",
        "enum": ["float32", "float16", "bfloat16"],
        "default": "float32",
    }


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_client_pushes_narrow_rows_to_the_same_model(server: Server, dtype: str) -> None:
    x = _exact_rows(rows=40)
    with DimwatchClient(server.url) as client:
        client.create_stream("wide")
        client.create_stream("narrow")
        client.push("wide", x)
        client.push("narrow", x, dtype=dtype)

        assert client.model("narrow", 4).W.tolist() == client.model("wide", 4).W.tolist()


def test_a_4096_dimensional_stream_learns_bfloat16_embeddings(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    # DIMWATCH_MAX_DIM=4096 (docs/embeddings.md): the embeddings of large models, 2 bytes a number
    with make_server(max_dim=4096) as server:
        _learn_wide(server.client)


def _learn_wide(client: httpx.Client) -> None:
    created = client.post("/v1/streams", json={"name": "wide", "latent_dims": [8, 32, 128]})
    assert created.status_code == 201, created.text
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.standard_normal((4096, 16)))[0]
    for seq in range(2):
        x = (rng.standard_normal((64, 16)) * 4) @ basis.T + rng.standard_normal((64, 4096))
        headers = {"Content-Type": "application/octet-stream", "X-Dim": "4096",
                   "X-Dtype": "bfloat16", "X-Seq": str(seq)}  # fmt: skip
        response = client.post("/v1/streams/wide/batches", content=_bfloat16(x), headers=headers)
        assert response.status_code == 200, response.text

    selection = response.json()["selection"]
    assert (selection["step"], selection["rows_seen"]) == (2, 128)
    assert [m["latent_dim"] for m in selection["models"]] == [8, 32, 128]
    assert all(1 < m["effective_rank"] < 4096 for m in selection["models"])
    over = client.post(URL.replace("/s/", "/wide/"), content=b"", headers={
        "Content-Type": "application/octet-stream", "X-Dim": "4097"})  # fmt: skip
    assert over.json()["message"] == "X-Dim is 4097; the limit max_dim is 4096"
