"""The dashboard's static files (written in clients/dashboard/), served without a token:
index.html at `/`, every file under `/dashboard/` by Starlette's StaticFiles."""

import importlib.resources
import os
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

from service.deps import SettingsDep
from service.errors import not_found
from service.settings import Settings

router = APIRouter(include_in_schema=False)
HEADERS = {"Cache-Control": "no-cache"}  # revalidate (ETag) so an upgrade shows at once


def dashboard_dir(settings: Settings) -> Path:
    """settings.dashboard_dir, or the dashboard folder installed with the clients package."""
    if settings.dashboard_dir is not None:
        return settings.dashboard_dir
    return Path(str(importlib.resources.files("clients") / "dashboard"))


class DashboardFiles(StaticFiles):
    """StaticFiles (which refuses paths that leave the folder) with HEADERS on every file."""

    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(HEADERS)
        return response


@router.get("/")
async def index(settings: SettingsDep) -> FileResponse:
    page = dashboard_dir(settings) / "index.html"
    if not page.is_file():
        raise not_found(f"dashboard page {str(page)!r}")
    return FileResponse(page, headers=HEADERS)


def mount(app: FastAPI, settings: Settings) -> None:
    """Serve the dashboard's folder under /dashboard (a missing folder answers 404s)."""
    files = DashboardFiles(directory=dashboard_dir(settings), check_dir=False)
    app.mount("/dashboard", files, name="dashboard")
