"""The leaderboard's soundness and mechanism columns and its sample counts, and the
evaluate run's soundness and mechanism tables, in headless chromium. Screenshots go to
test-output/."""

from __future__ import annotations

import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.models import Role
from core.store.users import create_user, ensure_admin
from tests.browser.conftest import OUTPUT
from tests.livesrv import live_server
from tests.server.test_records_api import stored

pytestmark = pytest.mark.browser

ROWS = "() => [...document.querySelectorAll('#lb-rows tr')].map((r) => r.dataset.run)"


def _login(browser, url: str, token: str, path: str):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}{path}#token={token}")
    return page


def _cells(page, run: int) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    """Row ``run``'s cells by their column's header: text, hover title, its count's text
    and whether the count is marked as fewer samples than the row's most."""
    return page.evaluate("""(run) => {
      const heads = [...document.querySelectorAll('#lb-head th')].map((h) =>
        h.textContent.replace(/\\s[▲▼]$/, ''));
      const tds = document.querySelectorAll(`#lb-rows tr[data-run='${run}'] td`);
      return Object.fromEntries([...tds].map((td, k) => {
        const n = td.querySelector('.n');
        const verdict = td.querySelector('.soundness');
        return [heads[k], { text: td.textContent, title: td.title, n: n ? n.textContent : null,
          reduced: n ? n.classList.contains('reduced') : null,
          hover: verdict ? verdict.title : null, nVisible: n ? n.offsetHeight > 0 : null }];
      }));
    }""", run)


def test_the_leaderboard_shows_soundness_mechanism_and_sample_counts_and_the_run_its_tables(  # type: ignore[no-untyped-def]
        browser, settings: Settings):
    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
            create_user(s, name="ada", role=Role.member)
        ids = stored(settings)
        ev = ids["evals"]  # 0: sound, ‖∇‖₂ 0.75; 1: suspect in L∞, ‖∇‖₂ 2.0; 2, 3: neither part
        page = _login(browser, url, token, "/leaderboard")
        page.wait_for_selector("#lb-rows tr")
        head = page.locator("#lb-head").inner_text()
        assert "attacks" in head and "‖∇ₓ‖₂" in head and "PC share L2" in head
        suspect = _cells(page, ev[1])
        # the verdict: suspect, naming the norm, its warnings on hover
        assert suspect["attacks"]["text"].startswith("⚠ suspect L∞")
        assert "AutoAttack breaks 2 sample(s)" in suspect["attacks"]["hover"]
        assert "HopSkipJump" in suspect["attacks"]["hover"]
        assert _cells(page, ev[0])["attacks"]["text"].startswith("✓ sound")
        # the mechanism's medians, each over its own count
        assert suspect["‖∇ₓ‖₂"]["text"].startswith("2.000") and suspect["‖∇ₓ‖₂"]["n"] == "n=20"
        assert suspect["PC share L2"]["text"].startswith("0.300")
        assert suspect["PC share L2"]["n"] == "n=7"
        # every number's count, shown; those over fewer samples than the row's most marked
        clean, aa = suspect["clean"], suspect["AA L∞ 8/255"]
        assert clean["text"] == "88.0n=1000" and clean["n"] == "n=1000" and not clean["reduced"]
        assert aa["text"] == "20.0*n=100" and aa["reduced"] and aa["nVisible"]
        assert aa["title"] == "AA L∞ 8/255: over 100 samples"
        assert suspect["median L2"]["n"] == "n=100" and suspect["corrupt."]["n"] == "n=50"
        assert suspect["attacks"]["n"] == "n=8"
        # an evaluation without the parts: empty cells, no count
        bare = _cells(page, ev[2])
        for column in ("attacks", "‖∇ₓ‖₂", "PC share L2", "AA L∞ 8/255"):
            assert bare[column]["text"] == "–" and bare[column]["n"] is None
        note = page.locator("#lb-note").inner_text()
        assert "how many samples it is over" in note and "⚠ suspect" in note
        # every column in a 1280-px window: long headers wrap instead of scrolling sideways
        assert page.evaluate("() => document.getElementById('lb-table').scrollWidth"
                             " <= document.querySelector('.scroll-x').clientWidth")
        page.screenshot(path=str(OUTPUT / "leaderboard-soundness.png"), full_page=True)
        page.click("button.sort[data-key='grad_l2_median']")  # sortable: a number
        page.wait_for_function(f"() => ({ROWS})()[0] === '{ev[1]}'")
        assert page.evaluate(ROWS)[:2] == [str(ev[1]), str(ev[0])]
        assert page.locator("button.sort[data-key='soundness']").count() == 0  # a verdict
        # the evaluation's page: the soundness and mechanism tables with their numbers
        run = _login(browser, url, token, f"/runs/{ev[1]}")
        run.wait_for_selector("#record:not([hidden]) #record-soundness")
        rows = run.locator("#record-soundness tbody tr").all_inner_texts()
        linf = next(r for r in rows if r.startswith("L∞"))
        assert "suspect" in linf and "0.0100" in linf and "1.10×" in linf
        assert "0.0040 vs 0.0100 (5 of 7 smaller)" in linf and linf.rstrip().endswith("2")
        l2 = next(r for r in rows if r.startswith("L2"))
        assert "sound" in l2 and "0.4000" in l2 and "0.9000 vs 0.4000 (0 of 7 smaller)" in l2
        tables = run.locator("#record-tables").inner_text()
        assert "AutoAttack breaks 2 sample(s) below their minimal perturbation" in tables
        assert "HopSkipJump and transfer on the first 8 samples" in tables
        mech = run.locator("#record-mechanism tbody tr").all_inner_texts()
        assert [r.split("\t")[1:] for r in mech] == [
            ["2.0000", "2.5000", "20"], ["40.00", "50.00", "20"],  # over 20 samples
            ["0.300", "", "7"], ["0.200", "", "6"], ["0.060", "", ""]]
        assert "L2 perturbations' energy in the top 64 PCs" in mech[2]
        assert "Over the 100 samples of the fixed set" in tables
        assert "k/D = 0.0625" in mech[4]
        assert "Layer similarity: no similarity target" in tables
        run.screenshot(path=str(OUTPUT / "run-soundness-mechanism.png"), full_page=True)
