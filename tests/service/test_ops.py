"""Operations: probes, metrics, the OpenAPI schema, the error shape, the dashboard files."""

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx

from service.routes.dashboard import dashboard_dir
from service.settings import Settings
from tests.service.helpers import Server, batch, push


def test_healthz_ok(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_and_routes_wait_for_restore(server: Server) -> None:
    server.registry.ready = False
    try:
        response = server.client.get("/readyz")
        assert (response.status_code, response.json()) == (503, {"status": "starting"})
        response = server.client.get("/v1/streams")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json() == {
            "error": "not_ready",
            "message": "restoring stored streams; retry shortly",
            "details": None,
        }
    finally:
        server.registry.ready = True
    assert server.client.get("/readyz").json() == {
        "status": "ready",
        "streams": 0,
        "unavailable": 0,
    }


def _metric(text: str, name: str) -> float:
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    assert len(values) == 1, name
    return values[0]


def test_metrics_count_batches_rows_streams_rejects(client: httpx.Client) -> None:
    client.post("/v1/streams", json={"name": "a"})
    client.post("/v1/streams", json={"name": "b"})
    for i in range(3):
        push(client, "a", batch(rows=4), seq=i)
    push(client, "a", batch(rows=4, dim=9))
    client.get("/v1/streams/nope")
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert _metric(text, "dimwatch_batches_total") == 3
    assert _metric(text, "dimwatch_rows_total") == 12
    assert _metric(text, "dimwatch_streams") == 2
    assert _metric(text, "dimwatch_step_seconds_count") == 3
    assert _metric(text, "dimwatch_commit_seconds_count") == 3
    assert (
        0
        < _metric(text, "dimwatch_commit_seconds_sum")
        < _metric(text, "dimwatch_step_seconds_sum")
    )
    assert _metric(text, 'dimwatch_rejected_total{reason="invalid_batch"}') == 1
    assert _metric(text, 'dimwatch_rejected_total{reason="not_found"}') == 1


def test_unknown_route_uses_error_shape(client: httpx.Client) -> None:
    response = client.get("/v2/nothing")
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "message": "no route GET /v2/nothing",
        "details": None,
    }


def test_wrong_method_uses_error_shape(client: httpx.Client) -> None:
    response = client.put("/v1/streams")
    assert response.status_code == 405
    assert response.json() == {
        "error": "method_not_allowed",
        "message": "PUT is not allowed on /v1/streams; use GET, POST",
        "details": None,
    }


def test_wrong_method_allow_lists_every_method_of_the_path(client: httpx.Client) -> None:
    client.post("/v1/streams", json={"name": "s"})
    expected = {
        "/v1/streams": "GET, POST",
        "/v1/streams/s": "GET, DELETE",
        "/v1/streams/s/batches": "POST",
        "/v1/streams/s/events": "GET",
        "/metrics": "GET",
        "/dashboard/app.js": "GET, HEAD",
    }
    for path, allow in expected.items():
        response = client.request("PATCH", path)
        assert (response.status_code, response.headers["allow"]) == (405, allow), path
        assert response.json()["error"] == "method_not_allowed"


def test_validation_error_uses_error_shape(client: httpx.Client) -> None:
    client.post("/v1/streams", json={"name": "s"})
    response = client.get("/v1/streams/s/history", params={"limit": 0})
    assert response.status_code == 422
    assert response.json() == {
        "error": "invalid_request",
        "message": "query.limit: Input should be greater than or equal to 1",
        "details": [
            {
                "loc": ["query", "limit"],
                "msg": "Input should be greater than or equal to 1",
                "type": "greater_than_equal",
            }
        ],
    }


def test_openapi_documents_every_route_with_examples(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert sorted(paths) == [
        "/healthz",
        "/metrics",
        "/readyz",
        "/v1/streams",
        "/v1/streams/{name}",
        "/v1/streams/{name}/batches",
        "/v1/streams/{name}/collapse",
        "/v1/streams/{name}/events",
        "/v1/streams/{name}/history",
        "/v1/streams/{name}/models/{which}",
        "/v1/streams/{name}/reconstruct",
        "/v1/streams/{name}/selection",
        "/v1/streams/{name}/transform",
    ]
    body = paths["/v1/streams/{name}/batches"]["post"]["requestBody"]["content"]
    assert sorted(body) == ["application/json", "application/octet-stream", "application/x-npy"]
    components = schema["components"]["schemas"]
    assert "HTTPValidationError" not in components  # every 422 is documented as ErrorOut
    for model in (
        "StreamCreate",
        "StreamOut",
        "BatchOut",
        "SelectionOut",
        "CollapseOut",
        "HistoryOut",
        "ModelParamsOut",
        "TransformIn",
        "TransformOut",
        "ErrorOut",
    ):
        assert components[model]["examples"], model


def test_dashboard_served_from_configured_dir(
    make_server: Callable[..., AbstractContextManager[Server]], tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html>hi</html>")
    (site / "style.css").write_text("body {}")
    with make_server(dashboard_dir=site, data_dir=tmp_path / "data") as server:
        index = server.client.get("/")
        assert (index.status_code, index.text) == (200, "<html>hi</html>")
        assert index.headers["content-type"].startswith("text/html")
        css = server.client.get("/dashboard/style.css")
        assert (css.text, css.headers["content-type"][:8]) == ("body {}", "text/css")
        assert (tmp_path / "data" / "dimwatch.sqlite3").is_file()
        escape = server.client.get("/dashboard/..%2Fdata%2Fdimwatch.sqlite3")
        assert escape.status_code == 404
        assert server.client.get("/dashboard/missing.js").status_code == 404


def test_dashboard_missing_index_is_404(
    make_server: Callable[..., AbstractContextManager[Server]], tmp_path: Path
) -> None:
    with make_server(dashboard_dir=tmp_path / "empty") as server:
        response = server.client.get("/")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


def test_dashboard_defaults_to_clients_package(tmp_path: Path) -> None:
    expected = Path(__file__).resolve().parents[2] / "clients" / "dashboard"
    assert dashboard_dir(Settings(data_dir=tmp_path)).resolve() == expected
