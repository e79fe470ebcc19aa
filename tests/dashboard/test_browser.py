"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` package, driven by
Playwright through ``executable_path``; no browser is downloaded) through the main flows.

One server per module over the fixture project. Each page is written as a screenshot to
``reports/dashboard-screens/`` (or ``$INTERPLAB_SCREENS``) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from conftest import TOKEN
from interplab.store import Project

ROOT = Path(__file__).resolve().parents[2]
SCREENS = Path(os.environ.get("INTERPLAB_SCREENS", ROOT / "reports" / "dashboard-screens"))


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
if _chromium() is None:
    pytest.skip(
        "no Chromium on PATH: install Debian's package (`apt-get install chromium`, or `make setup` "
        "as root); these tests never download a browser",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def server(built):
    from interplab import dashboard

    root, _ = built
    running = dashboard.start(root, token=TOKEN)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server.url)  # the token URL: redirected, the cookie set
    assert pg.url == server.base + "/"
    yield pg
    context.close()
    assert errors == [], errors  # no script error on any page


def shot(page, name: str) -> Path:
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_overview_and_log_pages(page, server):
    assert page.locator("h1").first.inner_text() == "Project overview"
    assert page.locator(".finding").count() >= 1
    shot(page, "01-overview")
    page.click("header nav >> text=Log")
    page.wait_for_selector("#hypothesis-form")
    shot(page, "02-log")


def test_filter_the_runs_table(page, built):
    _, ids = built
    page.click("header nav >> text=Runs")
    page.wait_for_url("**/runs")
    assert page.locator("tr.run-row").count() == len(ids)
    page.select_option("select[name=status]", "failed")
    page.click("#apply")
    page.wait_for_url("**/runs?*status=failed*")
    rows = page.locator("tr.run-row")
    assert rows.count() == 1 and rows.first.get_attribute("data-run") == str(ids["failed"])
    shot(page, "03-runs-filtered")


def test_open_a_run_hover_a_cell_and_star_its_figure(page, built):
    root, ids = built
    page.click("header nav >> text=Runs")
    page.click(f"tr.run-row[data-run='{ids['grid']}'] >> a")
    page.wait_for_selector(".heatmaps")
    sync_api.expect(page.locator(".figure img")).to_have_js_property("complete", True)
    assert page.evaluate("document.querySelector('.figure img').naturalWidth") > 100
    page.locator(".heatmaps rect.cell").nth(21).hover()
    info = page.locator(".hm-info").inner_text()
    assert "95% CI [" in info and "p (holm)" in info
    star = page.locator("button.star[data-artifact='result.json']")
    star.click()
    sync_api.expect(star).to_contain_text("starred")
    shot(page, "04-run")
    project = Project.open(root)
    result = project.run(ids["grid"]).artifact("result")
    starred = [n for n in project.notes(kind="highlight") if n.run_id == ids["grid"]]
    assert result is not None and starred and starred[-1].artifact_sha256 == result.sha256
    project.close()


def test_compare_two_runs(page, built):
    _, ids = built
    page.click("header nav >> text=Runs")
    page.wait_for_url("**/runs")
    assert page.locator("#compare").is_disabled()
    page.check(f"input.pick[value='{ids['grid']}']")
    page.check(f"input.pick[value='{ids['grid2']}']")
    page.click("#compare")
    page.wait_for_url("**/runs/compare?*")
    assert f"Run {ids['grid']} beside run {ids['grid2']}" in page.locator("h1").inner_text()
    assert page.locator("table.diff").count() >= 1
    shot(page, "05-compare")


def test_add_a_hypothesis_from_the_log(page, built):
    root, _ = built
    page.goto(page.url.split("/", 3)[0] + "//" + page.url.split("/")[2] + "/log")
    text = "the name mover needs the position of the second name"
    page.fill("#hypothesis-form textarea[name=text]", text)
    page.click("#hypothesis-form button")
    page.wait_for_selector(f"#hypotheses >> text={text}")
    project = Project.open(root)
    assert project.hypotheses()[-1].text == text and project.verify() == []
    project.close()
    shot(page, "06-log-hypothesis-added")


def test_open_a_graph_and_click_a_node(page, built):
    page.click("header nav >> text=Graphs")
    shot(page, "07-graphs")
    page.click("a.graph-link >> text=graphs/mary.json")
    page.wait_for_selector("#graph-svg circle.gnode")
    assert page.locator("circle.gnode").count() == 10
    page.click("circle.gnode[data-node='1_42_5']")
    assert page.locator("#node-title").inner_text() == "1_42_5"
    assert page.locator("#node-label").inner_text() == "say a name"
    incoming = page.locator("ul.edges-incoming li")
    assert incoming.count() == 2 and "+1.75 from 0_17_1" in incoming.first.inner_text()
    assert page.locator("ul.edges-outgoing li").count() == 1
    assert page.locator("line.gedge").count() == 3
    shot(page, "08-graph-node")
    page.click("ul.edges-incoming a >> text=0_17_1")  # walk the graph through its edges
    assert page.locator("#node-label").inner_text() == "names of women"


def test_feature_browser_pages(page, built):
    _, ids = built
    page.click("header nav >> text=Dictionaries")
    page.click(f"a[href*='run%3A{ids['features']}']")
    page.wait_for_url("**/dictionaries/index?*")
    page.wait_for_selector("#features")
    assert page.locator("#features tr").count() == 101  # header + one page of 100
    shot(page, "09-dictionary")
    page.click("#features a >> text=page")
    page.wait_for_selector(".example")
    assert page.locator(".hist .bar").count() == 8
    shot(page, "10-feature")


def test_a_running_run_turns_done_without_a_reload(page, built):
    root, _ = built
    project = Project.open(root)
    started, finish = threading.Event(), threading.Event()
    box: dict[str, int] = {}

    def job() -> None:
        with project.recording("slow_job", model_info={"name": "tiny"}) as run:
            box["id"] = int(run.id or 0)
            started.set()
            finish.wait(30)
            run.finish(None)

    worker = threading.Thread(target=job)
    worker.start()
    try:
        assert started.wait(10)
        base = page.url.rstrip("/")
        page.goto(f"{base}/runs/{box['id']}")
        assert page.locator("#run-status").inner_text() == "running"
        page.evaluate("window.__still_here = true")
        sync_api.expect(page.locator("#run-elapsed")).to_contain_text("running for")
        shot(page, "11-run-live")
        finish.set()
        worker.join(10)
        sync_api.expect(page.locator("#run-status")).to_have_text("done", timeout=10_000)
        assert page.evaluate("window.__still_here === true")  # swapped in place: no reload
    finally:
        finish.set()
        worker.join(10)
        project.close()
