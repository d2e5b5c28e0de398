"""One JSON error shape for every failed request, and the handlers that produce it.

    {"error": "<code>", "message": "<what was wrong, what was expected>", "details": <any>}

ApiError is raised by routes and the registry; FastAPI's validation errors, Starlette's 404/405
and unexpected exceptions are translated into the same shape here.
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
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
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        metrics.rejected.labels(reason="invalid_request").inc()
        return error_response(422, "invalid_request", f"{where}: {first['msg']}", details)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "invalid_request")
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        else:
            message = str(exc.detail)
        metrics.rejected.labels(reason=code).inc()
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, code, message, None, headers)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StreamingError, core_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_middleware(CatchAll)
