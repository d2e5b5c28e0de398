"""Streams: create, list, read, delete."""

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from service.deps import Authorized, BackendDep
from service.routes import errors
from service.schemas import StreamCreate, StreamList, StreamOut

router = APIRouter(
    prefix="/v1/streams",
    tags=["streams"],
    dependencies=[Authorized],
    responses=errors(401, 422, 503),
)


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(409, 413, 422))
async def create_stream(body: StreamCreate, backend: BackendDep) -> StreamOut:
    """Create a stream; every setting but the name is optional. 409 if the name is taken."""
    return await backend.create(body)


@router.get("")
async def list_streams(
    backend: BackendDep,
    after: Annotated[
        str | None, Query(description="only streams whose name sorts after this one")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="at most this many streams")] = 1000,
) -> StreamList:
    """The streams sorted by name, a page at a time: `next` is the `after` of the next page."""
    data = await backend.streams(after, limit + 1)
    last = data[limit - 1].name if len(data) > limit else None
    return StreamList(data=data[:limit], count=min(len(data), limit), next=last)


@router.get("/{name}", responses=errors(404))
async def get_stream(name: str, backend: BackendDep) -> StreamOut:
    """A stream's settings and progress (step = batches applied)."""
    return await backend.stream(name)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404))
async def delete_stream(name: str, backend: BackendDep) -> Response:
    """Delete a stream and everything stored for it; its queued batches answer 404."""
    await backend.delete(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
