"""The study page's alignment against robustness in headless chromium: the scatter draws
one trace per condition with every model, ρ and its CI in the title, the two selects redraw
it, the per-condition table is there, within the figure style, without console errors
(other than the stored study's missing matrices and curves). Screenshots go to test-output/."""

from __future__ import annotations

import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.users import ensure_admin
from tests.browser.conftest import OUTPUT, beyond_stored_study, console_errors, figure_problems
from tests.browser.test_pages import _drawn, _login
from tests.livesrv import live_server
from tests.server.test_alignment_api import add_alignment, add_percept
from tests.server.test_frontier_api import stored_study

pytestmark = pytest.mark.browser


def _title(page) -> str:  # type: ignore[no-untyped-def]
    return page.evaluate("() => document.getElementById('fig-alignment').layout.title.text")


def test_the_study_page_draws_alignment_against_robustness(browser, settings: Settings):  # type: ignore[no-untyped-def]
    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        ids = stored_study(settings)
        add_alignment(settings, ids["evals"])
        page = _login(browser, url, token, f"/studies/{ids['study']}")
        errors = console_errors(page)
        page.reload()
        _drawn(page, "fig-alignment")
        traces = page.evaluate("() => document.getElementById('fig-alignment').data"
                               ".map((t) => [t.name, t.x.length, t.marker.color])")
        assert len(traces) == 4 and sum(n for _, n, _ in traces) == 12
        assert len({c for _, _, c in traces if True}) >= 3  # a colour per condition
        assert "Spearman ρ = " in _title(page) and "n = 12" in _title(page)
        assert page.locator("#alignment-score").input_value() == "rsa_mix_oracle"
        first = page.locator("#alignment-measure").input_value()
        assert first == "noise_accuracy"  # the first robustness measure the points have
        before = page.evaluate("() => document.getElementById('fig-alignment').data[0].y")
        page.select_option("#alignment-measure", "median_l2")
        page.wait_for_function("() => document.getElementById('fig-alignment').layout"
                               ".yaxis.title.text.includes('L2')")
        after = page.evaluate("() => document.getElementById('fig-alignment').data[0].y")
        assert after != before
        page.select_option("#alignment-score", "cka_mix_oracle")
        page.wait_for_function("() => document.getElementById('fig-alignment').layout"
                               ".xaxis.title.text.includes('CKA')")
        assert page.locator("#alignment-measure").input_value() == "median_l2"
        rows = page.locator("#alignment-scores tbody tr")
        assert rows.count() == 4 and "±" in rows.first.inner_text()
        assert figure_problems(page) == []
        page.select_option("#alignment-score", "rsa_mix_oracle")
        page.wait_for_function("() => document.getElementById('fig-alignment').layout"
                               ".xaxis.title.text.includes('RSA')")
        page.locator("#study-alignment").screenshot(path=str(OUTPUT / "study-alignment.png"))
        assert beyond_stored_study(errors) == [], "\n".join(errors)
        assert "alignment" not in page.locator("#page-error").inner_text().lower()


def test_a_study_without_the_part_has_no_alignment_section(browser, settings: Settings):  # type: ignore[no-untyped-def]
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        ids = stored_study(settings)
        page = _login(browser, url, token, f"/studies/{ids['study']}")
        page.wait_for_function("() => document.documentElement.dataset.studyDrawn")
        assert not page.locator("#study-alignment").count()


def test_the_percept_scores_are_picked_and_the_pick_is_kept_in_the_address(  # type: ignore[no-untyped-def]
        browser, settings: Settings):
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        ids = stored_study(settings)
        add_alignment(settings, ids["evals"])
        add_percept(settings, ids["evals"])
        page = _login(browser, url, token, f"/studies/{ids['study']}")
        errors = console_errors(page)
        page.reload()
        _drawn(page, "fig-alignment")
        options = page.locator("#alignment-score option").all_inner_texts()
        assert "percept: specificity at L2 (model ÷ predicted V1, each adv/control)" in options
        page.select_option("#alignment-score", "percept_specificity_l2")
        page.wait_for_function("() => document.getElementById('fig-alignment').layout"
                               ".xaxis.title.text.includes('specificity')")
        page.select_option("#alignment-measure", "median_l2")
        page.wait_for_function("() => location.search.includes('ameasure=median_l2')")
        assert "ascore=percept_specificity_l2" in page.evaluate("() => location.search")
        head = page.locator("#alignment-scores thead").inner_text()
        assert "specificity" in head  # the per-condition table has the percept column
        assert figure_problems(page) == []
        # a shared link opens on the same pick
        page.goto(page.url)
        _drawn(page, "fig-alignment")
        assert page.locator("#alignment-score").input_value() == "percept_specificity_l2"
        assert page.locator("#alignment-measure").input_value() == "median_l2"
        page.locator("#study-alignment").screenshot(
            path=str(OUTPUT / "study-alignment-percept.png"))
        assert beyond_stored_study(errors) == [], "\n".join(errors)
