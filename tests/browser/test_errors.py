"""Errors said in the page, in headless chromium: a missing run, a run of another kind at a
study's address, a request the server refuses or never answers — on every page, a clear
message with the status and the server's detail (as text), never an empty skeleton; and
/docs drawn with nothing from another origin. Screenshots in test-output/."""

from __future__ import annotations

import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.models import RunStatus
from core.store.users import ensure_admin
from tests.browser.conftest import OUTPUT
from tests.livesrv import live_server

pytestmark = pytest.mark.browser

# the page's sections other than the error box that show: none, once a page failed
SHOWN = ("() => [...document.querySelectorAll('main > section')]"
         ".filter((s) => !s.hidden && s.id !== 'page-error').map((s) => s.id)")


def _page(browser, url: str, token: str, path: str):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{url}{path}#token={token}")
    return page


def _stored(settings: Settings, kind: str, status: RunStatus = RunStatus.succeeded) -> int:
    from tests.server.test_train_api import _stored_run

    return _stored_run(settings, kind, status)


def test_a_missing_run_says_so_instead_of_a_full_bar_and_empty_sections(browser, settings: Settings  # type: ignore[no-untyped-def]
                                                                       ) -> None:
    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        page = _page(browser, url, token, "/runs/9999")
        box = page.wait_for_selector("#page-error")
        assert page.inner_text("#page-error h1") == "Run 9999 not found"
        assert "HTTP 404 — run 9999 does not exist" in box.inner_text()
        assert page.evaluate(SHOWN) == []  # no progress bar, no empty Logs or Artifacts
        assert page.title() == "neuroreg · Run 9999 not found"
        page.screenshot(path=str(OUTPUT / "error-missing-run.png"), full_page=True)
        study = _page(browser, url, token, "/studies/9999")
        study.wait_for_selector("#page-error")
        assert study.inner_text("#page-error h1") == "Study 9999 not found"
        assert study.evaluate(SHOWN) == []
        compare = _page(browser, url, token, "/compare?runs=9999")  # named, never made
        compare.wait_for_function("() => document.getElementById('compare-error').textContent")
        assert compare.inner_text("#compare-error") == (
            "There is no run #9999: deleted, or never made.")


def test_a_study_address_of_a_train_run_names_its_kind_and_links_its_page(  # type: ignore[no-untyped-def]
        browser, settings: Settings) -> None:
    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        train = _stored(settings, "train")
        page = _page(browser, url, token, f"/studies/{train}")
        box = page.wait_for_selector("#page-error")
        text = box.inner_text()
        assert f"run {train} is a train run, not a study" in text
        assert page.get_attribute("#run-page-link", "href") == f"/runs/{train}"
        assert page.evaluate(SHOWN) == []  # not the study's empty skeleton
        page.screenshot(path=str(OUTPUT / "error-not-a-study.png"), full_page=True)
        page.click("#run-page-link")
        page.wait_for_function(
            "() => document.getElementById('run-status').textContent === 'succeeded'")
        assert page.locator("#page-error").count() == 0


# page → the request it cannot do without, made to fail
PAGES = [("/", "**/api/runs?*"), ("/runs/{id}", "**/api/runs/{id}"),
         ("/studies/{study}", "**/api/studies/{study}"), ("/compare?runs={id}", "**/api/runs?*"),
         ("/leaderboard", "**/api/leaderboard?*"), ("/submit", "**/api/kinds"),
         ("/tokens", "**/api/tokens"), ("/users", "**/api/users")]


@pytest.mark.parametrize(("path", "pattern"), PAGES, ids=[p for p, _ in PAGES])
def test_a_refused_request_shows_its_status_and_the_servers_detail_as_text(  # type: ignore[no-untyped-def]
        browser, settings: Settings, path: str, pattern: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        ids = {"id": _stored(settings, "train"), "study": _stored(settings, "study")}
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.route(pattern.format(**ids), lambda route: route.fulfill(
            status=500, json={"detail": "the database is down <b>really</b>"}))
        page.goto(f"{url}{path.format(**ids)}#token={token}")
        said = "HTTP 500 — the database is down <b>really</b>"  # markup as text
        page.wait_for_function("(said) => [...document.querySelectorAll('[role=alert]')]"
                               ".some((e) => e.textContent.includes(said))", arg=said)
        assert page.locator("main b").count() == 0
        if page.locator("#page-error").count():  # the page could not load at all
            assert page.evaluate(SHOWN) == []
        name = path.strip("/").split("/")[0].split("?")[0] or "runs"
        page.screenshot(path=str(OUTPUT / f"error-500-{name}.png"), full_page=True)


def test_a_run_page_without_an_answer_says_the_server_did_not_answer(browser, settings: Settings  # type: ignore[no-untyped-def]
                                                                    ) -> None:
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        run = _stored(settings, "train")
        page = browser.new_page()
        page.route(f"**/api/runs/{run}", lambda route: route.abort())
        page.goto(f"{url}/runs/{run}#token={token}")
        page.wait_for_selector("#page-error")
        assert page.inner_text("#page-error h1") == "No answer from the server"
        assert "the server did not answer" in page.inner_text("#page-error-detail")


def test_the_api_docs_draw_offline_from_our_own_origin(browser, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        foreign: list[str] = []
        blocked: list[str] = []

        def offline(route) -> None:  # type: ignore[no-untyped-def]
            if route.request.url.startswith(url):
                route.continue_()
            else:  # no network: nothing from another origin
                foreign.append(route.request.url)
                route.abort()

        page.route("**/*", offline)
        page.on("console", lambda m: blocked.append(m.text)
                if "Content Security Policy" in m.text else None)
        page.goto(f"{url}/docs")
        page.wait_for_selector(".opblock-summary-path[data-path='/api/runs/{run_id}']")
        assert page.locator(".opblock").count() > 50  # every route, drawn
        assert foreign == [] and blocked == []
        page.screenshot(path=str(OUTPUT / "api-docs.png"))
        assert page.request.get(f"{url}/redoc").status == 404  # off: its workers need blob:


# page → a request for one part of it, made to fail: the part is named, the rest drawn
PARTS = [("/runs/{id}", "**/api/runs/{id}/artifacts", "The artifacts could not be drawn", "run"),
         ("/studies/{study}", "**/api/runs/{sim}/matrices/neural-model?*",
          "S_target could not be drawn", "page")]


@pytest.mark.parametrize(("path", "pattern", "title", "drawn"), PARTS, ids=[p for p, *_ in PARTS])
def test_a_part_that_failed_is_named_at_the_top_and_the_rest_is_drawn(  # type: ignore[no-untyped-def]
        browser, settings: Settings, path: str, pattern: str, title: str, drawn: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        from tests.server.test_train_api import _stored_run

        sim = _stored(settings, "similarity")
        ids = {"id": _stored(settings, "train"), "sim": sim,
               "study": _stored_run(settings, "study", config={"target_run": sim})}
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.route(pattern.format(**ids), lambda route: route.fulfill(
            status=500, json={"detail": "the disk is full"}))
        page.goto(f"{url}{path.format(**ids)}#token={token}")
        box = page.wait_for_selector("#page-error")
        assert page.inner_text("#page-error h2") == title
        assert "HTTP 500 — the disk is full" in box.inner_text()
        assert drawn in page.evaluate(SHOWN)  # the page itself is still there
        name = path.strip("/").split("/")[0]
        page.screenshot(path=str(OUTPUT / f"error-part-{name}.png"), full_page=True)
