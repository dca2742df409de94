"""The run page's Logs (followed while the run runs, lines shown as text: a logged
<script> is never run), System figure and Provenance, in headless chromium. Screenshots
go to test-output/."""

from __future__ import annotations

import time

import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.users import ensure_admin
from neuroreg.client import Client
from tests.browser.conftest import OUTPUT, figure_problems
from tests.livesrv import live_server

pytestmark = pytest.mark.browser
SCRIPT = "<script>window.__pwned=1</script>"


def test_logs_follow_as_text_beside_the_system_figure_and_provenance(
        browser, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        with Client(url, token) as nr:
            run = nr.create_external("logs demo", params={"lr": 0.1})
            rid = run["id"]
            nr.log(rid, [f"epoch {i}: loss {1 / (i + 1):.3f}" for i in range(60)])
            nr.log(rid, [SCRIPT, "<img src=x onerror=window.__pwned=2>"])
            nr.log(rid, ["Traceback (most recent call last):", "  a warning"], stream="stderr")
            t0 = time.time()
            # the series a worker's sampler writes, as a script on a GPU box sends them
            nr.log_batch(rid, [(k, s, v) for s in range(0, 300, 5) for k, v in (
                ("system/cpu_percent", 150 + 40 * ((s // 5) % 3)),
                ("system/rss_mb", 900 + s), ("system/gpu0_util_percent", 70 + (s % 20)),
                ("system/gpu0_memory_mb", 5000 + 2 * s), ("system/gpu0_power_w", 250.0))])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{url}/runs/{rid}#token={token}")
            page.wait_for_function(
                "() => document.querySelectorAll('#logs .log-line').length === 64")
            logs = page.locator("#logs")
            assert SCRIPT in logs.inner_text()  # shown as the text it is
            assert page.evaluate("() => window.__pwned") is None  # and never run
            assert page.evaluate("() => document.querySelectorAll('#logs script, #logs img')"
                                 ".length") == 0
            assert page.locator("#logs .log-line.stderr").count() == 2
            assert page.locator("#logs .log-line.stderr .stream").first.inner_text() == "stderr "
            page.wait_for_selector("#chart-system .main-svg")
            page.wait_for_selector("#prov-git_commit")
            assert page.locator("#prov-python").inner_text() == nr.provenance(rid)["python"]
            assert page.locator("#provenance-packages summary").inner_text().endswith(
                "installed packages")
            # at the end of the log: a new line comes in and the view follows it
            page.evaluate("() => { const p = document.getElementById('logs');"
                          " p.scrollTop = p.scrollHeight; }")
            nr.log(rid, ["a line while the page follows"])
            page.wait_for_function("() => document.getElementById('logs').textContent"
                                   ".includes('a line while the page follows')", timeout=10_000)
            page.wait_for_function("() => { const p = document.getElementById('logs');"
                                   " return p.scrollHeight - p.scrollTop - p.clientHeight < 24; }")
            assert figure_problems(page) == []
            page.locator("#system").scroll_into_view_if_needed()
            page.screenshot(path=str(OUTPUT / "run-logs.png"), full_page=True)
            nr.finish(rid)
            page.wait_for_function("() => document.getElementById('logs').dataset.complete",
                                   timeout=15_000)
            assert "run succeeded" in page.locator("#logs-state").inner_text()
            assert page.evaluate("() => window.__pwned") is None
            assert time.time() - t0 < 60


def test_a_finished_run_without_lines_says_it_wrote_none(
        browser, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        with Client(url, token) as nr:
            quiet = nr.create_external("quiet")
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{url}/runs/{quiet['id']}#token={token}")
            page.wait_for_function("() => document.getElementById('logs-state')"
                                   ".textContent.includes('following')")
            # running: the log may still come ("no lines yet", drawn by the stylesheet)
            assert page.locator("#logs .log-none").count() == 0
            nr.finish(quiet["id"])
            page.wait_for_function("() => document.getElementById('logs').dataset.complete",
                                   timeout=15_000)
            assert page.locator("#logs").inner_text() == "this run wrote no log lines"
            assert page.evaluate("() => getComputedStyle(document.getElementById('logs'),"
                                 " '::before').content") in ("none", "normal")
            assert "run succeeded" in page.locator("#logs-state").inner_text()
