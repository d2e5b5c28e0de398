"""The trained models: parameters, projections to the latent space, reconstructions."""

from typing import Annotated

from fastapi import APIRouter, Path

from service.deps import Authorized, BackendDep, StreamExists
from service.model_schemas import ModelParamsOut, TransformIn, TransformOut
from service.routes import errors

router = APIRouter(
    prefix="/v1/streams/{name}",
    tags=["models"],
    dependencies=[Authorized, StreamExists],
    responses=errors(401, 404, 409, 422, 503),
)


@router.get("/models/{which}")
async def get_model(
    name: str,
    backend: BackendDep,
    which: Annotated[
        str, Path(description="a latent size H of the stream, or best", examples=["best", "4"])
    ],
) -> ModelParamsOut:
    """W, mu, sigma^2, V, b, tau^2 of one candidate (best: the lowest entropy BIC)."""
    return await backend.model(name, which)


@router.post("/transform", responses=errors(413))
async def transform(name: str, body: TransformIn, backend: BackendDep) -> TransformOut:
    """Posterior means V x + b of each row under one model (latent_dim null: the best)."""
    return await backend.project(name, body, decode=False)


@router.post("/reconstruct", responses=errors(413))
async def reconstruct(name: str, body: TransformIn, backend: BackendDep) -> TransformOut:
    """Reconstructions W (V x + b) + mu of each row under one model (latent_dim null: the best)."""
    return await backend.project(name, body, decode=True)
