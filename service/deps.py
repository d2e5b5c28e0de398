"""FastAPI dependencies, as Annotated aliases the routes declare.

All of them are `async def`: none blocks, and FastAPI runs a plain `def` dependency in its thread
pool, a thread handoff per dependency per request (the batch route has four)."""

import secrets
from typing import Annotated

from fastapi import Depends, Query, Request

from service.backend import Backend
from service.errors import ApiError
from service.metrics import Metrics
from service.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_backend(request: Request) -> Backend:
    """The streams (this process's registry, or the cluster); 503 until they can be served."""
    backend: Backend = request.state.backend
    if not backend.ready:
        raise ApiError(
            503,
            "not_ready",
            "restoring stored streams; retry shortly",
            headers={"Retry-After": "1"},
        )
    return backend


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
BackendDep = Annotated[Backend, Depends(get_backend)]


async def require_stream(name: str, backend: BackendDep) -> None:
    """404 for a stream that does not exist, before the request's body is validated."""
    await backend.require(name)


StreamExists = Depends(require_stream)


def _check_token(settings: Settings, token: str | None) -> None:
    """Constant-time comparison against every configured token (all of them, always)."""
    if not settings.api_tokens:
        return
    given = (token or "").encode()
    valid = False
    for expected in settings.api_tokens:
        valid |= secrets.compare_digest(given, expected.encode())
    if not valid:
        raise ApiError(
            401,
            "unauthorized",
            "missing or invalid bearer token; send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def require_token(request: Request, settings: SettingsDep) -> None:
    """Authorization: Bearer <token>, when DIMWATCH_API_TOKENS is set."""
    _check_token(settings, _bearer(request))


async def require_token_or_query(
    request: Request,
    settings: SettingsDep,
    token: Annotated[
        str | None, Query(description="for EventSource clients that cannot set headers")
    ] = None,
) -> None:
    """As require_token, or ?token=<token> (browsers' EventSource cannot send headers)."""
    _check_token(settings, _bearer(request) or token)


Authorized = Depends(require_token)
AuthorizedOrQuery = Depends(require_token_or_query)
