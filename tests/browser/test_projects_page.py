"""The projects page, the audit page and the runs' project in headless chromium: an admin
makes a project on the page and adds a member as its viewer (a refused change, the last
owner's, is said in words); a project's owner, no admin, reads their project's audit
trail and not another's, while a member who owns none is told so; the runs list and the
run page show each run's project, and the run page moves a run into another project.
Screenshots in test-output/projects-*.png."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.users import ensure_admin
from tests.browser.conftest import OUTPUT, console_errors
from tests.livesrv import live_server

pytestmark = pytest.mark.browser


@contextmanager
def _served(settings: Settings) -> Iterator[tuple[str, httpx.Client]]:
    """A live server and an API client of its first admin."""
    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
            yield url, api


def _user(api: httpx.Client, name: str) -> str:
    res = api.post("/api/users", json={"name": name})
    assert res.status_code == 201, res.text
    return str(res.json()["token"])


def _token(api: httpx.Client) -> str:
    return api.headers["Authorization"].removeprefix("Bearer ")


def _cells(page, rows: str) -> list[list[str]]:  # type: ignore[no-untyped-def]
    return [r.split("\t") for r in page.locator(f"{rows} tr").all_inner_texts()]


def test_an_admin_makes_a_project_and_adds_a_viewer(browser, settings: Settings  # type: ignore[no-untyped-def]
                                                    ) -> None:
    with _served(settings) as (url, api):
        eve_token = _user(api, "eve")
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = console_errors(page)
        page.goto(f"{url}/tokens#token={_token(api)}")
        page.click("nav.top a[href='/projects']")  # the nav leads there
        page.wait_for_selector("#project-rows tr[data-project='default']")
        assert page.locator("#project-table th").all_inner_texts() == [
            "name", "description", "your role", "runs", "created"]
        page.fill("#project-name", "vision")
        page.fill("#project-description", "V1-regularised models")
        page.click("#project-form button")
        page.wait_for_selector("#members:not([hidden]) tr[data-member='admin']")
        assert page.inner_text("#members-title") == "Members of vision"
        assert page.url == f"{url}/projects?project=vision"
        row = page.locator("#project-rows tr[data-project='vision']")
        assert "picked" in (row.get_attribute("class") or "")
        assert row.inner_text().split("\t")[1:4] == ["V1-regularised models", "owner", "0 runs"]
        assert row.locator("a", has_text="0 runs").get_attribute("href") == (
            "/?q=project+%3D+%22vision%22")
        # eve joins as a viewer
        page.fill("#member-name", "eve")
        page.select_option("#member-role", "viewer")
        page.click("#member-form button")
        page.wait_for_selector("tr[data-member='eve']")
        assert page.input_value("select[aria-label='role of eve']") == "viewer"
        assert page.input_value("select[aria-label='role of admin']") == "owner"
        assert page.inner_text("#members-error") == ""
        members = api.get("/api/projects/vision").json()["members"]
        assert [(m["user"], m["role"]) for m in members] == [("admin", "owner"), ("eve", "viewer")]
        # the only owner cannot step down: the page says why and shows the role unchanged
        page.select_option("select[aria-label='role of admin']", "viewer")
        page.wait_for_function("() => document.getElementById('members-error')"
                               ".textContent.includes('without an owner')")
        assert page.inner_text("#members-error").startswith("HTTP 409 — ")
        page.wait_for_function("() => document.querySelector(\"select[aria-label='role of "
                               "admin']\").value === 'owner'")
        # a name taken: said under the form
        page.fill("#project-name", "vision")
        page.click("#project-form button")
        page.wait_for_function("() => document.getElementById('project-error').textContent")
        assert "exists" in page.inner_text("#project-error")
        page.fill("#project-name", "")
        page.screenshot(path=str(OUTPUT / "projects-admin.png"), full_page=True)
        # eve reads it, as a viewer: the members without controls
        eve = browser.new_page(viewport={"width": 1280, "height": 700})
        eve.goto(f"{url}/projects?project=vision#token={eve_token}")
        eve.wait_for_selector("tr[data-member='eve']")
        assert eve.locator("#project-form, select[aria-label='role of eve']").count() == 0
        assert eve.locator("#member-form").is_hidden()
        assert _cells(eve, "#member-rows") == [["admin", "owner", ""], ["eve (you)", "viewer", ""]]
        # the browser logs each refused request (the two 409s above), nothing else
        assert [e for e in errors if "status of 409" not in e] == []


def _projects(api: httpx.Client) -> dict[str, int]:
    """vision (owned by olga) and audio (owned by pat), each with a run of the admin's."""
    for name, owner in (("vision", "olga"), ("audio", "pat")):
        res = api.post("/api/projects", json={"name": name, "owners": [owner]})
        assert res.status_code == 201, res.text
    runs = {}
    for name, project in (("v1-model", "vision"), ("a1-model", "audio")):
        res = api.post("/api/runs", json={"kind": "external", "name": name, "project": project})
        assert res.status_code == 201, res.text
        runs[name] = res.json()["id"]
    return runs


