"""FastAPI dependencies, as Annotated aliases the routes declare.

All of them are `async def`: none blocks, and FastAPI runs a plain `def` dependency in its thread
pool, a thread handoff per dependency per request (the batch route has four)."""

import secrets
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

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


# The bearer scheme, as FastAPI's security class: it reads the header and declares the scheme in
# the OpenAPI schema (so /docs can authorise). auto_error=False: the check below answers 401 in
# the error shape, and only when tokens are configured.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="one of DIMWATCH_API_TOKENS (only when tokens are configured)",
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def check_token(settings: Settings, token: str | None) -> None:
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


def bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (None for another scheme)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        return None
    return credentials.credentials.strip() or None


async def require_token(settings: SettingsDep, credentials: BearerDep) -> None:
    """Authorization: Bearer <token>, when DIMWATCH_API_TOKENS is set."""
    check_token(settings, bearer_token(credentials))


async def require_token_or_query(
    settings: SettingsDep,
    credentials: BearerDep,
    token: Annotated[
        str | None, Query(description="for EventSource clients that cannot set headers")
    ] = None,
) -> None:
    """As require_token, or ?token=<token> (browsers' EventSource cannot send headers)."""
    check_token(settings, bearer_token(credentials) or token)


Authorized = Depends(require_token)
AuthorizedOrQuery = Depends(require_token_or_query)
