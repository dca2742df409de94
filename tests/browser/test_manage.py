"""Managing a run from its page in headless chromium: its owner renames it, adds and
removes tags (a refused tag says why), deletes it after a confirmation (refused while it
runs, with the API's reason); another member sees its tags but no controls, an admin
gets them; the links between a study, its runs and their evaluations. Screenshots in
test-output/."""

from __future__ import annotations

import httpx
import pytest

from core.lifecycle import finish_run
from core.settings import Settings
from core.store.db import session_scope
from core.store.models import RunStatus, User
from core.store.runs import create_run
from core.store.users import ensure_admin
from tests.browser.conftest import OUTPUT
from tests.livesrv import live_server

pytestmark = pytest.mark.browser
CHIPS = "() => [...document.querySelectorAll('#run-tag-list .tag a')].map((a) => a.textContent)"


def _member(url: str, admin: str, name: str) -> str:
    res = httpx.post(f"{url}/api/users", json={"name": name},
                     headers={"Authorization": f"Bearer {admin}"})
    assert res.status_code == 201, res.text
    return str(res.json()["token"])


def test_the_owner_renames_tags_and_deletes_a_run_from_its_page(browser, settings: Settings  # type: ignore[no-untyped-def]
                                                                ) -> None:
    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            admin = ensure_admin(s)
        ada = _member(url, admin, "ada")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ada}"}) as api:
            run = api.post("/api/runs", json={"kind": "external", "name": "first try"}).json()
            assert api.patch(f"/api/runs/{run['id']}", json={"tags": ["fig4"]}).status_code == 200
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{url}/runs/{run['id']}#token={ada}")
            page.wait_for_selector("#run[data-manage='yes']")
            assert page.evaluate(CHIPS) == ["fig4"]
            assert page.get_attribute("#run-tag-list .tag a", "href") == "/?tag=fig4"
            # rename: the title follows, the name is stored as typed (markup as text)
            page.click("#rename")
            page.fill("#rename-input", "second try <i>")
            page.click("#rename-form button:not([type=button])")
            page.wait_for_function("() => document.getElementById('run-title').textContent"
                                   ".endsWith('second try <i>')")
            assert page.locator("#rename-form").is_hidden()
            assert api.get(f"/api/runs/{run['id']}").json()["name"] == "second try <i>"
            # tags: two added at once, one removed; a refused one says why
            page.fill("#tag-input", "cpu, smoke")
            page.click("#tag-form button")
            page.wait_for_function(f"() => ({CHIPS})().length === 3")
            page.click("button[aria-label='remove tag fig4']")
            page.wait_for_function(f"() => !({CHIPS})().includes('fig4')")
            assert sorted(api.get(f"/api/runs/{run['id']}").json()["tags"]) == ["cpu", "smoke"]
            page.fill("#tag-input", "<b>")
            page.click("#tag-form button")
            page.wait_for_function("() => document.getElementById('manage-error').textContent")
            assert page.inner_text("#manage-error").startswith("HTTP 422 — tags.")
            assert page.input_value("#tag-input") == "<b>"  # kept, to correct
            # delete: a confirmation first; Keep it keeps it
            page.click("#delete")
            page.wait_for_selector("#delete-dialog[open]")
            assert f"#{run['id']}" in page.inner_text("#delete-what")
            page.screenshot(path=str(OUTPUT / "run-delete-dialog.png"))
            page.click("#delete-keep")
            page.wait_for_selector("#delete-dialog:not([open])", state="attached")
            assert api.get(f"/api/runs/{run['id']}").status_code == 200
            # a running run: the API refuses, the page says its reason
            page.click("#delete")
            page.click("#delete-confirm")
            page.wait_for_function("() => document.getElementById('manage-error').textContent"
                                   ".includes('HTTP 409')")
            assert "cancel it before deleting" in page.inner_text("#manage-error")
            page.screenshot(path=str(OUTPUT / "run-manage.png"), full_page=True)
            assert api.post(f"/api/runs/{run['id']}/finish", json={}).status_code == 200
            page.reload()
            page.wait_for_selector("#run[data-manage='yes']")
            page.click("#delete")
            page.click("#delete-confirm")
            page.wait_for_url(f"{url}/?deleted={run['id']}")
            assert page.inner_text("#deleted-note") == f"Run #{run['id']} was deleted."
            assert api.get(f"/api/runs/{run['id']}").status_code == 404


def test_only_the_owner_or_an_admin_gets_the_controls(browser, settings: Settings  # type: ignore[no-untyped-def]
                                                      ) -> None:
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            admin = ensure_admin(s)
        ada, bob = _member(url, admin, "ada"), _member(url, admin, "bob")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ada}"}) as api:
            run = api.post("/api/runs", json={"kind": "external", "name": "ada's"}).json()
            api.patch(f"/api/runs/{run['id']}", json={"tags": ["mine"]})
            other = browser.new_page()
            other.goto(f"{url}/runs/{run['id']}#token={bob}")
            other.wait_for_selector("#run[data-manage='no']")
            assert other.evaluate(CHIPS) == ["mine"]  # tags shown to everyone
            assert other.locator("#run-manage").is_hidden()
            assert other.locator("#tag-form").is_hidden()
            assert other.locator("#run-tag-list button").count() == 0
            boss = browser.new_page()
            boss.goto(f"{url}/runs/{run['id']}#token={admin}")
            boss.wait_for_selector("#run[data-manage='yes']")
            assert boss.locator("#run-manage").is_visible()
            assert boss.locator("button[aria-label='remove tag mine']").is_visible()


def test_a_run_links_to_its_study_its_model_and_its_evaluations(browser, settings: Settings  # type: ignore[no-untyped-def]
                                                                ) -> None:
    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            admin = ensure_admin(s)
            owner = s.query(User).first()
            study = create_run(s, owner=owner, kind="study", name="grid", config={})
            train = create_run(s, owner=owner, kind="train", name="neural seed 0", config={},
                               parent_id=study.id)
            evaluation = create_run(s, owner=owner, kind="evaluate", name="eval of seed 0",
                                    config={}, parent_id=study.id, input_run_id=train.id)
            for r in (train, evaluation):
                finish_run(s, r.id, RunStatus.succeeded)
            ids = {"study": study.id, "train": train.id, "eval": evaluation.id}
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/runs/{ids['train']}#token={admin}")
        page.wait_for_selector("#run-links a.reader")
        assert page.get_attribute("#parent-link", "href") == f"/studies/{ids['study']}"
        links = page.inner_text("#run-links")
        assert f"part of the study #{ids['study']} “grid”" in links
        assert f"evaluated by run #{ids['eval']} (succeeded)" in links
        assert page.get_attribute("a.reader", "href") == f"/runs/{ids['eval']}"
        page.screenshot(path=str(OUTPUT / "run-links-train.png"))
        page.click("a.reader")
        page.wait_for_selector("#input-run")
        assert page.get_attribute("#input-run", "href") == f"/runs/{ids['train']}"
        links = page.inner_text("#run-links")
        assert f"evaluates the model of run #{ids['train']} “neural seed 0”" in links
        assert page.get_attribute("#parent-link", "href") == f"/studies/{ids['study']}"
        page.click("#parent-link")
        page.wait_for_url(f"{url}/studies/{ids['study']}")