def test_a_project_owner_reads_their_projects_audit_trail(browser, settings: Settings  # type: ignore[no-untyped-def]
                                                          ) -> None:
    with _served(settings) as (url, api):
        olga, _, eve = _user(api, "olga"), _user(api, "pat"), _user(api, "eve")
        _projects(api)
        assert api.put("/api/projects/vision/members/eve", json={"role": "viewer"}).is_success
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors = console_errors(page)
        page.goto(f"{url}/projects#token={olga}")
        page.wait_for_selector("nav.top a[href='/audit']")  # an owner's nav leads there
        page.click("nav.top a[href='/audit']")
        page.wait_for_selector("#audit-rows tr[data-event]")
        assert page.url == f"{url}/audit"
        options = page.locator("#audit-project option").all_inner_texts()
        assert options == ["all my projects", "vision"]
        assert page.locator("#audit-table th").all_inner_texts() == [
            "when", "who", "action", "target", "project", "detail"]
        rows = _cells(page, "#audit-rows")
        assert {r[4] for r in rows} == {"vision"}, rows
        actions = [r[2] for r in rows]
        assert actions == ["project.member_set", "run.created", "project.member_set",
                           "project.created"], rows
        assert rows[0][1] == "admin" and rows[0][5] == "eve: none → viewer"
        assert rows[1][3].startswith("run ") and rows[1][3].endswith("(v1-model)")
        assert rows[2][5] == "olga: none → owner"
        text = page.inner_text("#audit-table")
        assert "audio" not in text and "a1-model" not in text and "pat" not in text
        assert page.is_disabled("#audit-newer") and page.is_disabled("#audit-older")
        page.select_option("#audit-project", "vision")
        page.wait_for_function("() => location.search.startsWith('?project=')")
        page.wait_for_selector("#audit-rows tr[data-event]")
        assert len(_cells(page, "#audit-rows")) == 4
        page.screenshot(path=str(OUTPUT / "projects-audit-owner.png"), full_page=True)
        # 25 events a page: Older goes on before the last one shown, Newer comes back
        for n in range(24):
            assert api.post("/api/runs", json={"kind": "external", "name": f"r{n}",
                                                "project": "vision"}).status_code == 201
        page.reload()
        page.wait_for_selector("#audit-rows tr[data-event]")
        assert len(_cells(page, "#audit-rows")) == 25 and page.is_enabled("#audit-older")
        first = page.inner_text("#audit-rows tr:first-child")
        page.click("#audit-older")
        page.wait_for_function("() => document.querySelectorAll('#audit-rows tr').length === 3")
        assert [r[2] for r in _cells(page, "#audit-rows")] == [
            "run.created", "project.member_set", "project.created"]
        assert page.is_disabled("#audit-older") and page.is_enabled("#audit-newer")
        page.click("#audit-newer")
        page.wait_for_function("() => document.querySelectorAll('#audit-rows tr').length === 25")
        assert page.inner_text("#audit-rows tr:first-child") == first
        assert errors == []
        # the API holds it too: another project's events are none of hers (a 403, as for
        # a project that does not exist)
        audio = api.get("/api/projects/audio").json()["id"]
        mine = httpx.get(f"{url}/api/audit", params={"project": audio},
                         headers={"Authorization": f"Bearer {olga}"})
        assert mine.status_code == 403
        assert mine.json()["detail"].startswith(f"project: you own no project {audio};")
        # a member who owns no project: one line, no error, and no Audit in the nav
        other = browser.new_page()
        other.goto(f"{url}/audit#token={eve}")
        other.wait_for_selector("#audit-none")
        assert "You own no project" in other.inner_text("#audit-none")
        assert other.locator("#page-error").count() == 0
        other.wait_for_selector("nav.top")
        assert other.locator("nav.top a[href='/audit']").count() == 0
        assert other.locator("nav.top a[href='/projects']").count() == 1


