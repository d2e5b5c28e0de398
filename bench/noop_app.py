"""A FastAPI app that parses a batch exactly as dimwatch does and does nothing else: the
ceiling the service's throughput is measured against (bench/service_speed.py)."""

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from service.decode import decode_batch, media_type
from service.settings import Settings


def create_noop_app() -> FastAPI:
    """POST /v1/streams/{name}/batches decodes the body (JSON, binary or npy) and answers
    {"rows": n}; GET /healthz answers ok."""
    app = FastAPI()
    settings = Settings()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/streams/{name}/batches")
    async def push(name: str, request: Request) -> dict[str, int]:
        body = await request.body()
        kind = media_type(request.headers.get("content-type"))
        x, _ = await run_in_threadpool(decode_batch, kind, body, request.headers, settings)
        return {"rows": int(x.shape[0])}

    return app
