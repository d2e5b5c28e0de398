"""Operations: liveness, readiness, Prometheus metrics."""

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import Authorized, MetricsDep
from service.routes import errors
from service.schemas import StatusOut

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> StatusOut:
    """The process is alive (no token needed)."""
    return StatusOut(status="ok")


@router.get("/readyz", responses={503: {"model": StatusOut, "description": "still restoring"}})
async def readyz(request: Request) -> JSONResponse:
    """Stored streams are restored and requests are served (no token needed)."""
    if await request.state.backend.readiness():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "starting"}, status_code=503, headers={"Retry-After": "1"})


@router.get(
    "/metrics",
    dependencies=[Authorized],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **errors(401)},
)
async def metrics(metrics: MetricsDep) -> Response:
    """Prometheus text format: batches, rows, step latency, streams, selection changes, rejects."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
