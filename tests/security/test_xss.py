"""Stored XSS (MLflow's CVE-2023-6709, -6940 class): every string a member stores — a run's
name, its params' keys and values, log lines, a token's name — is shown on every page
as the text it is, in headless chromium, and never runs. The pages draw the same on
either backend, so this runs on SQLite only."""

from __future__ import annotations

import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.users import ensure_admin
from neuroreg.client import Client
from tests.browser.conftest import OUTPUT
from tests.livesrv import live_server

pytestmark = pytest.mark.browser

PAYLOADS = ["<img src=x onerror=window.__pwned=1>", "<svg onload=window.__pwned=2>",
            "<script>window.__pwned=3</script>", '"><iframe src=javascript:window.__pwned=4>',
            '<a href="javascript:window.__pwned=5">x</a>', "{{constructor.constructor("
            "'window.__pwned=6')()}}"]


def test_member_strings_never_run_on_any_page(  # type: ignore[no-untyped-def]
        browser, settings: Settings) -> None:
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        with Client(url, token) as nr:
            ids = []
            for k, payload in enumerate(PAYLOADS):
                run = nr.create_external(payload, params={payload: payload, "seed": k})
                nr.log(run["id"], [payload])
                nr.log_batch(run["id"], {"loss": 1.0 / (k + 1)}, step=0)
                nr.log_batch(run["id"], {"loss": 0.5 / (k + 1)}, step=1)
                nr.finish(run["id"])
                ids.append(run["id"])
            nr._call("POST", "/api/tokens", json={"name": PAYLOADS[0]})
        runs = ",".join(map(str, ids))
        pages = ["/", f"/runs/{ids[0]}", f"/runs/{ids[4]}", "/leaderboard", "/tokens",
                 f"/compare?runs={runs}&key=loss&group=name",
                 f"/compare?runs={runs}&key=loss&dims=config.params.seed,name&x=name&y=name"]
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        for path in pages:
            page.goto(f"{url}{path}#token={token}")
            page.wait_for_load_state("networkidle")
            if path.startswith("/compare"):  # the plots were drawn, with the names in them
                page.wait_for_selector(".main-svg")
            assert page.evaluate("() => window.__pwned") is None, path
            assert page.evaluate(
                "() => document.querySelectorAll('img[src=x], svg[onload], iframe, "
                "a[href^=\"javascript\"]').length") == 0, path
        assert dialogs == []
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "security-xss-compare.png"), full_page=True)
