"""The API contract: strict JSON types, bodies that are not UTF-8, the OpenAPI schema declaring
what the server enforces, the security scheme, the docs behind the token."""

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import numpy as np

from tests.service.helpers import Server, batch, push

TOKEN = {"Authorization": "Bearer alpha"}


def _trained(client: httpx.Client) -> None:
    """Stream s of D = 3 with one batch applied."""
    client.post("/v1/streams", json={"name": "s", "latent_dims": [1, 2]})
    assert push(client, "s", batch(dim=3), seq=0).status_code == 200


def test_create_stream_wrong_json_types_refused_not_coerced(client: httpx.Client) -> None:
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "string seed": (
            {"seed": "7"},
            'body.seed: Input should be a valid integer, got a string "7"',
        ),
        "float seed": (
            {"seed": 7.0},
            "body.seed: Input should be a valid integer, got a number 7.0",
        ),
        "integer bool": (
            {"adaptive": 0},
            "body.adaptive: Input should be a valid boolean, got an integer 0",
        ),
        "string size": (
            {"latent_dims": ["1", 2.0]},
            'body.latent_dims.0: Input should be a valid integer, got a string "1"',
        ),
        "bool dim": (
            {"dim": True},
            "body.dim: Input should be a valid integer, got a boolean true",
        ),
        "string rate": (
            {"learning_rate": "0.1"},
            'body.learning_rate: Input should be a valid number, got a string "0.1"',
        ),
    }
    for label, (fields, message) in cases.items():
        response = client.post("/v1/streams", json={"name": "s", **fields})
        assert response.status_code == 422, label
        body = response.json()
        assert (body["error"], body["message"]) == ("invalid_request", message), label
    assert client.get("/v1/streams").json()["count"] == 0


def test_create_stream_integer_accepted_as_number(client: httpx.Client) -> None:
    response = client.post("/v1/streams", json={"name": "s", "learning_rate": 1})
    assert (response.status_code, response.json()["learning_rate"]) == (201, 1.0)


def test_batch_and_transform_wrong_json_types_refused(client: httpx.Client) -> None:
    client.post("/v1/streams", json={"name": "s", "latent_dims": [1, 2]})
    url = "/v1/streams/s/batches"
    for seq in (True, "0", 0.0):
        response = client.post(url, json={"data": [[1.0, 2.0, 3.0]], "seq": seq})
        assert response.status_code == 422, seq
        assert response.json()["error"] == "invalid_batch"
        assert response.json()["message"].startswith("seq: Input should be a valid integer, got")
    assert push(client, "s", batch(dim=3), seq=0).status_code == 200
    for latent_dim in (True, "2", 2.0):
        body = {"data": [[1.0, 2.0, 3.0]], "latent_dim": latent_dim}
        response = client.post("/v1/streams/s/transform", json=body)
        assert response.status_code == 422, latent_dim
        assert response.json()["message"].startswith("body.latent_dim: Input should be a valid")
    assert client.get("/v1/streams/s").json()["step"] == 1


def test_non_utf8_body_is_documented_422_everywhere(client: httpx.Client) -> None:
    _trained(client)
    headers = {"Content-Type": "application/json"}
    body = b'{"name": "\xff\xfe"}'
    for path in ("/v1/streams", "/v1/streams/s/transform", "/v1/streams/s/reconstruct"):
        response = client.post(path, content=body, headers=headers)
        assert response.status_code == 422, path
        assert response.json()["error"] == "invalid_request", path
        assert response.json()["message"].startswith("body: expected UTF-8 encoded JSON"), path
    response = client.post("/v1/streams/s/batches", content=body, headers=headers)
    assert (response.status_code, response.json()["error"]) == (422, "invalid_batch")
    assert client.get("/v1/streams").json()["count"] == 1


def test_transform_overflowing_values_refused(client: httpx.Client) -> None:
    _trained(client)
    response = client.post("/v1/streams/s/transform", json={"data": [[1e39, 0.0, 0.0]]})
    assert response.status_code == 422
    assert response.json()["message"] == (
        "body.data.0.0: Input should be less than or equal to 3.4028235e+38, got a number 1e+39"
    )


