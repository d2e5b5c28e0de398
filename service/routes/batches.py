"""Batches: the one write path of a stream."""

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from service.decode import (
    BINARY,
    BINARY_DTYPES,
    JSON,
    MAX_HEADER_INTEGER,
    NPY,
    decode_batch,
    media_type,
)
from service.deps import bearer, bearer_token, check_token, get_backend, get_settings
from service.routes import errors
from service.schemas import BatchOut

# Bodies up to these sizes are decoded on the event loop (at most a few hundred microseconds: a
# thread handoff costs more, ~0.5 ms of CPU); larger ones in the thread pool, so that a big batch
# never stalls other requests. Binary rows are read in place (a 256 KiB float32 body: ~20 us to
# copy and check; float16 ~0.1 ms), JSON is parsed value by value (~0.5 ms per 64 KiB).
INLINE_DECODE_BYTES = 64 * 1024
INLINE_DECODE_BINARY_BYTES = 1024 * 1024

router = APIRouter(prefix="/v1/streams", tags=["batches"])

_BODY: dict[str, Any] = {
    # The route reads its own body and dependencies (the hot path), so what FastAPI would
    # declare from them is declared here: the bodies, the binary format's headers, the token.
    "requestBody": {
        "required": True,
        "content": {
            JSON: {
                "schema": {"$ref": "#/components/schemas/BatchIn"},
                "example": {"data": [[0.1, 0.2, 0.3]], "seq": 0},
            },
            BINARY: {
                "schema": {"type": "string", "format": "binary"},
                "description": "little-endian rows, row-major, of float32 (or the X-Dtype "
                "header's float16 or bfloat16); header X-Dim: D, optional X-Seq",
            },
            NPY: {
                "schema": {"type": "string", "format": "binary"},
                "description": "a .npy file of a 2-D float array; optional header X-Seq",
            },
        },
    },
    "parameters": [
        {
            "name": "X-Dim",
            "in": "header",
            "required": False,
            "description": "columns D of an application/octet-stream body (required with it)",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_HEADER_INTEGER},
        },
        {
            "name": "X-Dtype",
            "in": "header",
            "required": False,
            "description": "number format of an application/octet-stream body (default float32); "
            "every format is widened to float32 and checked the same way",
            "schema": {"type": "string", "enum": list(BINARY_DTYPES), "default": "float32"},
        },
        {
            "name": "X-Seq",
            "in": "header",
            "required": False,
            "description": "the batch's index in the stream, from 0, for binary and .npy bodies",
            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_HEADER_INTEGER},
        },
    ],
    "security": [{"bearer": []}],
}


@router.post(
    "/{name}/batches",
    response_model=BatchOut,
    openapi_extra=_BODY,
    responses=errors(401, 404, 409, 413, 415, 422, 429, 503),
)
async def push_batch(name: str, request: Request) -> Response:
    """Learn one batch: one optimizer step of every candidate, answered once durable.

    With seq (JSON field or X-Seq header; the batch's index in the stream, from 0) a batch seen
    before answers duplicate=true and trains nothing, and a gap answers 409 seq_gap.
    """
    # The hot path awaits its dependencies itself, in the order FastAPI would (token, then
    # backend, then stream): resolving four declared ones costs ~0.15 ms a request.
    settings = await get_settings(request)
    if settings.api_tokens:
        check_token(settings, bearer_token(await bearer(request)))
    backend = await get_backend(request)
    await backend.require(name)
    body = await request.body()
    kind = media_type(request.headers.get("content-type"))
    inline = INLINE_DECODE_BYTES if kind == JSON else INLINE_DECODE_BINARY_BYTES
    if len(body) <= inline:
        x, seq = decode_batch(kind, body, request.headers, settings)
    else:
        x, seq = await run_in_threadpool(decode_batch, kind, body, request.headers, settings)
    # BatchOut's JSON, rendered off the event loop while the batch was being committed.
    return Response(await backend.push(name, x, seq), media_type="application/json")
