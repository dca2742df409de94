"""The figure check (conftest.figure_problems) against the figures that broke it: a
regularized run's γ title wrapped onto two lines (plotly moved it up past the figure's
top), heatmaps' colour bars under the toolbar, S_target stretched across a wide cell
before any model existed; and the run page's one ETA, none once cancelled."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import httpx
import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.models import Run, RunStatus, User, utcnow
from core.store.runs import create_run
from core.store.users import ensure_admin
from tests.browser.conftest import OUTPUT, figure_problems
from tests.browser.test_pages import _drawn, _login, _study_with_results
from tests.livesrv import live_server

pytestmark = pytest.mark.browser
GAMMA = "chart-__per_tapped_layer_over_training__Eq__10___stacked"

# a heatmap's cells, width over height on the screen
_CELL_SHAPE = """(id) => { const d = document.getElementById(id); const l = d._fullLayout;
  const unit = (a) => a._length / Math.abs(a.range[1] - a.range[0]);
  return unit(l.xaxis) / unit(l.yaxis); }"""


def test_figures_keep_titles_colour_bars_and_matrices_readable(browser, settings: Settings):  # type: ignore[no-untyped-def]
    from ml.train import TrainConfig
    from tests.server.test_matrices import stored_targets

    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        sim = stored_targets(settings, 400)
        study = _study_with_results(settings, models=False)  # S_target, and no model yet
        cfg = TrainConfig(backbone="small_cnn", width=4, target="neural-model", target_run=sim)
        with session_scope(settings.db_url) as s:
            run = create_run(s, owner=s.query(User).first(), kind="train", name="regularized",
                             config=dataclasses.asdict(cfg), input_run_id=sim).id
        httpx.post(f"{url}/api/runs/{run}/metrics", headers={"Authorization": f"Bearer {token}"},
                   json={"points": [{"key": f"gamma/{k}", "step": i, "value": [0.5, 0.3, 0.2][k]}
                                    for k in range(3) for i in range(50)]
                         + [{"key": "loss", "step": i, "value": 1 / (i + 1)} for i in range(50)]})

        # a regularized run's γ figure, its title on one line (1280) and on two (1000)
        for width in (1280, 1000):
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(f"{url}/runs/{run}#token={token}")
            _drawn(page, GAMMA)
            page.wait_for_function(f"() => document.getElementById('{GAMMA}')"
                                   " .querySelector('text.gtitle')")
            lines = page.evaluate(f"() => document.getElementById('{GAMMA}')"
                                  ".querySelectorAll('text.gtitle .line').length")
            if width == 1000:  # wrapped: plotly's line tspans
                assert lines == 2
            assert figure_problems(page) == [], width
            page.screenshot(path=str(OUTPUT / f"gamma-title-{width}.png"), full_page=True)

        # a similarity run's targets and their difference: colour bars clear of the toolbar,
        # square matrices
        page = _login(browser, url, token, f"/runs/{sim}")
        maps = ("fig-target-S_target_neural_model", "fig-target-S_target_neural_data",
                "fig-target-S_model_S_data")
        for fig in maps:
            _drawn(page, fig)
        assert figure_problems(page) == []
        for fig in maps:
            assert abs(page.evaluate(_CELL_SHAPE, fig) - 1) < 0.05
        page.screenshot(path=str(OUTPUT / "similarity-matrices.png"), full_page=True)

        # a study before any model: S_target alone in its row, square all the same
        page = _login(browser, url, token, f"/studies/{study}")
        _drawn(page, "fig-target-S_target_neural_model")
        page.wait_for_function("() => document.getElementById('sim-run-note').textContent")
        assert abs(page.evaluate(_CELL_SHAPE, "fig-target-S_target_neural_model") - 1) < 0.05
        assert figure_problems(page) == []
        page.locator("#fig-target-S_target_neural_model").screenshot(
            path=str(OUTPUT / "study-s-target.png"))


def test_a_run_shows_one_time_left_and_none_once_cancelled(browser, settings: Settings):  # type: ignore[no-untyped-def]
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
            run = create_run(s, owner=s.query(User).first(), kind="evaluate", name="e", config={})
            row = s.get(Run, run.id)
            row.status = RunStatus.running  # as a worker leaves it, its own ETA in the message
            row.started_at = utcnow() - timedelta(seconds=300)
            row.progress = 0.4
            row.message = "noise σ = 0.1 (3 of 12) · about 7 min left"
            rid = run.id
        page = _login(browser, url, token, f"/runs/{rid}")
        page.wait_for_function("() => document.getElementById('run-message').textContent")
        message = page.locator("#run-message").inner_text()
        assert message.startswith("noise σ = 0.1 (3 of 12) · 40% · about")
        assert message.count(" left") == 1, message
        page.on("dialog", lambda d: d.accept())
        page.click("#cancel")
        page.wait_for_function("() => document.getElementById('run-status').textContent"
                               " === 'cancelled'")
        assert " left" not in page.locator("#run-message").inner_text()
