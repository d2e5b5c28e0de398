"""What a stream's bank says: the selection, posterior collapse, the BIC history."""

from typing import Annotated

from fastapi import APIRouter, Query

from service import views
from service.deps import Authorized, StreamDep
from service.routes import errors
from service.schemas import CollapseOut, HistoryOut, SelectionOut

router = APIRouter(
    prefix="/v1/streams/{name}",
    tags=["selection"],
    dependencies=[Authorized],
    responses=errors(401, 404, 422, 503),
)


@router.get("/selection")
async def get_selection(entry: StreamDep) -> SelectionOut:
    """The best H and every candidate's scores after the last applied batch (lower BIC wins)."""
    return views.selection(entry.live.report)


@router.get("/collapse")
async def get_collapse(entry: StreamDep) -> CollapseOut:
    """Per-latent encoder entropies, collapse flags, S_reg and S_rec of every candidate."""
    return views.collapse(entry.live)


@router.get("/history", responses=errors(422))
async def get_history(
    entry: StreamDep,
    after: Annotated[int, Query(description="only points with step > after")] = -1,
    limit: Annotated[int, Query(ge=1, le=10_000, description="at most this many points")] = 1000,
) -> HistoryOut:
    """Per-step entropy BIC and batch BIC of every candidate and the selected H, oldest first."""
    live = entry.live
    return views.history(live, live.history.since(after, limit))
