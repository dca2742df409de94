"""A study's report in headless chromium: opened from file:// with every request to a
network refused, each figure is a drawn Plotly plot and the tables are there, with no
console error; the study page's Report button downloads the same report, and says why a
study with nothing finished has none. Screenshots go to test-output/."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.models import User
from core.store.runs import create_run
from core.store.users import ensure_admin
from tests.browser.conftest import OUTPUT, figure_problems
from tests.browser.test_pages import _study_with_results
from tests.conftest import admin_client
from tests.livesrv import live_server
from tests.server.test_frontier_api import stored_study

pytestmark = pytest.mark.browser

TABLES = ("gamma-table", "paired-tests", "frontier-table", "study-conditions", "tap-r")


def _offline(browser, index: Path):  # type: ignore[no-untyped-def]
    """A page on ``index`` that may read files and nothing else; its console errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    refused: list[str] = []

    def only_files(route) -> None:  # type: ignore[no-untyped-def]
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", only_files)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(index.as_uri())
    return page, errors, refused


def test_a_report_opens_from_file_with_no_network_and_draws_every_figure(
        browser, settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    OUTPUT.mkdir(exist_ok=True)
    with admin_client(settings) as client:
        study = _study_with_results(settings, stimuli=100, models=False)
        res = client.get(f"/api/studies/{study}/report")
    assert res.status_code == 200, res.text
    with zipfile.ZipFile(io.BytesIO(res.content)) as z:
        z.extractall(tmp_path)
    index = tmp_path / f"study-{study}-report" / "index.html"
    page, errors, refused = _offline(browser, index)
    page.wait_for_function("() => document.documentElement.dataset.reportDrawn")
    figures = page.evaluate("() => window.NEUROREG_REPORT.figures.map((f) => f.file)")
    # the study page's figures: noise, medians, budget, AutoAttack, mCE, corruptions, α,
    # the frontier, the training curve and S_target
    for fig in ("fig4", "fig5-l2", "fig5-linf", "fig5-budget-l2", "fig-autoattack-linf",
                "fig-mce", "fig-corruptions-none", "fig6", "frontier", "study-curve-test_acc",
                "fig-target-S_target_neural_model"):
        assert fig in figures
    drawn = page.evaluate(
        "() => [...document.querySelectorAll('.report-figure > .chart')].map((d) =>"
        " [d.id, d.classList.contains('js-plotly-plot') && d.data.length > 0"
        " && d.querySelectorAll('.main-svg .trace, .main-svg .hm image').length > 0])")
    assert len(drawn) == len(figures) and all(ok for _, ok in drawn), [d for d in drawn if not d[1]]
    assert page.evaluate("() => document.getElementById('fig-fig4').data.some((t) =>"
                         " t.name === 'None (n=3)')")
    for table in TABLES:
        assert page.locator(f"#{table} tbody tr").count() >= 1, table
    assert "γ5" in page.locator("#gamma-table").inner_text()
    assert page.locator("#report-commands").inner_text().count("neuroreg") == 4
    assert figure_problems(page) == []
    # the figure files are links beside each figure, relative: they open from the folder
    assert page.locator("a[href='figures/fig4.pdf']").count() == 1
    assert errors == [] and refused == []
    page.screenshot(path=str(OUTPUT / "report.png"), full_page=True)
    # a figure is interactive: the pointer on a data point shows its values
    page.mouse.move(*_data_point(page, "fig-fig4", "None (n=3)"), steps=4)
    page.wait_for_selector("#fig-fig4 .hoverlayer .hovertext")
    assert "None (n=3)" in page.locator("#fig-fig4 .hoverlayer").text_content()
    page.context.close()


def _data_point(page, figure: str, trace: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Where on the page the middle point of the figure's trace named ``trace`` is drawn
    (the figures hover the closest point, within a few pixels of the pointer)."""
    return tuple(page.evaluate("""([id, name]) => {
      const div = document.getElementById(id), full = div._fullLayout;
      const t = div.data.find((d) => d.name === name), k = Math.floor(t.x.length / 2);
      const box = div.getBoundingClientRect();
      return [box.left + full.xaxis._offset + full.xaxis.d2p(t.x[k]),
              box.top + full.yaxis._offset + full.yaxis.d2p(t.y[k])];
    }""", [figure, trace]))


def test_the_study_page_button_downloads_the_report_or_says_why_not(
        browser, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        ids = stored_study(settings)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/studies/{ids['study']}#token={token}")
        page.wait_for_selector("#study-conditions")
        page.screenshot(path=str(OUTPUT / "study-report-button.png"))
        with page.expect_download() as download:
            page.click("#study-report")
        assert download.value.suggested_filename == f"study-{ids['study']}-report.zip"
        with zipfile.ZipFile(download.value.path()) as z:
            names = z.namelist()
        top = f"study-{ids['study']}-report"
        assert f"{top}/index.html" in names and f"{top}/figures/fig4.pdf" in names
        assert f"{top}/figures/frontier.svg" in names
        assert f"{top}/tables/frontier-table.csv" in names
        page.wait_for_function("() => document.getElementById('study-report-note')"
                               ".textContent.includes('unzip it')")
        # a study with nothing finished: the server's reason, beside the button
        with session_scope(settings.db_url) as s:
            waiting = create_run(s, owner=s.query(User).first(), kind="study", name="w", config={})
            create_run(s, owner=waiting.owner, kind="train", name="t", parent_id=waiting.id,
                       config={})
            waiting_id = waiting.id
        page.goto(f"{url}/studies/{waiting_id}")
        page.wait_for_selector("#study-conditions")
        page.click("#study-report")
        note = page.locator("#study-report-note.error")
        note.wait_for()
        assert "HTTP 409" in note.inner_text() and "nothing finished" in note.inner_text()
        page.screenshot(path=str(OUTPUT / "study-report-409.png"))
