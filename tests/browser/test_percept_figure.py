"""The percept part's figures in headless chromium (issue 38, item 4): an evaluation's run
page draws one figure per norm — the median distance with its CI per readout (predicted V1's
mean over scans, each scan, each tap, the logits), the minimal adversarials against the
permuted control — and a line per norm with the specificity and the control's clipping,
within the figure style, without console errors. Screenshots go to test-output/."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.settings import Settings
from core.store.db import session_scope
from core.store.models import Run
from core.store.users import ensure_admin
from tests.browser.conftest import OUTPUT, console_errors, figure_problems
from tests.browser.test_pages import _drawn
from tests.livesrv import live_server
from tests.percept_block import LAYERS, SCANS, percept_block
from tests.server.test_frontier_api import stored_study

pytestmark = pytest.mark.browser


def test_the_run_page_draws_the_percept_figures(browser, settings: Settings):  # type: ignore[no-untyped-def]
    OUTPUT.mkdir(exist_ok=True)
    block = percept_block()
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        ids = stored_study(settings)
        run_id = ids["evals"][("neural-model", 16.0, 0)]
        with session_scope(settings.db_url) as s:
            run = s.execute(select(Run).where(Run.id == run_id)).scalar_one()
            run.result = {**(run.result or {}), "percept": block}

        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = console_errors(page)
        page.goto(f"{url}/runs/{run_id}#token={token}")
        for norm in ("l2", "linf"):
            _drawn(page, f"fig-percept-{norm}")
        traces = page.evaluate("() => document.getElementById('fig-percept-l2').data"
                               ".map((t) => [t.name, t.x, t.y, t.error_y.array])")
        assert [t[0] for t in traces] == ["minimal L2 adversarial",
                                          "permuted control (same norms)"]
        x = traces[0][1]
        assert x == [f"V1 (predicted,<br>mean of {len(SCANS)} scans)",
                     *(f"V1 {s}" for s in SCANS), *LAYERS, "logits"]
        row = block["norms"]["l2"]
        assert traces[0][2] == pytest.approx([r["adv"]["median"] for r in row["readouts"]])
        assert traces[1][2] == pytest.approx([r["rand"]["median"] for r in row["readouts"]])
        assert traces[0][3] == pytest.approx([r["adv"]["ci_high"] - r["adv"]["median"]
                                              for r in row["readouts"]])
        notes = page.locator("#percept-notes").inner_text()
        assert f"Specificity at layer3: {row['specificity']['median']:.3f}" in notes
        assert f"median {row['clip_ratio']:.3f}" in notes
        assert "canvas" in page.locator("#percept-note").inner_text()
        assert figure_problems(page) == []
        page.locator("#percept").screenshot(path=str(OUTPUT / "run-percept.png"))
        assert errors == [], "\n".join(errors)
