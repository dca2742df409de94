"""The tokens page's webhooks in headless chromium: add (the secret shown once), a bad URL
and one to the metadata address refused naming the field, a ping delivered to a real
local receiver and shown, one to a port where nothing listens shown as not delivered,
delete; URLs drawn as text. Screenshot in test-output/."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.users import ensure_admin
from tests.browser.conftest import OUTPUT
from tests.livesrv import free_port, live_server
from tests.server.test_webhooks import Receiver, _no_proxy, _verify, receiver  # noqa: F401

pytestmark = pytest.mark.browser


def test_the_tokens_page_adds_pings_and_deletes_webhooks(  # type: ignore[no-untyped-def]
        browser, make_settings: Callable[..., Settings],
        receiver: Callable[..., Receiver]) -> None:  # noqa: F811
    settings = make_settings(webhook_interval_s=0.05, webhook_backoff_s=(3600,),
                             webhook_allow_private=True)  # the receiver is on loopback
    rx = receiver([500, 200])
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/tokens#token={token}")
        page.wait_for_selector("#hook-form")
        page.fill("#hook-url", "ftp://lab.example/hook")
        page.click("#hook-form button")
        error = page.wait_for_selector("#hook-error").inner_text()
        assert error.startswith("url: must be an http:// or https:// URL")
        page.fill("#hook-url", "http://169.254.169.254/latest/meta-data/")  # never, even
        page.click("#hook-form button")                                    # with the setting
        page.wait_for_function("() => document.querySelector('#hook-error')"
                               "?.textContent.includes('not a public address')")
        assert page.inner_text("#hook-error").startswith("url: its host is not a public address")
        page.fill("#hook-url", rx.url)
        for event in ("run.cancelled", "study.cancelled"):
            page.uncheck(f"[id='hook-ev-{event}']")
        page.click("#hook-form button")
        secret = page.wait_for_selector("#new-hook-secret").inner_text()
        assert secret.startswith("whsec_")
        row = page.wait_for_selector("#hook-rows tr")
        assert "run.succeeded, run.failed, study.succeeded, study.failed" in row.inner_text()
        page.click("#hook-rows button[aria-label^='test webhook']")
        deadline = time.monotonic() + 20
        while not rx.requests and time.monotonic() < deadline:  # the live dispatcher sends
            time.sleep(0.05)
        assert len(rx.requests) == 1  # answered 500: the retry waits its backoff
        page.reload()
        page.wait_for_function("() => document.querySelector('#hook-rows .hook-last')"
                               "?.textContent.includes('HTTP 500')")
        last = page.inner_text("#hook-rows .hook-last summary")
        assert last.startswith("ping pending, 1 attempt — HTTP 500; next ")
        assert _verify(secret, rx.requests[0]["body"],
                       rx.requests[0]["headers"]["X-Neuroreg-Signature"])
        # a URL is drawn as text, never as markup
        page.fill("#hook-url", "https://lab.example/<script>alert(1)</script>")
        page.click("#hook-form button")
        page.wait_for_function("() => document.querySelectorAll('#hook-rows tr').length === 2")
        assert page.locator("#hook-rows script").count() == 0
        assert "<script>alert(1)</script>" in page.inner_text("#hook-rows")
        # nothing listens there: the page says so, not how the connection failed
        page.fill("#hook-url", f"http://127.0.0.1:{free_port()}/gone")
        page.click("#hook-form button")
        page.wait_for_function("() => document.querySelectorAll('#hook-rows tr').length === 3")
        page.click("#hook-rows tr:last-child button[aria-label^='test webhook']")
        gone, until = "#hook-rows tr:last-child .hook-last", time.monotonic() + 20
        while "could not deliver" not in page.inner_text(gone) and time.monotonic() < until:
            page.reload()
            page.wait_for_selector(gone)
        assert page.inner_text(f"{gone} summary").startswith(
            "ping pending, 1 attempt — could not deliver: no answer within 10 s")
        page.click("#hook-rows details summary")
        page.screenshot(path=str(OUTPUT / "tokens-webhooks.png"), full_page=True)
        page.click("#hook-rows tr:last-child button[aria-label^='delete webhook']")
        page.wait_for_function("() => document.querySelectorAll('#hook-rows tr').length === 2")
