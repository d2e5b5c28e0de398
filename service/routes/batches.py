"""Batches: the one write path of a stream."""

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from service import views
from service.decode import BINARY, JSON, NPY, decode_batch, media_type
from service.deps import Authorized, RegistryDep, SettingsDep, StreamDep
from service.routes import errors
from service.schemas import BatchIn, BatchOut

router = APIRouter(prefix="/v1/streams", tags=["batches"], dependencies=[Authorized])

_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            JSON: {
                "schema": BatchIn.model_json_schema(),
                "example": {"data": [[0.1, 0.2, 0.3]], "seq": 0},
            },
            BINARY: {
                "schema": {"type": "string", "format": "binary"},
                "description": "float32 little-endian, row-major; header X-Dim: D, optional X-Seq",
            },
            NPY: {
                "schema": {"type": "string", "format": "binary"},
                "description": "a .npy file of a 2-D float array; optional header X-Seq",
            },
        },
    }
}


@router.post(
    "/{name}/batches",
    openapi_extra=_BODY,
    responses=errors(401, 404, 409, 413, 415, 422, 429, 503),
)
async def push_batch(
    entry: StreamDep, registry: RegistryDep, request: Request, settings: SettingsDep
) -> BatchOut:
    """Learn one batch: one optimizer step of every candidate, answered once durable.

    With seq (JSON field or X-Seq header; the batch's index in the stream, from 0) a batch seen
    before answers duplicate=true and trains nothing, and a gap answers 409 seq_gap.
    """
    body = await request.body()
    kind = media_type(request.headers.get("content-type"))
    x, seq = await run_in_threadpool(decode_batch, kind, body, request.headers, settings)
    applied = await registry.push(entry.live.name, x, seq)
    return BatchOut(
        step=applied.report.step,
        rows=applied.rows,
        duplicate=applied.duplicate,
        selection=views.selection(applied.report),
    )
