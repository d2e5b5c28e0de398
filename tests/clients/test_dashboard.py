"""The dashboard's files without a browser: offline by construction and served by the real app."""

import asyncio
import re
from pathlib import Path

import httpx

from service.app import create_app
from service.settings import Settings

DASHBOARD = Path(__file__).resolve().parents[2] / "clients" / "dashboard"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # an XML name, never fetched
JAVASCRIPT_TYPES = ("text/javascript", "application/javascript")


def get(path: str, data_dir: Path) -> httpx.Response:
    """GET from the real app in process (the dashboard's routes need no lifespan)."""
    app = create_app(Settings.model_validate({"data_dir": data_dir}))

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dimwatch") as client:
            return await client.get(path)

    return asyncio.run(fetch())


def index_assets() -> list[str]:
    html = (DASHBOARD / "index.html").read_text()
    return re.findall(r'(?:src|href)="([^"#]+)"', html)


def test_dashboard_files_load_nothing_from_network() -> None:
    found = {
        path.name: re.findall(
            r"(?:https?:)?//[\w.-]+\.\w+", path.read_text().replace(SVG_NAMESPACE, "")
        )
        for path in sorted(DASHBOARD.iterdir())
    }
    assert found == {name: [] for name in found}


def test_index_references_only_dashboard_files() -> None:
    assets = index_assets()
    assert assets == ["data:,", "dashboard/style.css", "dashboard/app.js"]
    for asset in assets[1:]:
        assert (DASHBOARD / asset.removeprefix("dashboard/")).is_file()


def test_module_imports_resolve_to_dashboard_files() -> None:
    for script in sorted(DASHBOARD.glob("*.js")):
        for target in re.findall(r'from "\./([\w.]+)"', script.read_text()):
            assert (DASHBOARD / target).is_file(), f"{script.name} imports missing {target}"


def test_get_root_serves_index_html(tmp_path: Path) -> None:
    response = get("/", tmp_path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == (DASHBOARD / "index.html").read_text()


def test_get_module_script_has_javascript_type(tmp_path: Path) -> None:
    for script in sorted(DASHBOARD.glob("*.js")):
        response = get(f"/dashboard/{script.name}", tmp_path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(JAVASCRIPT_TYPES), script.name
        assert response.text == script.read_text()
