"""The tokens page's scopes in headless chromium: an admin creates a member token and a
worker token (the worker one shown with how a worker uses it), the list shows each one's
scope, the worker token claims a run over /api/worker and is refused on /api/runs; a
member's form has no worker option. Screenshot in test-output/tokens-scope.png."""

from __future__ import annotations

import httpx
import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.models import User
from core.store.runs import create_run
from core.store.users import ensure_admin
from tests.browser.conftest import OUTPUT, console_errors
from tests.livesrv import live_server

pytestmark = pytest.mark.browser


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _rows(page) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """The token table's rows: name, scope, state."""
    return [[c[0], c[1], c[3]] for c in
             (r.split("\t") for r in page.locator("#token-rows tr").all_inner_texts())]


def test_an_admin_issues_a_worker_token_from_the_tokens_page(
        browser, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            admin = ensure_admin(s)
            run = create_run(s, owner=s.query(User).one(), kind="train", name="t",
                             config={}).id
        assert admin is not None
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = console_errors(page)
        page.goto(f"{url}/tokens#token={admin}")
        page.wait_for_selector("#token-rows tr")
        assert page.locator("#token-table th").all_inner_texts()[:4] == [
            "name", "scope", "created", "state"]
        page.fill("#token-name", "laptop")
        page.click("#token-form button")
        member = page.wait_for_selector("#new-token-value").inner_text()
        assert page.locator("#new-token-use").count() == 0
        page.wait_for_function("() => document.getElementById('token-rows').rows.length === 2")
        page.fill("#token-name", "gpu-box")
        page.check("#token-worker")
        page.click("#token-form button")
        page.wait_for_function("() => document.getElementById('token-rows').rows.length === 3")
        worker = page.inner_text("#new-token-value")
        assert worker.startswith("nrw_") and member.startswith("nr_")
        assert "Worker token “gpu-box”" in page.inner_text("#new-token")
        assert page.inner_text("#new-token-use") == (
            f"NEUROREG_API_URL={url} NEUROREG_WORKER_TOKEN={worker} neuroreg worker")
        assert not page.is_checked("#token-worker")  # the next token is a member's again
        assert _rows(page) == [["first-start", "member", "active"],
                               ["laptop", "member", "active"],
                               ["gpu-box", "worker", "active"]]
        page.screenshot(path=str(OUTPUT / "tokens-scope.png"), full_page=True)
        assert errors == []

        claimed = httpx.post(f"{url}/api/worker/runs/{run}/claim", json={"worker": "w@box"},
                             headers=_bearer(worker))
        assert claimed.status_code == 200 and claimed.json()["kind"] == "train"
        assert httpx.get(f"{url}/api/runs", headers=_bearer(worker)).status_code == 403
        assert httpx.get(f"{url}/api/runs", headers=_bearer(member)).status_code == 200
        assert httpx.post(f"{url}/api/worker/runs/{run}/beat",
                          headers=_bearer(member)).status_code == 403

        # a member's page has the scope column but no worker option
        bob = httpx.post(f"{url}/api/users", json={"name": "bob"},
                         headers=_bearer(admin)).json()["token"]
        other = browser.new_page()
        other.goto(f"{url}/tokens#token={bob}")
        other.wait_for_selector("#token-rows tr")
        assert _rows(other) == [["first", "member", "active"]]
        assert other.locator("#token-worker").count() == 0
        assert "worker token" not in other.inner_text("#page").lower()