def test_transform_and_reconstruct_outputs_beyond_float32_refused(client: httpx.Client) -> None:
    # D = 50: a row of float32's largest values signed like V's row sums to > float32's max.
    client.post("/v1/streams", json={"name": "wide", "latent_dims": [1]})
    assert push(client, "wide", batch(dim=50), seq=0).status_code == 200
    v = np.array(client.get("/v1/streams/wide/models/1").json()["V"][0])
    assert np.abs(v).sum() > 1.0  # so the projection of the row below overflows
    huge = (3.4e38 * np.sign(v)).tolist()
    for op, what in (("transform", "projection"), ("reconstruct", "reconstruction")):
        rows = [[0.0] * 50, huge]
        response = client.post(f"/v1/streams/wide/{op}", json={"data": rows})
        assert response.status_code == 422, response.text
        assert response.json() == {
            "error": "invalid_batch",
            "message": f"row 1: the {what} overflows float32; "
            "expected values of the scale the stream was trained on",
            "details": None,
        }


def _schema(server: Server, **kwargs: Any) -> dict[str, Any]:
    response = server.client.get("/openapi.json", **kwargs)
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


def test_openapi_declares_the_settings_limits(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    limits = {"max_dim": 50, "max_mc_samples": 7, "max_latent_dims": 3, "max_rows_per_batch": 9}
    with make_server(**limits) as server:
        schema = _schema(server)
    models = schema["components"]["schemas"]
    create = models["StreamCreate"]["properties"]
    assert create["mc_samples"]["maximum"] == 7
    assert create["latent_dims"]["maxItems"] == 3
    assert create["latent_dims"]["items"] == {"type": "integer", "minimum": 1, "maximum": 49}
    assert {"type": "integer", "minimum": 2, "maximum": 50} in create["dim"]["anyOf"]
    assert create["device"]["pattern"] == "^(auto|cpu|cuda(:[0-9]{1,3})?)$"
    for name in ("BatchIn", "TransformIn"):
        data = models[name]["properties"]["data"]
        assert (data["minItems"], data["maxItems"]) == (1, 9), name
        assert (data["items"]["minItems"], data["items"]["maxItems"]) == (1, 50), name
        value = data["items"]["items"]
        assert (value["minimum"], value["maximum"]) == (
            -3.4028234663852886e38,
            3.4028234663852886e38,
        )
    batches = schema["paths"]["/v1/streams/{name}/batches"]["post"]
    headers = {p["name"]: p["schema"] for p in batches["parameters"] if p["in"] == "header"}
    assert headers["X-Dim"] == {"type": "integer", "minimum": 1, "maximum": 50}
    assert headers["X-Seq"]["minimum"] == 0
    json_body = batches["requestBody"]["content"]["application/json"]["schema"]
    assert json_body == {"$ref": "#/components/schemas/BatchIn"}


def test_openapi_declares_413_on_every_route_with_a_body(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                assert "413" in operation["responses"], (method, path)


def test_openapi_security_scheme_only_with_tokens(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    with make_server() as server:
        open_schema = _schema(server)
    assert "securitySchemes" not in open_schema["components"]
    with make_server(api_tokens="alpha") as server:
        schema = _schema(server, headers=TOKEN)
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    operations = [op for path in schema["paths"].values() for op in path.values()]
    protected = [op for op in operations if op.get("security") == [{"bearer": []}]]
    assert len(protected) == len(operations) - 2  # all but /healthz and /readyz


def test_docs_need_the_token_when_tokens_are_set(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    with make_server(api_tokens="alpha") as server:
        c = server.client
        for path in ("/openapi.json", "/docs"):
            response = c.get(path)
            assert (response.status_code, response.json()["error"]) == (401, "unauthorized")
            assert c.get(path, headers=TOKEN).status_code == 200
            assert c.get(path, params={"token": "alpha"}).status_code == 200
        page = c.get("/docs", params={"token": "alpha"}).text
        assert "/openapi.json?token=alpha" in page
        assert c.get("/").status_code == 200  # the dashboard's page stays open
