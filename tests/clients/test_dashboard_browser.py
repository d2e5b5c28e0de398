"""The dashboard in a real headless Chromium against a real uvicorn server over a real socket.

Needs Debian's chromium at /usr/bin/chromium (.ci/run installs it). Screenshots go to artifacts/
(git-ignored) for a person to look at.
"""

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from clients._local_server import local_server
from streaming.data import ppca_data

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "dashboard-test-token"
TIMEOUT_MS = 60_000  # per wait; one that holds returns at once (CI: a busy 2-core machine)


@dataclass(frozen=True)
class LiveServer:
    """A real uvicorn server (clients._local_server, in a thread) and the token it wants."""

    url: str
    token: str | None

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with local_server(tmp_path_factory.mktemp("open")) as url:
        yield LiveServer(url, None)


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with local_server(tmp_path_factory.mktemp("locked"), tokens=(TOKEN,)) as url:
        yield LiveServer(url, TOKEN)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # A fresh profile per run: launch() uses a new temporary user-data-dir itself.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Console:
    """Console errors and uncaught exceptions of one page."""

    errors: list[str]


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, Console]]:
    context = browser.new_context(viewport={"width": 1280, "height": 1500})
    new_page = context.new_page()
    new_page.set_default_timeout(TIMEOUT_MS)
    console = Console(errors=[])

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console.errors.append(message.text)

    new_page.on("console", on_console)
    new_page.on("pageerror", lambda error: console.errors.append(f"uncaught: {error}"))
    yield new_page, console
    context.close()


def push_rows(client: httpx.Client, stream: str, rows: np.ndarray) -> None:
    """POST the rows in batches of 10, one optimizer step each."""
    for start in range(0, len(rows), 10):
        batch = rows[start : start + 10].tolist()
        response = client.post(f"/v1/streams/{stream}/batches", json={"data": batch})
        assert response.status_code == 200, response.text


def push_batches(client: httpx.Client, stream: str, count: int, seed: int) -> None:
    push_rows(client, stream, ppca_data(10 * count, 10, 3, seed=seed))


def create_stream(client: httpx.Client, stream: str, batches: int) -> None:
    response = client.post("/v1/streams", json={"name": stream, "latent_dims": [2, 4, 6]})
    assert response.status_code == 201, response.text
    push_batches(client, stream, batches, seed=1)


def curve_points(page: Page) -> list[str]:
    paths = page.locator("#bic-chart path.entropy-bic")
    return [paths.nth(i).get_attribute("data-points") or "" for i in range(paths.count())]


def test_open_dashboard_shows_stream_without_console_errors(
    open_server: LiveServer, page: tuple[Page, Console]
) -> None:
    tab, console = page
    with open_server.client() as client:
        create_stream(client, "sensors", batches=3)
    tab.goto(f"{open_server.url}/")
    link = tab.locator(".stream-link", has_text="sensors")
    link.wait_for()
    link.click()
    tab.locator("#connection.live").wait_for()
    assert tab.locator("#stream-name").text_content() == "sensors"
    assert curve_points(tab) == ["3", "3", "3"]
    assert tab.locator("#bic-chart path.batch-bic").count() == 3
    assert console.errors == []


def test_push_batch_moves_live_curve(open_server: LiveServer, page: tuple[Page, Console]) -> None:
    tab, console = page
    with open_server.client() as client:
        create_stream(client, "live", batches=4)
        tab.goto(f"{open_server.url}/#stream=live")
        tab.locator("#connection.live").wait_for()
        tab.wait_for_function(
            "document.querySelectorAll('#bic-chart path.entropy-bic').length === 3"
        )
        before = tab.locator("#bic-chart path.entropy-bic").first.get_attribute("d")
        assert curve_points(tab) == ["4", "4", "4"]
        push_batches(client, "live", 1, seed=2)
        tab.wait_for_function(
            "[...document.querySelectorAll('#bic-chart path.entropy-bic')]"
            ".every((p) => p.dataset.points === '5')"
        )
    after = tab.locator("#bic-chart path.entropy-bic").first.get_attribute("d")
    assert after != before
    assert tab.locator("#selection-chart path.selection-line").get_attribute("data-points") == "5"
    assert tab.locator("#stats .stat", has_text="step").locator("dd").text_content() == "5"
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert console.errors == []


