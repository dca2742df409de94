"""The frequency part's figures in headless chromium: an evaluation's four on the run page
(filtered accuracy with the clean line, the Fourier map, hybrid outcomes, the perturbation
spectrum, or the note saying why there is none) and the study page's per-condition curves,
drawn with data, within the figure style, without console errors. Screenshots go to
test-output/."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.settings import Settings
from core.store.db import session_scope
from core.store.models import Run
from core.store.users import ensure_admin
from tests.browser.conftest import OUTPUT, beyond_stored_study, console_errors, figure_problems
from tests.browser.test_pages import _drawn, _login
from tests.frequency_block import CUTOFFS, frequency_block
from tests.livesrv import live_server
from tests.server.test_frontier_api import stored_study

pytestmark = pytest.mark.browser
RUN_FIGURES = ("fig-frequency-filters", "fig-frequency-map", "fig-frequency-hybrid",
               "fig-frequency-spectrum")
STUDY_FIGURES = ("fig-frequency-lowpass", "fig-frequency-highpass", "fig-frequency-hybrid",
                 "fig-frequency-radial")


def _with_frequency(settings: Settings) -> tuple[int, int, int]:
    """A stored study whose evaluations ran the frequency part (seed 2's without the
    minimal part's spectrum); the study, one evaluation with a spectrum, one without."""
    ids = stored_study(settings)
    with session_scope(settings.db_url) as s:
        for (target, alpha, seed), run_id in ids["evals"].items():
            run = s.execute(select(Run).where(Run.id == run_id)).scalar_one()
            run.result = {**(run.result or {}), "frequency": frequency_block(
                seed, {"none": 0.15, "shuffle": 0.1}.get(target, 0.02 * alpha / 16),
                spectrum=seed != 2)}
    return (ids["study"], ids["evals"][("neural-model", 16.0, 0)],
            ids["evals"][("neural-model", 16.0, 2)])


def test_the_run_and_study_pages_draw_the_frequency_figures(browser, settings: Settings):  # type: ignore[no-untyped-def]
    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        study, spectrum, skipped = _with_frequency(settings)

        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = console_errors(page)
        page.goto(f"{url}/runs/{spectrum}#token={token}")
        for fig in RUN_FIGURES:
            _drawn(page, fig)
        filters = page.evaluate("() => document.getElementById('fig-frequency-filters').data"
                                ".map((t) => [t.name, t.x.length])")
        assert [n for n, _ in filters][:2] == ["low-pass (|f| ≤ cut-off)",
                                              "high-pass (|f| > cut-off, mean kept)"]
        assert filters[0][1] == len(CUTOFFS)
        assert filters[2][0].startswith("clean")  # the noise part's σ = 0
        z = page.evaluate("() => document.getElementById('fig-frequency-map').data[0].z")
        assert len(z) == 8 and len(z[0]) == 8
        bars = page.evaluate("() => document.getElementById('fig-frequency-hybrid').data"
                             ".map((t) => t.type)")
        assert bars == ["bar"] * 3
        spec = page.evaluate("() => document.getElementById('fig-frequency-spectrum').data"
                             ".map((t) => t.name)")
        assert len(spec) == 3 and spec[-1].startswith("clean")  # l2, L∞; l1's is null
        # the per-cut-off series are in the figures, not charts against the step
        assert not page.locator("#chart-lowpass_acc").count()
        assert figure_problems(page) == []
        page.locator("#frequency").screenshot(path=str(OUTPUT / "run-frequency.png"))
        assert errors == [], "\n".join(errors)

        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = console_errors(page)
        page.goto(f"{url}/runs/{skipped}#token={token}")
        for fig in RUN_FIGURES[:3]:
            _drawn(page, fig)
        page.wait_for_function("() => document.getElementById('frequency-note').textContent")
        assert "minimal part did not run" in page.locator("#frequency-note").inner_text()
        assert not page.locator("#fig-frequency-spectrum").count()
        assert errors == [], "\n".join(errors)

        page = _login(browser, url, token, f"/studies/{study}")
        errors = console_errors(page)
        page.reload()
        for fig in STUDY_FIGURES:
            _drawn(page, fig)
        names = page.evaluate("() => document.getElementById('fig-frequency-lowpass').data"
                              ".map((t) => t.name)")
        assert any(n.startswith("None (n=3)") for n in names)
        assert sum("± SEM" in n for n in names) == 4  # a band per condition
        # per norm the minimal perturbations' spectrum: a band per condition over the
        # seeds that had one (seed 2 had none), the clean contrast dashed; L1's is null
        for norm in ("l2", "linf"):
            _drawn(page, f"fig-frequency-spectrum-{norm}")
        assert not page.locator("#fig-frequency-spectrum-l1").count()
        spec = page.evaluate("() => document.getElementById('fig-frequency-spectrum-l2').data"
                             ".map((t) => [t.name, t.y.every((y) => y === null || y > 0)])")
        assert any(n.startswith("None (n=2, centroid ") for n, _ in spec), spec
        assert sum("± SEM" in n for n, _ in spec) == 4 and spec[-1][0].startswith("clean")
        assert all(ok for _, ok in spec)  # nothing at or below 0 on the log axis
        assert figure_problems(page) == []
        for fig in (*STUDY_FIGURES, "fig-frequency-spectrum-l2"):
            page.locator(f"#{fig}").screenshot(path=str(OUTPUT / f"study-{fig}.png"))
        page.screenshot(path=str(OUTPUT / "study-frequency.png"), full_page=True)
        assert beyond_stored_study(errors) == [], "\n".join(errors)
        assert "frequency" not in page.locator("#page-error").inner_text().lower()
