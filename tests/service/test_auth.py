"""Bearer-token auth: off by default; when on, everything but /healthz, /readyz and the
dashboard needs a valid token; tokens never appear in settings' repr or in logs."""

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from service.server import RedactTokens
from service.settings import Settings
from tests.service.helpers import Server

TOKENS = "alpha-token, beta-token"
UNAUTHORIZED = "missing or invalid bearer token; send Authorization: Bearer <token>"
PROTECTED = [
    ("GET", "/v1/streams"),
    ("POST", "/v1/streams"),
    ("GET", "/v1/streams/s"),
    ("DELETE", "/v1/streams/s"),
    ("POST", "/v1/streams/s/batches"),
    ("GET", "/v1/streams/s/selection"),
    ("GET", "/v1/streams/s/collapse"),
    ("GET", "/v1/streams/s/history"),
    ("GET", "/v1/streams/s/models/best"),
    ("POST", "/v1/streams/s/transform"),
    ("POST", "/v1/streams/s/reconstruct"),
    ("GET", "/v1/streams/s/events"),
    ("GET", "/metrics"),
]


def test_auth_off_by_default(client: httpx.Client) -> None:
    assert client.post("/v1/streams", json={"name": "s"}).status_code == 201
    assert client.get("/metrics").status_code == 200


def test_auth_on_rejects_missing_and_wrong_tokens(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    with make_server(api_tokens=TOKENS) as server:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "alpha-token"}):
            for method, path in PROTECTED:
                response = server.client.request(method, path, headers=headers)
                assert response.status_code == 401, (method, path, headers)
                assert response.headers["www-authenticate"] == "Bearer"
                assert response.json() == {
                    "error": "unauthorized",
                    "message": UNAUTHORIZED,
                    "details": None,
                }


def test_auth_on_accepts_every_configured_token(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    with make_server(api_tokens=TOKENS) as server:
        for i, token in enumerate(("alpha-token", "beta-token")):
            headers = {"Authorization": f"Bearer {token}"}
            response = server.client.post("/v1/streams", json={"name": f"s{i}"}, headers=headers)
            assert response.status_code == 201
        assert server.client.get("/metrics", headers=headers).status_code == 200


def test_auth_on_leaves_probes_and_dashboard_open(
    make_server: Callable[..., AbstractContextManager[Server]], tmp_path: Path
) -> None:
    (tmp_path / "index.html").write_text("<html>dimwatch</html>")
    (tmp_path / "app.js").write_text("let x = 1;")
    with make_server(api_tokens=TOKENS, dashboard_dir=tmp_path) as server:
        assert server.client.get("/healthz").json() == {"status": "ok"}
        assert server.client.get("/readyz").json()["status"] == "ready"
        assert server.client.get("/").text == "<html>dimwatch</html>"
        assert server.client.get("/dashboard/app.js").text == "let x = 1;"


def test_events_accept_query_token(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    with make_server(api_tokens=TOKENS) as server:
        headers = {"Authorization": "Bearer alpha-token"}
        server.client.post("/v1/streams", json={"name": "s"}, headers=headers)
        with server.client.stream("GET", "/v1/streams/s/events?token=beta-token") as response:
            assert response.status_code == 200
            assert next(response.iter_lines()) == ": connected"
        assert server.client.get("/v1/streams/s/events?token=nope").status_code == 401
        assert server.client.get("/v1/streams/s?token=alpha-token").status_code == 401


def test_tokens_hidden_from_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIMWATCH_API_TOKENS", TOKENS)
    settings = Settings()
    assert settings.api_tokens == ("alpha-token", "beta-token")
    assert "alpha" not in repr(settings)
    assert "alpha" not in str(settings)


def test_empty_tokens_variable_turns_auth_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIMWATCH_API_TOKENS", " , ")
    assert Settings().api_tokens == ()


def test_access_log_redacts_query_token() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", "/v1/streams/s/events?token=alpha-token&x=1", "1.1", 200),
        None,
    )
    assert RedactTokens().filter(record)
    assert (
        record.getMessage() == '127.0.0.1:1 - "GET /v1/streams/s/events?token=***&x=1 HTTP/1.1" 200'
    )