def test_first_batch_draws_curve_on_open_page(
    open_server: LiveServer, page: tuple[Page, Console]
) -> None:
    tab, console = page
    with open_server.client() as client:
        create_stream(client, "fresh", batches=0)
        tab.goto(f"{open_server.url}/#stream=fresh")
        tab.locator("#connection.live").wait_for()
        assert tab.locator("#bic-chart .empty").text_content() == "Waiting for the first batch…"
        push_batches(client, "fresh", 1, seed=3)
        # One point draws no line yet (a dot marks it): wait for the path, not its visibility.
        tab.locator("#bic-chart path.entropy-bic").nth(2).wait_for(state="attached")
    assert curve_points(tab) == ["1", "1", "1"]
    tab.locator("#collapse-chart rect.bar").first.wait_for()  # /collapse follows the event
    assert tab.locator("#collapse-chart rect.bar").count() == 2 + 4 + 6
    assert console.errors == []


def test_dashboard_draws_one_bar_per_latent(
    open_server: LiveServer, page: tuple[Page, Console]
) -> None:
    tab, console = page
    with open_server.client() as client:
        create_stream(client, "bars", batches=2)
    tab.goto(f"{open_server.url}/#stream=bars")
    tab.locator("#collapse-chart rect.bar").first.wait_for()
    assert tab.locator("#collapse-chart rect.bar").count() == 2 + 4 + 6
    assert tab.locator("#collapse-chart .ref-line.threshold").count() == 1
    labels = tab.locator("#collapse-chart .group-label").all_text_contents()
    assert [label.split(" ")[0] for label in labels] == ["H=2", "H=4", "H=6"]
    assert console.errors == []


def test_locked_dashboard_asks_for_token_then_loads(
    locked_server: LiveServer, page: tuple[Page, Console]
) -> None:
    tab, console = page
    with locked_server.client() as client:
        create_stream(client, "private", batches=2)
    tab.goto(f"{locked_server.url}/#stream=private")
    tab.locator("#token-dialog[open]").wait_for()
    tab.fill("#token-input", TOKEN)
    tab.click("#token-save")
    tab.locator("#connection.live").wait_for()
    assert tab.locator("#stream-name").text_content() == "private"
    assert curve_points(tab) == ["2", "2", "2"]
    assert tab.evaluate("localStorage.getItem('dimwatch.token')") == TOKEN
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "dashboard-token.png"), full_page=True)
    # The only errors are Chromium's reports of the 401 answers that opened the dialog.
    assert console.errors
    assert all("401" in error for error in console.errors), console.errors


def test_selection_change_is_marked_live(
    open_server: LiveServer, page: tuple[Page, Console]
) -> None:
    tab, console = page
    # Small-scale data with six intrinsic dimensions and a large step: the selection leaves the
    # initial H=2 within a few dozen steps (the expected changes are read back from the server).
    # A constant rate: the adaptive default's pick hysteresis would hold H=2 for longer.
    rows = ppca_data(400, 10, 6, noise=0.1, seed=1) * 0.3
    stream = {"name": "shifting", "learning_rate": 0.05, "adaptive": False, "optimizer": "adam"}
    with open_server.client() as client:
        response = client.post("/v1/streams", json=stream)
        assert response.status_code == 201, response.text
        push_rows(client, "shifting", rows[:10])
        tab.goto(f"{open_server.url}/#stream=shifting")
        tab.locator("#connection.live").wait_for()
        push_rows(client, "shifting", rows[10:])
        history = client.get("/v1/streams/shifting/history").json()["data"]
    changes = [
        (point["step"], previous["best_latent_dim"], point["best_latent_dim"])
        for previous, point in itertools.pairwise(history)
        if point["best_latent_dim"] != previous["best_latent_dim"]
    ]
    assert changes, "the stream never changed its selected H"
    tab.wait_for_function(
        "document.querySelector('#selection-chart path.selection-line')?.dataset.points === '40'"
    )
    assert tab.locator("#selection-chart circle.change-mark").count() == len(changes)
    expected = [f"step {step:,}: H {old} → {new}" for step, old, new in reversed(changes[-8:])]
    assert tab.locator("#changes li").all_text_contents() == expected
    step, old, new = changes[-1]
    assert tab.locator("#change-note").text_content() == f"step {step}: selected H {old} → {new}"
    assert console.errors == []


