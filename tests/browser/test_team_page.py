"""The users page (an admin's team and audit trail) in headless chromium: an admin adds a
user (the token shown once), disables her (her token refused at once), lists and revokes
her tokens, and reads it all in the audit trail; the nav leads an admin there; a member
sees none of it and is told whose page it is. Screenshot in test-output/."""

from __future__ import annotations

import httpx
import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.models import User
from core.store.users import ensure_admin, issue_token
from tests.browser.conftest import OUTPUT
from tests.livesrv import live_server

pytestmark = pytest.mark.browser


def _me(url: str, token: str) -> int:
    return httpx.get(f"{url}/api/me", headers={"Authorization": f"Bearer {token}"}).status_code


def test_an_admin_cuts_a_user_off_from_the_users_page(browser, settings: Settings  # type: ignore[no-untyped-def]
                                                       ) -> None:
    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
            issue_token(s, user=s.query(User).one(), name="gpu-box", scope="worker")
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("dialog", lambda d: d.accept())  # "Disable eve?"
        page.goto(f"{url}/tokens#token={token}")
        page.click("nav.top a[href='/users']")  # the nav leads an admin to the users page
        page.wait_for_selector("#user-rows tr")
        assert page.url == f"{url}/users"
        page.fill("#user-name", "eve")
        page.click("#user-form button")
        eve = page.wait_for_selector("#new-user-token").inner_text()
        assert _me(url, eve) == 200
        page.click("button[aria-label='disable eve']")
        page.wait_for_selector("button[aria-label='enable eve']")
        assert _me(url, eve) == 401
        assert "disabled" in page.inner_text("#user-rows tr.disabled")
        page.click("button[aria-label='tokens of eve']")
        page.click("button[aria-label=\"revoke eve's token first\"]")
        page.wait_for_function("() => [...document.querySelectorAll('.user-tokens')]"
                               ".some((c) => c.textContent.includes('revoked'))")
        page.wait_for_function("() => document.getElementById('audit-rows')"
                               ".textContent.includes('token.revoked')")
        rows = page.locator("#audit-rows tr").all_inner_texts()
        assert [r.split("\t")[2] for r in rows[:4]] == [
            "token.revoked", "user.disabled", "token.issued", "user.created"]
        assert "token" in rows[0] and "(first of eve)" in rows[0]
        assert page.locator("button[aria-label='disable admin']").count() == 1
        page.click("button[aria-label='tokens of admin']")  # a worker token says so
        page.wait_for_function("() => [...document.querySelectorAll('.user-tokens')]"
                               ".some((c) => c.textContent.includes('gpu-box (worker token)'))")
        page.screenshot(path=str(OUTPUT / "users-team.png"), full_page=True)
        # the last admin cannot be disabled: the page says why
        page.click("button[aria-label='disable admin']")
        page.wait_for_function("() => document.getElementById('team-error')"
                               ".textContent.includes('no enabled admin')")
        assert _me(url, token) == 200
        # a member's page has no team and no audit trail
        page.click("button[aria-label='enable eve']")
        page.wait_for_selector("button[aria-label='disable eve']")
        laptop = httpx.post(f"{url}/api/users", json={"name": "bob"},
                            headers={"Authorization": f"Bearer {token}"}).json()["token"]
        member = browser.new_page()
        member.goto(f"{url}/tokens#token={laptop}")
        member.wait_for_selector("#token-rows tr")
        member.wait_for_selector("nav.top")
        assert member.locator("#user-table, #audit-table, #users-link").count() == 0
        assert member.locator("nav.top a[href='/users']").count() == 0
        member.goto(f"{url}/users")
        member.wait_for_selector("#page-error")
        assert "only an admin" in member.inner_text("#page-error")
        assert member.locator("#user-table").count() == 0
