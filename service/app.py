"""The FastAPI application: `create_app(settings)` builds it; state lives in the lifespan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import errors, openapi
from service.backend import LocalBackend
from service.metrics import Metrics
from service.pubsub import Closing
from service.registry import Registry
from service.routes import batches, dashboard, events, models, ops, selection, streams
from service.settings import Settings

DESCRIPTION = """Live latent-dimension selection for data streams.

Every stream trains a bank of linear VAEs (one per candidate latent size H) online, one optimizer
step per batch, and selects H by the BIC of the data-free entropy ELBO. Lower BIC is better.
Errors share one shape: `{"error": code, "message": text, "details": any}`."""

OPENAPI_TAGS = ("streams", "batches", "selection", "models", "events", "operations")


def _version() -> str:
    try:
        return version("dimwatch")
    except PackageNotFoundError:
        return "0.0.0"


class BodyLimit:
    """413 for bodies over max_body_bytes: at once from Content-Length, else while reading."""

    def __init__(self, app: ASGIApp, limit: int, metrics: Metrics) -> None:
        self.app = app
        self.limit = limit
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body over {self.limit} bytes; the limit max_body_bytes is {self.limit}"
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.limit:
            self.metrics.rejected.labels(reason="payload_too_large").inc()
            response = errors.error_response(413, "payload_too_large", message)
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            msg = await receive()
            received += len(msg.get("body", b""))
            if received > self.limit:
                raise HTTPException(413, message)
            return msg

        await self.app(scope, limited, send)


@asynccontextmanager
async def _cluster_node(
    app: FastAPI, settings: Settings, metrics: Metrics
) -> AsyncIterator[dict[str, Any]]:
    """The lifespan of a cluster API node: no store, the streams are the workers'."""
    from service.cluster.node import ClusterBackend  # needs the cluster extra (nats-py)

    backend = ClusterBackend(settings, metrics)
    await backend.start()
    app.state.backend = backend
    try:
        yield {"backend": backend}
    finally:
        app.state.closing.set()
        await backend.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for these settings (default: from DIMWATCH_* variables). Nothing starts until
    the lifespan runs: then the store opens and stored streams are restored in the background."""
    settings = settings if settings is not None else Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        if settings.nats_url is not None:
            async with _cluster_node(app, settings, metrics) as state:
                yield state
            return
        registry = Registry(settings, metrics)
        await registry.start()
        app.state.registry = registry  # for operators and tests; routes use the lifespan state
        try:
            yield {"backend": LocalBackend(registry)}
        finally:
            app.state.closing.set()
            await registry.close()

    app = FastAPI(
        title="dimwatch",
        version=_version(),
        description=DESCRIPTION,
        openapi_tags=[{"name": tag} for tag in OPENAPI_TAGS],
        lifespan=lifespan,
        openapi_url=None,  # served by service.openapi, behind the token when tokens are set
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.closing = Closing()  # set on SIGTERM (from any thread): ends open event streams
    errors.install(app, metrics)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, metrics=metrics)
    # Routes are matched in order and matching costs a few microseconds per route: the batch
    # route, the hot one, comes first. No two routers' paths overlap, so the order changes nothing
    # else; OPENAPI_TAGS keeps the documentation's order.
    for module in (batches, streams, selection, models, events, ops, dashboard):
        app.include_router(module.router)
    openapi.install(app, settings)
    dashboard.mount(app, settings)
    return app
