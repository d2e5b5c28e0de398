"""The trained models: parameters, projections to the latent space, reconstructions."""

from typing import Annotated

from fastapi import APIRouter, Path

from service import views
from service.decode import rows_to_array
from service.deps import Authorized, RegistryDep, SettingsDep, StreamDep
from service.errors import ApiError, not_found
from service.live import LiveStream
from service.routes import errors
from service.schemas import ModelParamsOut, TransformIn, TransformOut

router = APIRouter(
    prefix="/v1/streams/{name}",
    tags=["models"],
    dependencies=[Authorized],
    responses=errors(401, 404, 409, 422, 503),
)


@router.get("/models/{which}")
async def get_model(
    entry: StreamDep,
    registry: RegistryDep,
    which: Annotated[
        str, Path(description="a latent size H of the stream, or best", examples=["best", "4"])
    ],
) -> ModelParamsOut:
    """W, mu, sigma^2, V, b, tau^2 of one candidate (best: the lowest entropy BIC)."""
    live = entry.live
    if which == "best":
        latent_dim = None
    elif which.isascii() and which.isdigit() and int(which) in live.bank_config.latent_dims:
        latent_dim = int(which)
    else:
        raise not_found(
            f"model {which!r} (latent_dims are {list(live.bank_config.latent_dims)}, or best)"
        )
    step, params = await registry.read(live.name, lambda s: s.params(latent_dim))
    return views.model_params(step, params)


async def _project(
    entry: StreamDep, registry: RegistryDep, settings: SettingsDep, body: TransformIn, decode: bool
) -> TransformOut:
    def run(live: LiveStream) -> TransformOut:
        x = rows_to_array(body.data, settings)
        h, out = live.transform(x, body.latent_dim, decode)
        return TransformOut(latent_dim=h, data=out.tolist())

    if body.latent_dim is not None and body.latent_dim not in entry.live.bank_config.latent_dims:
        dims = list(entry.live.bank_config.latent_dims)
        raise ApiError(
            422,
            "invalid_request",
            f"latent_dim: expected one of {dims} or null, got {body.latent_dim}",
        )
    return await registry.read(entry.live.name, run)


@router.post("/transform")
async def transform(
    body: TransformIn, entry: StreamDep, registry: RegistryDep, settings: SettingsDep
) -> TransformOut:
    """Posterior means V x + b of each row under one model (latent_dim null: the best)."""
    return await _project(entry, registry, settings, body, decode=False)


@router.post("/reconstruct")
async def reconstruct(
    body: TransformIn, entry: StreamDep, registry: RegistryDep, settings: SettingsDep
) -> TransformOut:
    """Reconstructions W (V x + b) + mu of each row under one model (latent_dim null: the best)."""
    return await _project(entry, registry, settings, body, decode=True)
