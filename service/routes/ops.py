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
    """Stored streams are restored and requests are served (no token needed). The body counts
    the streams and those that could not be restored (listed in GET /v1/streams with
    available false; they answer 409 stream_unavailable, and the server is ready all the same).
    """
    backend = request.state.backend
    if not await backend.readiness():
        return JSONResponse({"status": "starting"}, status_code=503, headers={"Retry-After": "1"})
    streams = await backend.streams()
    unavailable = sum(not s.available for s in streams)
    return JSONResponse({"status": "ready", "streams": len(streams), "unavailable": unavailable})


@router.get(
    "/metrics",
    dependencies=[Authorized],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **errors(401)},
)
async def metrics(metrics: MetricsDep) -> Response:
    """Prometheus text format: batches, rows, step latency, streams, selection changes, rejects."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