def test_decimate_keeps_each_bucket_extremes(
    open_server: LiveServer, page: tuple[Page, Console]
) -> None:
    tab, _ = page
    tab.goto(f"{open_server.url}/")
    kept = tab.evaluate(
        """async () => {
            const { decimate } = await import("./dashboard/charts.js");
            const pairs = Array.from({ length: 1000 }, (_, i) => [i, i === 500 ? -7 : i % 10]);
            return decimate(pairs, 10);
        }"""
    )
    assert len(kept) == 20
    assert [step for step, _ in kept] == sorted(step for step, _ in kept)
    assert [500, -7] in kept
    assert [9, 9] in kept


def test_nice_ticks_are_round_numbers(open_server: LiveServer, page: tuple[Page, Console]) -> None:
    tab, _ = page
    tab.goto(f"{open_server.url}/")
    ticks = tab.evaluate(
        """async () => {
            const { niceTicks } = await import("./dashboard/charts.js");
            return [niceTicks(0, 1000, 5), niceTicks(-3.2, 1.5, 5), niceTicks(2, 2, 5)];
        }"""
    )
    assert ticks == [[0, 200, 400, 600, 800, 1000], [-3, -2, -1, 0, 1], [2]]


def test_pick_panel_shows_path_and_provisional_pick(
    open_server: LiveServer, page: tuple[Page, Console]
) -> None:
    tab, console = page
    with open_server.client() as client:
        create_stream(client, "picky", batches=4)
        selection = client.get("/v1/streams/picky/selection").json()
    tab.goto(f"{open_server.url}/#stream=picky")
    tab.locator("#connection.live").wait_for()
    pieces = tab.locator("#pick-path .pick-piece")
    pieces.first.wait_for()
    # one segment per piece of the served path that starts below N = 10^6, in order
    shown = [p for p in selection["path"] if p["n_from"] < 1e6]
    assert pieces.all_text_contents() == [f"H={p['latent_dim']}" for p in shown]
    current = tab.locator("#pick-path .pick-piece.current")
    assert current.all_text_contents() == [f"H={selection['best_latent_dim']}"]
    assert tab.locator("#pick-marker").text_content() == "N = 10"
    status = tab.locator("#pick-status")
    assert not selection["converged"]  # four batches: far too early to be final
    assert status.text_content().startswith("provisional")
    assert "provisional" in (status.get_attribute("class") or "")
    tab.locator("#pick").screenshot(path=str(ARTIFACTS / "dashboard-pick.png"))
    assert console.errors == []


# ---- a phone-sized screen, and following the stream being pushed to -------------------------

PHONE = {"width": 375, "height": 812}


@pytest.fixture
def phone(browser: Browser) -> Iterator[tuple[Page, Console]]:
    context = browser.new_context(viewport=PHONE)
    new_page = context.new_page()
    new_page.set_default_timeout(TIMEOUT_MS)
    console = Console(errors=[])
    new_page.on("pageerror", lambda error: console.errors.append(f"uncaught: {error}"))
    new_page.on("console", lambda m: console.errors.append(m.text) if m.type == "error" else None)
    yield new_page, console
    context.close()


def boxes(page: Page, selector: str) -> list[dict[str, float]]:
    return page.eval_on_selector_all(
        selector,
        "nodes => nodes.map(n => { const b = n.getBoundingClientRect();"
        " return {left: b.left, right: b.right, top: b.top, bottom: b.bottom}; })",
    )


def overlapping(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and (b["top"] < a["bottom"])
    )


