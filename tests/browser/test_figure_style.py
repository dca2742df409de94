"""One figure style across the dashboard: a condition (a similarity target) has one colour
on every page that draws it — the study page's figures and Compare's groups by target —
read from the traces Plotly drew (gd.data)."""

from __future__ import annotations

import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.users import ensure_admin
from tests.browser.conftest import OUTPUT, figure_problems
from tests.browser.test_pages import _drawn, _login, _study_with_results
from tests.livesrv import live_server

pytestmark = pytest.mark.browser
TARGETS = ("none", "neural-model")

# the conditions a study figure links to (customdata "cond-…") with the colour each was
# drawn in: bars one colour each; a line its own, named by its last point (Fig. 6's lines
# start from None's point at α = 0)
_STUDY_COLOURS = """() => {
  const out = [];
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    for (const t of gd.data || []) {
      const conds = (Array.isArray(t.customdata) ? t.customdata : [])
        .filter((c) => typeof c === 'string' && c.startsWith('cond-'));
      if (!conds.length) continue;
      const m = t.marker && t.marker.color;
      if (Array.isArray(m)) conds.forEach((c, i) => out.push([gd.id, c, m[i]]));
      else out.push([gd.id, conds[conds.length - 1], m || t.line.color]);
    }
  }
  return out;
}"""

# Compare's overlay (mean lines, not their bands) and scatter: each group's name, colour, dash
_COMPARE_COLOURS = """() => [
  ...document.getElementById('compare-chart').data.filter((t) => t.fill !== 'toself')
    .map((t) => [t.name, t.line.color, t.line.dash || 'solid']),
  ...document.getElementById('compare-scatter').data.map((t) => [t.name, t.marker.color, null])]"""


def _target(cond: str) -> str:
    return next(t for t in TARGETS if cond == f"cond-{t}" or cond.startswith(f"cond-{t}-"))


def test_a_condition_has_one_colour_on_the_study_page_and_in_compare(browser, settings: Settings):  # type: ignore[no-untyped-def]
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        study = _study_with_results(settings, models=False)
        page = _login(browser, url, token, f"/studies/{study}")
        for fig in ("fig4", "fig5-l2", "fig5-budget-l2", "fig-autoattack-linf", "fig-mce", "fig6",
                    "study-curve", "frontier"):
            _drawn(page, fig)
        drawn = page.evaluate(_STUDY_COLOURS)
        on_study: dict[str, set[str]] = {}
        for _, cond, colour in drawn:
            on_study.setdefault(_target(cond), set()).add(colour)
        # one colour per condition on every study figure, whatever its α
        assert set(on_study) == set(TARGETS), drawn
        assert all(len(c) == 1 for c in on_study.values()), drawn
        assert on_study["none"] != on_study["neural-model"]
        page.screenshot(path=str(OUTPUT / "style-study.png"), full_page=True)

        # Compare, the study's train runs grouped by target: the same colours
        page.goto(f'{url}/compare?q=kind+%3D+"train"&key=test_acc&group=config.target')
        page.wait_for_function("() => { const d = document.getElementById('compare-chart');"
                               " return d && d.data && d.data.length === 4; }")
        _drawn(page, "compare-scatter")
        on_compare: dict[str, set[str]] = {}
        for name, colour, _ in page.evaluate(_COMPARE_COLOURS):
            target = name.removeprefix("target=").split(" ")[0]
            on_compare.setdefault(target, set()).add(colour)
        assert on_compare == on_study, (on_compare, on_study)
        page.screenshot(path=str(OUTPUT / "style-compare.png"), full_page=True)

        # grouped by target and α: a condition keeps its colour, its α values take the
        # study's dashes (smallest solid)
        page.goto(f'{url}/compare?q=kind+%3D+"train"&key=test_acc'
                  '&group=config.target,config.alpha')
        page.wait_for_function("() => { const d = document.getElementById('compare-chart');"
                               " return d && d.data && d.data.length === 6; }")
        _drawn(page, "compare-scatter")
        lines = {name.split(" (n=")[0]: (colour, dash)
                 for name, colour, dash in page.evaluate(_COMPARE_COLOURS) if dash}
        neural = on_study["neural-model"]
        assert {lines["target=neural-model, alpha=2"][0], lines["target=neural-model, alpha=16"][0]
                } == neural, lines
        assert lines["target=neural-model, alpha=2"][1] == "solid"
        assert lines["target=neural-model, alpha=16"][1] == "dash"
        # None at α = 0, the α it stores (no target, no similarity loss)
        assert {lines["target=none, alpha=0"][0]} == on_study["none"]
        # parallel coordinates keep the None runs: target_run null is the category null
        page.wait_for_function("() => { const d = document.getElementById('compare-parcoords');"
                               " return d && d.data && d.data[0].type === 'parcoords'; }")
        dims = page.evaluate("() => Object.fromEntries(document.getElementById("
                             "'compare-parcoords').data[0].dimensions.map((d) =>"
                             " [d.label, [d.values.length, d.ticktext || null]]))")
        assert dims["config.target_run"][0] == 9, dims  # 3 None runs, 6 regularized
        assert "null" in dims["config.target_run"][1], dims
        assert "9 of 9 runs have every field" in page.locator("#parcoords-note").inner_text()
        assert figure_problems(page) == []
