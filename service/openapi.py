"""The OpenAPI schema as this server enforces it, and the docs routes that serve it.

The request models declare what holds on every server (types, finiteness, float32 range,
non-empty data); the limits that come from settings (max_dim, max_mc_samples, ...) are written
into the schema here, per app. The bearer scheme is declared only when tokens are configured,
and with tokens set `/openapi.json` and `/docs` need one too (header or `?token=`: a browser
opening /docs cannot send a header, so the page is handed the token it was opened with).
"""

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Query
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse

from service.deps import AuthorizedOrQuery, BearerDep, bearer_token
from service.schemas import BatchIn
from service.settings import Settings

OPENAPI_URL = "/openapi.json"
DOCS_URL = "/docs"


def limited(schema: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The generated schema with the settings' limits and the auth actually in force."""
    components = schema.setdefault("components", {})
    models = components.setdefault("schemas", {})
    models["BatchIn"] = BatchIn.model_json_schema(ref_template="#/components/schemas/{model}")
    for name in ("BatchIn", "TransformIn"):
        data = models[name]["properties"]["data"]
        data["maxItems"] = settings.max_rows_per_batch
        data["items"]["maxItems"] = settings.max_dim
    create = models["StreamCreate"]["properties"]
    create["mc_samples"]["maximum"] = settings.max_mc_samples
    create["latent_dims"]["maxItems"] = settings.max_latent_dims
    create["latent_dims"]["items"]["maximum"] = settings.max_dim - 1
    for option in create["dim"]["anyOf"]:
        if option.get("type") == "integer":
            option["maximum"] = settings.max_dim
    for parameter in schema["paths"]["/v1/streams/{name}/batches"]["post"]["parameters"]:
        if parameter["name"] == "X-Dim":
            parameter["schema"]["maximum"] = settings.max_dim
    if not settings.auth_enabled:
        components.pop("securitySchemes", None)
    for path in schema["paths"].values():
        for operation in path.values():
            if not settings.auth_enabled:
                operation.pop("security", None)
                operation.get("responses", {}).pop("401", None)
    return schema


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the schema and the docs (build the app with openapi_url=None, docs_url=None)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            generated = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            app.openapi_schema = limited(generated, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    router = APIRouter(include_in_schema=False, dependencies=[AuthorizedOrQuery])

    @router.get(OPENAPI_URL)
    async def schema() -> JSONResponse:
        return JSONResponse(openapi())

    @router.get(DOCS_URL)
    async def docs(
        credentials: BearerDep, token: Annotated[str | None, Query()] = None
    ) -> HTMLResponse:
        given = bearer_token(credentials) or token
        url = OPENAPI_URL + (f"?token={quote(given, safe='')}" if given else "")
        return get_swagger_ui_html(
            openapi_url=url,
            title=f"{app.title} - docs",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    app.include_router(router)
