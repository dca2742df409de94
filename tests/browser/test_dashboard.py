"""The dashboard in headless Debian chromium (no browser downloads), served by our app."""

from __future__ import annotations

import math

import httpx
import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.users import ensure_admin
from tests.browser.conftest import OUTPUT, figure_problems
from tests.livesrv import live_server

pytestmark = pytest.mark.browser



def test_run_page_draws_the_chart_with_data_and_updates_live(browser, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
            run = api.post(
                "/api/runs", json={"kind": "train", "name": "<script>alert(1)</script>"}
            ).json()
            # the run is queued and no worker runs here: metrics arrive as a worker's would
            api.post(
                f"/api/runs/{run['id']}/metrics",
                json={
                    "points": [
                        {"key": "loss", "step": i, "value": math.exp(-i / 40)} for i in range(100)
                    ]
                },
            )
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(f"{url}/runs/{run['id']}#token={token}")
            page.wait_for_function(
                "() => { const d = document.querySelector('.chart');"
                " return d && d.data && d.data[0].x.length === 100; }",
                timeout=20_000,
            )
            # a later batch shows up without a reload
            api.post(
                f"/api/runs/{run['id']}/metrics",
                json={
                    "points": [
                        {"key": "loss", "step": i, "value": math.exp(-i / 40)}
                        for i in range(100, 150)
                    ]
                },
            )
            page.wait_for_function(
                "() => document.querySelector('.chart').data[0].x.length === 150", timeout=20_000
            )
            assert page.locator(".chart .main-svg").count() > 0  # plotly really rendered
            # γ exists only where a run learns it: none for this None run, even if logged
            api.post(f"/api/runs/{run['id']}/metrics", json={"points": [
                *({"key": f"gamma/{k}", "step": i, "value": 1 / 3}
                  for k in range(3) for i in range(150)),
                *({"key": "loss", "step": i, "value": 0.1} for i in range(150, 160))]})
            page.wait_for_function(
                "() => document.querySelector('.chart').data[0].x.length === 160", timeout=20_000
            )
            gamma = "chart-__per_tapped_layer_over_training__Eq__10___stacked"
            assert page.locator(f"#{gamma}").count() == 0
            # a script that logs γ (an external run): a stacked area summing to 1 (Eq. 10)
            ext = api.post("/api/runs", json={"kind": "external", "name": "script"}).json()
            api.post(f"/api/runs/{ext['id']}/metrics", json={"points": [
                {"key": f"gamma/{k}", "step": i, "value": [0.5, 0.3, 0.2][k]}
                for k in range(3) for i in range(150)]})
            other = browser.new_page(viewport={"width": 1280, "height": 900})
            other.goto(f"{url}/runs/{ext['id']}#token={token}")
            other.wait_for_function(f"() => {{ const d = document.getElementById('{gamma}');"
                                    " return d && d.data && d.data.length === 3; }",
                                    timeout=20_000)
            traces = other.evaluate(f"() => document.getElementById('{gamma}').data"
                                    ".map((t) => [t.name, t.stackgroup, t.y[0]])")
            assert traces == [["γ[0]", "gamma", 0.5], ["γ[1]", "gamma", 0.3],
                              ["γ[2]", "gamma", 0.2]]
            title = page.locator("#run-title").inner_text()
            assert "<script>alert(1)</script>" in title and not dialogs  # escaped, not run
            assert figure_problems(page) == []
            page.screenshot(path=str(OUTPUT / "run-page.png"), full_page=True)

            page.goto(f"{url}/")
            page.wait_for_selector("#run-rows tr")
            row = page.locator("#run-rows tr").last.inner_text()  # newest first: the train run
            assert "queued" in row and "admin" in row
            page.screenshot(path=str(OUTPUT / "runs-page.png"), full_page=True)
            api.post(f"/api/runs/{run['id']}/cancel")


def test_bad_token_shows_sign_in(browser, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    with live_server(settings) as url:
        page = browser.new_page()
        page.goto(f"{url}/#token=nr_not_a_token")
        page.wait_for_selector("#login:not([hidden])")
        assert "rejected" in page.locator("#login-error").inner_text()


TITLE = ("(id) => { const t = document.getElementById(id).layout.title;"
         " return `${t.text} ${(t.subtitle || {}).text || ''}`.replace(/<br>/g, ' '); }")


def test_similarity_run_page_draws_fig1_and_scores(  # type: ignore[no-untyped-def]
    browser, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.settings import get_settings
    from worker.tasks import execute, similarity_job

    OUTPUT.mkdir(exist_ok=True)
    monkeypatch.setenv("NEUROREG_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    config = {
        "simulation": {"n_images": 80, "n_oracle": 8, "oracle_repeats": 4, "n_scans": 2,
                       "neurons_per_scan": 16},
        "predictor": {"hidden_channels": 4, "max_epochs": 2},
        "pairs_for_r": 2000,
    }
    try:
        with live_server(settings) as url:
            with session_scope(settings.db_url) as s:
                token = ensure_admin(s)
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
                run = api.post("/api/runs", json={"kind": "similarity", "config": config}).json()
                # no worker process here: run the task's logic in-process, as a worker would
                assert execute(run["id"], similarity_job)["status"] == "succeeded"
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{url}/runs/{run['id']}#token={token}")
                for fig_id in ("fig-s_oracle", "fig-s_model", "fig-fluctuations", "fig-scatter"):
                    page.wait_for_function(
                        f"() => {{ const d = document.getElementById('{fig_id}');"
                        " return d && d.data && d.data.length > 0"
                        " && (d.data[0].z || d.data[0].y).length > 0; }",
                        timeout=20_000,
                    )
                z = page.evaluate("() => document.getElementById('fig-s_oracle').data[0].z")
                assert len(z) == 8 and len(z[0]) == 8
                # Fig. 1A/B for every scan, in one order and one colour scale
                for fig_id in ("fig-s_oracle-2", "fig-s_model-2"):
                    page.wait_for_function(f"() => document.getElementById('{fig_id}')"
                                           "?.data?.[0]?.z?.length === 8", timeout=20_000)
                scales = page.evaluate("() => ['fig-s_oracle', 'fig-s_oracle-2', 'fig-s_model-2']"
                                       ".map((id) => document.getElementById(id).data[0].zmax)")
                assert len(set(scales)) == 1
                scores = page.locator("#scores").inner_text()
                assert "r_model_oracle" in scores and "r_data_true" in scores
                # each r with its bootstrap intervals in its row, and the noise ceiling
                row = page.locator("#scores tr", has_text="r_model_oracle").first.inner_text()
                assert "95 % CI [" in row and "over stimuli" in row and "over neurons" in row
                assert "_ci_stimuli_lo" not in scores and "oracle_noise_ceiling" in scores
                legend = page.evaluate("() => document.getElementById('fig-scatter').data"
                                       ".map((t) => t.name)")
                assert all(" [" in n for n in legend), legend
                assert "noise ceiling of S_oracle" in page.evaluate(TITLE, "fig-scatter")
                # Fig. 2: three least and three most similar pairs, drawn as images
                page.wait_for_selector("#fig2 canvas")
                assert page.locator("#fig2 .pair").count() == 6
                assert page.locator("#fig2 canvas").count() == 12
                lit = page.evaluate("() => { const c = document.querySelector('#fig2 canvas');"
                                    " const d = c.getContext('2d').getImageData(0, 0, c.width,"
                                    " c.height).data;"
                                    " return d.some((v, i) => i % 4 < 3 && v > 0); }")
                assert lit  # pixels were drawn, not an empty canvas
                # each stored target's eigenspectrum: one line per target, PR in its legend
                names = api.get(f"/api/runs/{run['id']}/matrices").json()
                assert {"neural-model", "neural-data", "shuffle"} <= set(names)
                page.wait_for_function("(n) => document.getElementById('fig-spectrum')"
                                       "?.data?.length === n", arg=len(names), timeout=20_000)
                traces = page.evaluate("() => document.getElementById('fig-spectrum').data"
                                       ".map((t) => [t.name, t.line.color, t.y.length])")
                model = api.get(f"/api/runs/{run['id']}/matrices/neural-model/spectrum").json()
                pr = f"neural-model: PR {model['participation_ratio']:.1f}, 90 % in " \
                     f"{model['components_90']} of {model['n']}"
                assert sorted(t[0].split(":")[0] for t in traces) == sorted(names)
                assert pr in [t[0] for t in traces]
                assert [t[1:] for t in traces if t[0] == pr] == [["#d62728",
                                                                  len(model["fractions"])]]
                legend = page.locator("#fig-spectrum .legendtext").all_text_contents()
                assert pr in legend and all(" PR " in t for t in legend), legend
                assert "participation ratio" in page.evaluate(TITLE, "fig-spectrum")
                assert figure_problems(page) == []
                spectrum_png = OUTPUT / "similarity-spectrum.png"
                page.locator("#fig-spectrum").screenshot(path=str(spectrum_png))
                page.screenshot(path=str(OUTPUT / "similarity-run.png"), full_page=True)
    finally:
        get_settings.cache_clear()


def test_evaluate_page_draws_noise_curve_budget_curve_and_medians(  # type: ignore[no-untyped-def]
    browser, settings: Settings
) -> None:
    from tests.server.test_train_api import _stored_run

    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        trained = _stored_run(settings, "train", artifacts=("model.pt",))
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
            run = api.post("/api/runs", json={"kind": "evaluate",
                                              "config": {"train_run": trained}}).json()
            sigmas = [0.0, 0.05, 0.1, 0.2, 0.4]
            points = [{"key": "noise_sigma", "step": k, "value": v} for k, v in enumerate(sigmas)]
            points += [{"key": "noise_acc", "step": k, "value": 0.9 - 1.5 * v}
                       for k, v in enumerate(sigmas)]
            points += [{"key": "median_l2", "step": 0, "value": 0.11},
                       {"key": "median_linf", "step": 0, "value": 0.0031}]
            points += [{"key": "budget_median_l2", "step": s, "value": 0.5 / (1 + s / 100)}
                       for s in (100, 200, 700, 800, 1800)]
            api.post(f"/api/runs/{run['id']}/metrics", json={"points": points})
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{url}/runs/{run['id']}#token={token}")
            noise = "[data-title^='Accuracy under Gaussian noise']"
            page.wait_for_function(
                f"() => {{ const d = document.querySelector(\"{noise}\");"
                " return d && d.data && d.data[0].x.length === 5; }", timeout=20_000)
            xs = page.evaluate(f"() => document.querySelector(\"{noise}\").data[0].x")
            assert xs == sigmas  # accuracy against σ, not against the step index
            budget = page.locator("[data-title='Median L2 vs attack budget']")
            assert budget.count() == 1
            scores = page.locator("#scores").inner_text()
            assert "median_l2" in scores and "0.1100" in scores and "noise_acc" not in scores
            link = page.locator("#input-run")
            assert link.inner_text() == f"run #{trained}"
            assert figure_problems(page) == []
            page.screenshot(path=str(OUTPUT / "evaluate-run.png"), full_page=True)
