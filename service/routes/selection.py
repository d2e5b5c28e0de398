"""What a stream's bank says: the selection, posterior collapse, the BIC history."""

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import Authorized, BackendDep
from service.model_schemas import CollapseOut, HistoryOut
from service.routes import errors
from service.schemas import SelectionOut

router = APIRouter(
    prefix="/v1/streams/{name}",
    tags=["selection"],
    dependencies=[Authorized],
    responses=errors(401, 404, 422, 503),
)


@router.get("/selection")
async def get_selection(name: str, backend: BackendDep) -> SelectionOut:
    """The best H and every candidate's scores after the last applied batch (lower BIC wins)."""
    return await backend.selection(name)


@router.get("/collapse")
async def get_collapse(name: str, backend: BackendDep) -> CollapseOut:
    """Per-latent encoder entropies, collapse flags, S_reg and S_rec of every candidate."""
    return await backend.collapse(name)


@router.get("/history", responses=errors(422))
async def get_history(
    name: str,
    backend: BackendDep,
    after: Annotated[int, Query(description="only points with step > after")] = -1,
    limit: Annotated[int, Query(ge=1, le=10_000, description="at most this many points")] = 1000,
) -> HistoryOut:
    """Per-step entropy BIC and batch BIC of every candidate and the selected H, oldest first."""
    return await backend.history(name, after, limit)