def test_dashboard_at_375px_fits_the_screen_with_readable_charts(
    open_server: LiveServer, phone: tuple[Page, Console]
) -> None:
    tab, console = phone
    with open_server.client() as client:
        for i in range(6):  # a list of streams longer than the screen is wide
            response = client.post("/v1/streams", json={"name": f"phone-other-{i}"})
            assert response.status_code == 201, response.text
        create_stream(client, "phone", batches=150)
    tab.goto(f"{open_server.url}/#stream=phone")
    tab.locator("#connection.live").wait_for()
    tab.locator("#collapse-chart rect.bar").first.wait_for()

    width = tab.evaluate("document.documentElement.scrollWidth")
    x_labels = tab.locator("#bic-chart .axis text[text-anchor='middle']:not(.axis-title)")
    labels = boxes(tab, "#collapse-chart .group-label, #collapse-chart .group-note")
    refs = boxes(tab, "#collapse-chart .ref-label")
    best = boxes(tab, "#best-h")[0]
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "dashboard-375.png"), full_page=True)

    assert width <= PHONE["width"]  # no sideways scroll
    assert x_labels.count() >= 2
    assert [(i, j) for i, j in itertools.combinations(range(len(labels)), 2)
            if overlapping(labels[i], labels[j])] == []  # fmt: skip
    assert all(0 <= box["left"] and box["right"] <= PHONE["width"] for box in labels + refs)
    assert best["bottom"] <= PHONE["height"]  # the selected H above the fold
    assert console.errors == []


def test_dashboard_follows_the_stream_being_pushed_to_until_one_is_picked(
    open_server: LiveServer, page: tuple[Page, Console]
) -> None:
    tab, console = page
    with open_server.client() as client:
        create_stream(client, "follow-older", batches=2)
        create_stream(client, "follow-newer", batches=2)
        tab.goto(f"{open_server.url}/")
        tab.wait_for_function(
            "document.querySelector('#stream-name').textContent === 'follow-newer'"
        )
        push_batches(client, "follow-older", 3, seed=5)  # now the older one is being pushed to
        tab.wait_for_function(
            "document.querySelector('#stream-name').textContent === 'follow-older'"
        )
        assert tab.locator("#follow-note").is_visible()
        tab.locator(".stream-link", has_text="follow-newer").click()  # a pick
        tab.locator("#connection.live").wait_for()
        push_batches(client, "follow-older", 3, seed=6)
        tab.wait_for_function(
            "document.querySelector('.stream-link[href$=\"follow-older\"] .stream-meta')"
            ".textContent.includes('step 8')"
        )  # the next poll saw the push, and the page stays on the pick
    assert tab.locator("#stream-name").text_content() == "follow-newer"
    assert tab.locator("#unpin").is_visible()
    assert console.errors == []


def test_deleted_stream_ends_the_live_view(
    open_server: LiveServer, page: tuple[Page, Console]
) -> None:
    tab, console = page
    with open_server.client() as client:
        create_stream(client, "doomed", batches=2)
        tab.goto(f"{open_server.url}/#stream=doomed")
        tab.locator("#connection.live").wait_for()
        assert client.delete("/v1/streams/doomed").status_code == 204
    tab.locator("#connection.ended").wait_for()
    assert tab.locator("#error").text_content() == "Stream doomed was deleted."
    assert console.errors == []


def test_stats_and_collapse_chart_show_the_fitted_spectrum(
    open_server: LiveServer, page: tuple[Page, Console]
) -> None:
    tab, console = page
    with open_server.client() as client:
        create_stream(client, "spectrum", batches=3)
        selection = client.get("/v1/streams/spectrum/selection").json()
    tab.goto(f"{open_server.url}/#stream=spectrum")
    tab.locator("#connection.live").wait_for()
    tab.locator("#collapse-chart .group-note.spectrum").first.wait_for()

    def stat(label: str) -> str | None:
        return tab.locator("#stats .stat", has_text=label).locator("dd").text_content()

    pick = next(m for m in selection["models"] if m["latent_dim"] == selection["best_latent_dim"])
    assert stat("effective rank") == f"{selection['effective_rank']:.1f}"
    assert stat("variance in top H") == f"{100 * pick['variance_share']:.1f}%"
    notes = tab.locator("#collapse-chart .group-note.spectrum").all_text_contents()
    shares = [f"{100 * m['variance_share']:.0f}%" for m in selection["models"]]
    ranks = [f"{m['effective_rank']:.1f}" for m in selection["models"]]
    # a group too narrow for the long note (H = 2 here) shows the share alone
    assert notes[0] == shares[0]
    assert (
        notes[1:] == [f"{s} of variance, rank {r}" for s, r in zip(shares, ranks, strict=True)][1:]
    )
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "dashboard-spectrum.png"), full_page=True)
    assert console.errors == []
