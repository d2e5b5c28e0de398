"""The dashboard's files without a browser: offline by construction, served by a real server."""

import re
from pathlib import Path

import httpx

DASHBOARD = Path(__file__).resolve().parents[2] / "clients" / "dashboard"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # an XML name, never fetched
JAVASCRIPT_TYPES = ("text/javascript", "application/javascript")


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


def test_get_root_serves_index_html(live_url: str) -> None:
    response = httpx.get(f"{live_url}/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == (DASHBOARD / "index.html").read_text()


def test_get_module_script_has_javascript_type(live_url: str) -> None:
    for script in sorted(DASHBOARD.glob("*.js")):
        response = httpx.get(f"{live_url}/dashboard/{script.name}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(JAVASCRIPT_TYPES), script.name
        assert response.text == script.read_text()
