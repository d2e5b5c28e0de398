"""The dashboard's static files (written in clients/dashboard/), served without a token."""

import importlib.resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from service.deps import SettingsDep
from service.errors import not_found
from service.settings import Settings

router = APIRouter(include_in_schema=False)


def dashboard_dir(settings: Settings) -> Path:
    """settings.dashboard_dir, or the dashboard folder installed with the clients package."""
    if settings.dashboard_dir is not None:
        return settings.dashboard_dir
    return Path(str(importlib.resources.files("clients") / "dashboard"))


def _file(root: Path, relative: str) -> FileResponse:
    """The file under root, refusing anything that resolves outside it."""
    base = root.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base) or not target.is_file():
        raise not_found(f"dashboard file {relative!r}")
    return FileResponse(target, headers={"Cache-Control": "no-cache"})


@router.get("/")
async def index(settings: SettingsDep) -> FileResponse:
    return _file(dashboard_dir(settings), "index.html")


@router.get("/dashboard/{path:path}")
async def asset(path: str, settings: SettingsDep) -> FileResponse:
    return _file(dashboard_dir(settings), path)
