"""Streams: create, list, read, delete."""

from fastapi import APIRouter, Response, status

from service import views
from service.deps import Authorized, RegistryDep, StreamDep
from service.routes import errors
from service.schemas import StreamCreate, StreamList, StreamOut

router = APIRouter(
    prefix="/v1/streams",
    tags=["streams"],
    dependencies=[Authorized],
    responses=errors(401, 422, 503),
)


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(409, 422))
async def create_stream(body: StreamCreate, registry: RegistryDep) -> StreamOut:
    """Create a stream; every setting but the name is optional. 409 if the name is taken."""
    return views.stream(await registry.create(body))


@router.get("")
async def list_streams(registry: RegistryDep) -> StreamList:
    """Every stream, sorted by name."""
    data = [views.stream(live) for live in registry.streams()]
    return StreamList(data=data, count=len(data))


@router.get("/{name}", responses=errors(404))
async def get_stream(entry: StreamDep) -> StreamOut:
    """A stream's settings and progress (step = batches applied)."""
    return views.stream(entry.live)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404))
async def delete_stream(name: str, registry: RegistryDep) -> Response:
    """Delete a stream and everything stored for it; its queued batches answer 404."""
    await registry.delete(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
