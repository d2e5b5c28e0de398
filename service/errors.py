"""One JSON error shape for every failed request, and the handlers that produce it.

    {"error": "<code>", "message": "<what was wrong, what was expected>", "details": <any>}

ApiError is raised by routes and the registry; FastAPI's validation errors, Starlette's 404/405
and unexpected exceptions are translated into the same shape here.
"""

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import Metrics
from streaming.errors import InvalidBatchError, StreamingError

log = logging.getLogger("dimwatch")

# Codes for statuses Starlette raises itself (unknown path, wrong method, body too large, ...).
_HTTP_CODES = {
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal",
    503: "not_ready",
}


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class ApiError(Exception):
    """An error answer: HTTP status, stable code, actionable message, optional details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def from_core(exc: StreamingError) -> ApiError:
    """The core's ValueErrors carry messages written for users: pass them on as 422s."""
    code = "invalid_batch" if isinstance(exc, InvalidBatchError) else "invalid_config"
    return ApiError(422, code, str(exc))


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": code, "message": message, "details": jsonable_encoder(details)}
    return JSONResponse(body, status_code=status, headers=headers)


class CatchAll:
    """500 in the error shape for any unexpected exception, logged, not re-raised (Starlette's
    own handler re-raises after answering, which makes the server drop the connection)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception:
            if scope["type"] != "http" or started:
                raise
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            response = error_response(500, "internal", "internal server error; see the server log")
            await response(scope, receive, send)


def validation_message(errors: Sequence[Any]) -> tuple[str, list[dict[str, Any]]]:
    """The message (first error: where, what was expected, what came) and the details list."""
    details = [
        {"loc": list(e.get("loc", ())), "msg": _msg(e), "type": e.get("type", "")} for e in errors
    ]
    if not details:
        return "invalid request", details
    first, where = errors[0], ".".join(str(p) for p in details[0]["loc"]) or "body"
    message = f"{where}: {details[0]['msg']}"
    in_body = details[0]["loc"][:1] not in (["query"], ["path"], ["header"])  # JSON: typed
    if (
        in_body
        and "input" in first
        and first.get("type", "").endswith(("_type", "_equal", "_than"))
    ):
        message += f", got {_json_type(first['input'])}"
    return message, details


STREAM_NAME_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def _msg(error: Any) -> str:
    """pydantic's message, with float bounds written as floats (3.4028235e+38, not 39 digits) and
    a stream name's pattern in words."""
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "string_pattern_mismatch" and loc[-1:] == ("name",):
        return f"expected a stream name of {STREAM_NAME_RULE}, got {json.dumps(error.get('input'))}"
    bounds = {k: v for k, v in error.get("ctx", {}).items() if isinstance(v, float)}
    if not bounds:
        return str(error.get("msg", ""))
    words = {"le": "less than or equal to", "ge": "greater than or equal to"}
    words |= {"lt": "less than", "gt": "greater than"}
    key, value = next(iter(bounds.items()))
    return f"Input should be {words.get(key, key)} {value:.8g}"


def _json_type(value: Any) -> str:
    """The JSON type of a decoded value, as a user would name it ("a string '7'")."""
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number")):
        if isinstance(value, kind):
            return f"{name} {json.dumps(value)}"
    if isinstance(value, str):
        return f"a string {json.dumps(value[:40])}"
    if value is None:
        return "null"
    return "an array" if isinstance(value, list) else "an object"


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves on this request's path (for a 405's Allow).

    Asked of the router itself, method by method: FastAPI nests included routers, so a flat
    walk over routes would miss some. A mount (the dashboard's files) serves GET and HEAD."""
    allowed: list[str] = []
    for method in _METHODS:
        scope = {"type": "http", "path": request.scope["path"], "root_path": "", "method": method}
        for route in request.app.router.routes:
            if route.matches(scope)[0] == Match.FULL:
                if isinstance(route, Mount):
                    return ["GET", "HEAD"]
                allowed.append(method)
                break
    return allowed


def install(app: FastAPI, metrics: Metrics) -> None:
    """Register the handlers that turn every failure into the error shape."""

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        metrics.rejected.labels(reason=exc.code).inc()
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    async def core_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StreamingError)
        return await api_error(request, from_core(exc))

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        message, details = validation_message(exc.errors())
        metrics.rejected.labels(reason="invalid_request").inc()
        return error_response(422, "invalid_request", message, details)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status, headers = exc.status_code, dict(exc.headers) if exc.headers else None
        message = str(exc.detail)
        if status == 400:  # FastAPI could not read the body (not UTF-8): the documented 422
            status, message = 422, f"body: expected UTF-8 encoded JSON ({exc.__cause__})"
        elif status == 404:
            message = f"no route {request.method} {request.url.path}"
        elif status == 405:
            allow = ", ".join(allowed_methods(request))
            headers = {**(headers or {}), "Allow": allow}
            message = f"{request.method} is not allowed on {request.url.path}; use {allow}"
        code = _HTTP_CODES.get(status, "invalid_request")
        metrics.rejected.labels(reason=code).inc()
        return error_response(status, code, message, None, headers)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StreamingError, core_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_middleware(CatchAll)