def test_the_runs_list_and_the_run_page_show_the_project(browser, settings: Settings  # type: ignore[no-untyped-def]
                                                         ) -> None:
    with _served(settings) as (url, api):
        olga = _user(api, "olga")
        _user(api, "pat")
        runs = _projects(api)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors = console_errors(page)
        page.goto(f"{url}/#token={_token(api)}")
        page.wait_for_selector("#run-rows tr")
        heads = page.locator("#run-head th").all_inner_texts()
        project = heads.index("Project")
        assert heads[project - 1] == "Owner"
        cells = {r[2]: r[project] for r in _cells(page, "#run-rows")}
        assert cells == {"v1-model": "vision", "a1-model": "audio"}
        page.screenshot(path=str(OUTPUT / "projects-runs-list.png"), full_page=True)
        page.click("#run-rows td.run-project a:text-is('vision')")  # the project's runs
        page.wait_for_function("() => document.querySelectorAll('#run-rows tr').length === 1")
        assert page.input_value("#q") == 'project = "vision"'

        # olga owns vision (and edits default, as every member): she moves the admin's run
        run = runs["v1-model"]
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors += console_errors(page)
        page.goto(f"{url}/runs/{run}#token={olga}")
        page.wait_for_selector("#run[data-manage='yes']")
        assert page.inner_text("#run-project") == "vision"
        assert "external · project vision · owner admin" in page.inner_text("#run-meta")
        assert page.locator("#move-project option").all_inner_texts() == ["default", "vision"]
        assert page.input_value("#move-project") == "vision" and page.is_disabled("#move")
        page.screenshot(path=str(OUTPUT / "projects-run-page.png"), full_page=True)
        page.select_option("#move-project", "default")
        page.click("#move")
        page.wait_for_function(
            "() => document.getElementById('run-project').textContent === 'default'")
        assert api.get(f"/api/runs/{run}").json()["project"] == "default"
        assert page.inner_text("#manage-error") == ""
        trail = httpx.get(f"{url}/api/audit", headers={"Authorization": f"Bearer {olga}"}).json()
        # out of her project: the event of the project it left
        assert trail[0]["action"] == "run.moved_out" and trail[0]["target_id"] == run

        # now in default, where she is an editor, it is the admin's run: no controls for her
        page.goto(f"{url}/runs/{run}")
        page.wait_for_selector("#run[data-manage]")
        assert page.get_attribute("#run", "data-manage") == "no"
        assert page.locator("#move-form").is_hidden()
        # the API's refusal is said on the page, as the server words it
        page.goto(f"{url}/runs/{runs['a1-model']}#token={_token(api)}")
        page.wait_for_selector("#run[data-manage='yes']")
        page.evaluate("() => { const s = document.getElementById('move-project');"
                      " s.append(new Option('nowhere', 'nowhere')); s.value = 'nowhere';"
                      " document.getElementById('move').disabled = false; }")
        page.click("#move")
        page.wait_for_function("() => document.getElementById('manage-error').textContent")
        assert page.inner_text("#manage-error").startswith("HTTP 422 — project: ")
        assert [e for e in errors if "status of 422" not in e] == []

        # the submit page sends the project picked; default first
        page.goto(f"{url}/submit?kind=external")
        page.wait_for_selector("#run-project")
        assert page.input_value("#run-project") == "default"
        options = page.locator("#run-project option").all_inner_texts()
        assert options == ["default", "vision", "audio"]
        page.screenshot(path=str(OUTPUT / "projects-submit.png"))
        page.select_option("#run-project", "vision")
        page.fill("#run-name", "from-the-form")
        page.click("#submit")
        page.wait_for_url(f"{url}/runs/*")
        made = api.get(f"/api/runs/{page.url.rsplit('/', 1)[1]}").json()
        assert (made["name"], made["project"]) == ("from-the-form", "vision")
