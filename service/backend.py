"""What the routes ask of the streams, wherever they live.

`Backend` is the one interface the routes depend on. `LocalBackend` answers from this process's
Registry (the embedded default); the cluster's API node (service/cluster/node.py) answers from the
workers that own the streams. Both turn a LiveStream into answers with the functions below, so a
stream answers the same in either mode.
"""

import bisect
from typing import Protocol

import numpy as np

from service import views
from service.decode import rows_to_array
from service.errors import ApiError, not_found
from service.live import LiveStream
from service.model_schemas import CollapseOut, HistoryOut, ModelParamsOut, TransformIn, TransformOut
from service.pubsub import Hub
from service.registry import Registry
from service.schemas import SelectionOut, StreamCreate, StreamOut
from service.settings import Settings


class Backend(Protocol):
    """The streams as the routes see them; every method raises ApiError for error answers."""

    @property
    def ready(self) -> bool:
        """Requests can be served (checked by every route; cheap)."""
        ...

    async def readiness(self) -> bool:
        """What /readyz answers: every stream can be served right now."""
        ...

    async def require(self, name: str) -> None:
        """404 when the stream certainly does not exist (checked before a batch is decoded)."""
        ...

    async def create(self, spec: StreamCreate) -> StreamOut: ...

    async def streams(self, after: str | None = None, limit: int | None = None) -> list[StreamOut]:
        """Streams sorted by name, those after `after`, at most `limit` (None: all)."""
        ...

    async def stream(self, name: str) -> StreamOut: ...

    async def delete(self, name: str) -> None: ...

    async def push(self, name: str, x: np.ndarray, seq: int | None) -> bytes:
        """The batch's answer, BatchOut as JSON, once it is durable."""
        ...

    async def selection(self, name: str) -> SelectionOut: ...

    async def collapse(self, name: str) -> CollapseOut: ...

    async def history(self, name: str, after: int, limit: int) -> HistoryOut: ...

    async def model(self, name: str, which: str) -> ModelParamsOut: ...

    async def project(self, name: str, body: TransformIn, decode: bool) -> TransformOut: ...

    async def hub(self, name: str) -> Hub:
        """The stream's event listeners (server-sent events of every applied batch)."""
        ...


# ------------------------------------------------------------------------------------ answers


def history_out(live: LiveStream, after: int, limit: int) -> HistoryOut:
    return views.history(live, live.history.since(after, limit))


def model_latent_dim(live: LiveStream, which: str) -> int | None:
    """A model's latent size from the path ("best": None); 404 for anything else."""
    dims = live.spec.latent_dims
    if which == "best":
        return None
    if which.isascii() and which.isdigit() and int(which) in dims:
        return int(which)
    raise not_found(f"model {which!r} (latent_dims are {list(dims)}, or best)")


def model_out(live: LiveStream, latent_dim: int | None) -> ModelParamsOut:
    """One model's parameters (blocks on the stream's lock: run it off the loop)."""
    step, params = live.params(latent_dim)
    return views.model_params(step, params)


def check_projection(live: LiveStream, body: TransformIn) -> None:
    dims = live.spec.latent_dims
    if body.latent_dim is not None and body.latent_dim not in dims:
        raise ApiError(
            422,
            "invalid_request",
            f"latent_dim: expected one of {list(dims)} or null, got {body.latent_dim}",
        )


def project_out(
    live: LiveStream, body: TransformIn, decode: bool, settings: Settings
) -> TransformOut:
    """Latent means (decode False) or reconstructions of body's rows (blocks: off the loop)."""
    x = rows_to_array(body.data, settings)
    h, out = live.transform(x, body.latent_dim, decode)  # the core refuses non-finite results
    return TransformOut(latent_dim=h, data=out.tolist())


# ------------------------------------------------------------------------------------ local


class LocalBackend:
    """The streams of this process (the Registry), as the routes see them."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    @property
    def ready(self) -> bool:
        return self.registry.ready

    async def readiness(self) -> bool:
        return self.registry.ready

    async def require(self, name: str) -> None:
        self.registry.get(name)

    async def create(self, spec: StreamCreate) -> StreamOut:
        return views.stream(await self.registry.create(spec))

    async def streams(self, after: str | None = None, limit: int | None = None) -> list[StreamOut]:
        found = self.registry.streams()
        start = 0 if after is None else bisect.bisect_right([s.name for s in found], after)
        end = None if limit is None else start + limit
        return [views.stream(live) for live in found[start:end]]

    async def stream(self, name: str) -> StreamOut:
        return views.stream(self.registry.get(name).live)

    async def delete(self, name: str) -> None:
        await self.registry.delete(name)

    async def push(self, name: str, x: np.ndarray, seq: int | None) -> bytes:
        return (await self.registry.push(name, x, seq)).answer

    async def selection(self, name: str) -> SelectionOut:
        return views.selection(self.registry.get(name).live.report)

    async def collapse(self, name: str) -> CollapseOut:
        return views.collapse(self.registry.get(name).live)

    async def history(self, name: str, after: int, limit: int) -> HistoryOut:
        return history_out(self.registry.get(name).live, after, limit)

    async def model(self, name: str, which: str) -> ModelParamsOut:
        latent_dim = model_latent_dim(self.registry.get(name).live, which)
        return await self.registry.read(name, lambda live: model_out(live, latent_dim))

    async def project(self, name: str, body: TransformIn, decode: bool) -> TransformOut:
        check_projection(self.registry.get(name).live, body)
        settings = self.registry.settings
        return await self.registry.read(
            name, lambda live: project_out(live, body, decode, settings)
        )

    async def hub(self, name: str) -> Hub:
        return self.registry.get(name).hub
