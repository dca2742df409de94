"""The dashboard's other pages in headless chromium: submit (validation next to the
field, then a real run through a worker), tokens, study aggregates, compare, runs filters.
Screenshots go to test-output/."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import pytest

from core.lifecycle import finish_run
from core.settings import Settings
from core.store.db import session_scope
from core.store.models import Run, RunStatus, User
from core.store.runs import create_run
from core.store.users import ensure_admin
from tests.browser.conftest import OUTPUT, figure_problems
from tests.livesrv import live_server, live_worker

pytestmark = pytest.mark.browser
CORRUPTED = ["gaussian_noise", "fog", "contrast"]

# a figure's whole title as read: its lines and its subtitle
TITLE = ("(id) => { const t = document.getElementById(id).layout.title;"
         " return `${t.text} ${(t.subtitle || {}).text || ''}`.replace(/<br>/g, ' '); }")


def _login(browser, url: str, token: str, path: str, **kw):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1280, "height": 900}, **kw)
    page.goto(f"{url}{path}#token={token}")
    return page


def test_submit_form_shows_errors_by_the_field_then_runs_it(browser, settings: Settings, tmp_path):  # type: ignore[no-untyped-def]
    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url, live_worker(settings, tmp_path / "worker.log"):
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        page = _login(browser, url, token, "/submit?kind=train")
        page.wait_for_selector("#f-epochs")
        from ml.regularize.targets import TARGETS

        # every registered target, in the registry's order: read from the API's schema
        assert page.locator("#f-target option").all_inner_texts() == list(TARGETS)
        page.fill("#f-epochs", "0")
        page.click("#submit")
        page.wait_for_function("() => document.getElementById('err-epochs').textContent.length > 0")
        assert "greater than or equal to 1" in page.locator("#err-epochs").inner_text()
        assert page.url.endswith("/submit?kind=train")  # nothing submitted
        page.screenshot(path=str(OUTPUT / "submit-error.png"), full_page=True)
        page.fill("#run-name", "<b>from the form</b>")
        page.fill("#run-tags", "ui, smoke")
        for field, value in (("epochs", "1"), ("width", "8"), ("batch_size", "256")):
            page.fill(f"#f-{field}", value)
        page.select_option("#f-backbone", "small_cnn")
        page.select_option("#f-device", "cpu")
        page.click("#submit")
        page.wait_for_url("**/runs/*")
        page.wait_for_function(
            "() => document.getElementById('run-status').textContent === 'succeeded'",
            timeout=120_000)
        page.wait_for_function("() => { const d = document.querySelector('.chart');"
                               " return d && d.data && d.data[0].x.length > 0; }")
        assert page.locator("#run-title").inner_text().endswith("<b>from the form</b>")
        page.screenshot(path=str(OUTPUT / "submitted-run.png"), full_page=True)
        runs = page.context.request.get(f"{url}/api/runs?tag=smoke",
                                        headers={"Authorization": f"Bearer {token}"}).json()
        assert runs["total"] == 1 and runs["items"][0]["tags"] == ["smoke", "ui"]


def test_submit_form_guides_with_help_pickers_presets_and_an_estimate(browser, settings):  # type: ignore[no-untyped-def]
    import dataclasses
    from datetime import timedelta

    from core.store.models import utcnow
    from ml import presets
    from ml.train import TrainConfig
    from tests.server.test_matrices import stored_targets

    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        sim = stored_targets(settings, 50)  # a succeeded similarity run to pick
        with session_scope(settings.db_url) as s:  # a finished run of the CPU preset's setting
            done = create_run(s, owner=s.query(User).first(), kind="train", name="earlier",
                              config=dataclasses.asdict(TrainConfig(**presets.TRAIN)))
            finish_run(s, done.id, RunStatus.succeeded, result={"layers": [1]})
            row = s.get(Run, done.id)
            row.finished_at = utcnow()
            row.started_at = row.finished_at - timedelta(seconds=120)
        page = _login(browser, url, token, "/submit?kind=train")
        page.wait_for_selector("#f-epochs")
        # help from the config's own docstring, beside its field
        assert "weight of the similarity loss" in page.locator("#help-alpha").inner_text()
        assert page.locator("#f-alpha").get_attribute("aria-describedby") == "help-alpha"
        # the run a field names: a picker of succeeded runs of the kind it takes
        options = page.locator("#f-target_run option").all_inner_texts()
        assert any(o.startswith(f"#{sim} ") for o in options) and len(options) == 2
        assert "No finished train run of this dataset" in page.locator("#estimate").inner_text()
        page.select_option("#preset", "cpu")  # the CPU-sized preset, with its time here
        page.wait_for_function("() => document.getElementById('f-width').value === '8'")
        assert page.locator("#f-epochs").input_value() == str(presets.TRAIN["epochs"])
        assert page.locator("#f-dataset").input_value() == "digits32"
        page.wait_for_function("() => document.getElementById('estimate').textContent"
                               ".startsWith('About 2 min')")
        assert f"from run #{done.id}" in page.locator("#estimate").inner_text()
        assert "preset=cpu" in page.url
        page.select_option("#f-target_run", str(sim))
        page.select_option("#f-target", "neural-model")
        page.screenshot(path=str(OUTPUT / "submit-guided.png"), full_page=True)


def test_tokens_page_creates_shows_once_and_revokes(browser, settings: Settings):  # type: ignore[no-untyped-def]
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        page = _login(browser, url, token, "/tokens")
        page.wait_for_selector("#token-rows tr")
        page.fill("#token-name", "laptop")
        page.keyboard.press("Enter")  # keyboard only
        secret = page.wait_for_selector("#new-token-value").inner_text()
        assert httpx.get(f"{url}/api/me", headers={"Authorization": f"Bearer {secret}"}
                         ).status_code == 200
        page.click("button[aria-label='revoke laptop']")
        page.wait_for_function("() => [...document.querySelectorAll('#token-rows tr')]"
                               ".some((r) => r.textContent.includes('revoked'))")
        assert httpx.get(f"{url}/api/me", headers={"Authorization": f"Bearer {secret}"}
                         ).status_code == 401
        page.screenshot(path=str(OUTPUT / "tokens.png"), full_page=True)


def _study_with_results(settings: Settings, stimuli: int = 400, models: bool = True) -> int:
    """A finished 2-condition × 3-seed × 2-α study, stored as workers would leave it: its
    target run (``stimuli`` images), train runs with test_acc curves (the neural ones with
    their model.pt unless ``models`` is false) and their evaluations."""
    import dataclasses

    import torch

    from core.store.artifacts import save_artifact
    from core.store.metrics import insert_points
    from ml.models import build_backbone
    from ml.train import TrainConfig
    from ml.train.classifier import checkpoint_bytes
    from tests.server.test_matrices import stored_targets

    sim = stored_targets(settings, stimuli)
    with session_scope(settings.db_url) as s:
        owner = s.query(User).first()
        study = create_run(s, owner=owner, kind="study", name="grid",
                           config={"target_run": sim}, input_run_id=sim)
        sigmas = [0.0, 0.1, 0.2, 0.4]
        for target, alphas in (("none", [0.0]), ("neural-model", [2.0, 16.0])):
            for alpha in alphas:
                for seed in range(3):
                    neural = target != "none"
                    cfg = TrainConfig(backbone="resnet18", width=4, dataset="digits32",
                                      target=target, alpha=alpha, seed=seed,
                                      target_run=sim if neural else None)
                    train = create_run(s, owner=owner, kind="train", name="t", parent_id=study.id,
                                       config=dataclasses.asdict(cfg),
                                       input_run_id=sim if neural else None)
                    gain = 0.0 if target == "none" else 0.05 * alpha ** 0.5
                    insert_points(s, train.id, [("test_acc", 100 * (e + 1) - 1,
                                                 0.5 + 0.1 * e + gain + 0.01 * seed, None)
                                                for e in range(4)])
                    if neural and models:
                        torch.manual_seed(0)
                        model = build_backbone("resnet18", num_classes=10, width=4)
                        save_artifact(s, settings.artifacts, run_id=train.id, name="model.pt",
                                      data=checkpoint_bytes(model, cfg, step=0),
                                      media_type="application/octet-stream")
                    finish_run(s, train.id, RunStatus.succeeded, result={
                        "gamma": [0.2] * 5 if target == "none" else [0, 1, 0, 0, 0],
                        "layers": [1, 5, 9, 13, 17],
                        **({"r_similarity_per_tap": [0.1, 0.5 + 0.1 * seed, 0.3, 0.2, 0.1]}
                           if neural else {})})
                    ev = create_run(s, owner=owner, kind="evaluate", name="e", parent_id=study.id,
                                    input_run_id=train.id, config={})
                    finish_run(s, ev.id, RunStatus.succeeded, result={
                        "noise": {"sigmas": sigmas, "accuracy": [
                            0.9, 0.6 + gain + 0.01 * seed, 0.3 + gain, 0.1 + gain]},
                        "median_l2": 0.1 + gain + 0.003 * seed, "median_linf": 0.003,
                        "curves": {"l2": [[100, 0.5], [300, 0.2 + gain], [900, 0.1 + gain]]},
                        "autoattack": {"components": ["apgd-ce"], "threat_models": {"linf": [
                            {"epsilon": 8 / 255, "version": "custom", "n": 100,
                             "robust_accuracy": 0.1 + gain / 2 + 0.01 * seed,
                             "after": {"apgd-ce": 0.2}}]}},
                        "corruptions": {
                            "names": CORRUPTED, "severities": [1, 2, 3, 4, 5], "n": 100,
                            "accuracy": {c: [0.9 - 0.1 * k - (0.05 - gain / 4) * i - 0.01 * seed
                                             for k in range(5)]
                                         for i, c in enumerate(CORRUPTED)},
                            "mean_accuracy": 0.6 + gain / 4}})
        finish_run(s, study.id, RunStatus.succeeded, result={"runs": 18, "failed": []})
        s.get(Run, study.id).message = "18/18 runs finished"
        return study.id


def _drawn(page, fig: str, timeout: int = 30_000) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function(f"() => {{ const d = document.getElementById('{fig}');"
                           " return d && d.data && d.data.length > 0"
                           " && d.querySelector('.main-svg'); }", timeout=timeout)


def test_study_page_draws_fig4_fig5_fig6_table1_and_paired_tests(browser, settings: Settings,  # type: ignore[no-untyped-def]
                                                                 tmp_path):
    # the worker computes the S_CNN overviews the stored train runs lack
    with live_server(settings) as url, live_worker(settings, tmp_path / "worker.log"):
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        study = _study_with_results(settings)
        page = _login(browser, url, token, f"/runs/{study}")  # a run link lands on the study
        page.wait_for_url(f"**/studies/{study}")
        for fig in ("fig4", "fig5-l2", "fig5-linf", "fig5-budget-l2", "fig6", "study-curve",
                    "fig-autoattack-linf", "fig-mce", "fig-corruptions-none",
                    "fig-corruptions-neural-model-16",
                    "fig-target-S_target_neural_model", "fig-target-S_CNN_of_the_picked_model",
                    "fig-target-S_CNN_minus_S_target"):
            _drawn(page, fig)
        assert figure_problems(page) == []  # no title cut, no legend over an axis label
        fig4 = page.evaluate("() => document.getElementById('fig4').data.map((t) => t.name)")
        assert any(n.startswith("None (n=3)") for n in fig4)
        assert any("± SEM" in n for n in fig4)  # the shaded bands
        bars = page.evaluate("() => document.getElementById('fig5-l2').data[0].error_y.array")
        assert len(bars) == 3 and all(b > 0 for b in bars)
        # the field's standard numbers: AutoAttack per ε, mCE against None (1 by definition)
        # with SEM over the paired seeds, one corruption heatmap per condition
        aa = page.evaluate("() => document.getElementById('fig-autoattack-linf').data"
                           ".map((t) => [t.name, t.x, t.error_y.array])")
        assert aa[0][0] == "ε = 8/255" and "None" in aa[0][1] and all(e > 0 for e in aa[0][2])
        assert "custom" in page.evaluate(TITLE, "fig-autoattack-linf")
        mce = page.evaluate("() => { const t = document.getElementById('fig-mce').data[0];"
                            " return [t.x, t.y, t.error_y.array]; }")
        none = mce[0].index("None")
        assert abs(mce[1][none] - 1) < 1e-9 and mce[2][none] == 0 and len(mce[0]) == 3
        others = [k for k in range(3) if k != none]
        assert all(mce[1][k] < 1 and mce[2][k] > 0 for k in others)
        heat = page.evaluate("() => { const t = document.getElementById("
                             "'fig-corruptions-none').data[0]; return [t.type, t.y, t.x]; }")
        from ml.evaluate.corruptions import CORRUPTIONS

        assert heat == ["heatmap", [CORRUPTIONS[c].label for c in CORRUPTED], list("12345")]
        assert heat[1][0] == "Gaussian noise"  # labels, not stored names
        # Fig. 6 as in the paper: None at α = 0, each condition from it, SEM bars, a legend,
        # the condition colours
        fig6 = page.evaluate("() => document.getElementById('fig6').data.map((t) =>"
                             " [t.name, t.x, t.marker.color, t.error_y.visible])")
        assert fig6[0][:2] == ["None", ["0"]]
        assert fig6[1][:2] == ["Neural (model)", ["0", "2", "16"]]
        assert fig6[0][2] != fig6[1][2] and all(t[3] for t in fig6)
        assert page.evaluate("() => document.getElementById('fig6')._fullLayout.showlegend")
        # training curves: test_acc per condition, mean over the 3 seeds at each epoch
        curve = page.evaluate("() => document.getElementById('study-curve').data"
                              ".filter((t) => t.customdata).map((t) => [t.name, t.x, t.y])")
        none = next(c for c in curve if c[0].startswith("None (n=3)"))
        assert none[1] == [99, 199, 299, 399] and abs(none[2][0] - 0.51) < 1e-9
        # S_target of the study's target run, S_CNN (γ-weighted) and the difference map
        title = page.evaluate(TITLE, "fig-target-S_CNN_of_the_picked_model")
        assert "γ-weighted" in title and "Neural (model) α=16 seed 0" in page.locator(
            "#sim-run option:checked").inner_text()
        page.select_option("#fig-target-S_CNN_minus_S_target-pick", "cnn-1")
        page.wait_for_function("() => document.getElementById('fig-target-S_CNN_minus_S_target')"
                               ".view.name === 'cnn-1'")
        # every condition's first seed side by side, in place of the one model
        page.select_option("#sim-run", "all")
        for fig in ("fig-target-S_CNN_Neural_model_2", "fig-target-S_CNN_Neural_model_16"):
            _drawn(page, fig)
        assert page.locator("#fig-target-S_CNN_minus_S_target").count() == 0
        titles = [page.evaluate(TITLE, f"fig-target-S_CNN_Neural_model_{a}") for a in (2, 16)]
        assert "seed 0" in titles[0] and "α=16 seed 0" in titles[1]
        assert "model=all" in page.evaluate("() => location.search")  # shareable
        page.screenshot(path=str(OUTPUT / "study-every-condition.png"), full_page=True)
        text = page.locator("#page").inner_text()
        assert "γ5" in text and "1.00 ± 0.00" in text  # Table 1
        tap_r = page.locator("#tap-r").inner_text()  # r per tap beside Table 1
        assert "layer 5" in tap_r and "0.600 ± 0.058" in tap_r and "None" not in tap_r
        assert "noise_accuracy" in text and "Wilcoxon" in text
        assert page.locator(".modebar-btn[data-title='Download data as CSV']").count() >= 1
        # the figure tools work from the keyboard: focus the CSV button, press Enter
        csv = page.locator("#fig4 .modebar-btn[data-title='Download data as CSV']")
        csv.focus()
        assert page.evaluate("() => document.activeElement.getAttribute('aria-label')"
                             ) == "Download data as CSV"
        with page.expect_download() as download:
            page.keyboard.press("Enter")
        assert download.value.suggested_filename.endswith(".csv")
        text = Path(download.value.path()).read_text()
        assert text.startswith("trace,x,y,z_or_error") and "None (n=3)" in text
        page.screenshot(path=str(OUTPUT / "study.png"), full_page=True)
        # a bar leads to its condition's runs, by a URL one can share
        page.evaluate("() => { const d = document.getElementById('fig5-l2');"
                      " d.emit('plotly_click',"
                      " { points: [{ customdata: d.data[0].customdata[1] }] }); }")
        page.wait_for_function("() => location.hash === '#cond-neural-model-16'")
        row = page.locator("#cond-neural-model-16")
        page.screenshot(path=str(OUTPUT / "study-condition.png"))
        assert "picked" in (row.get_attribute("class") or "") and row.locator("a").count() == 7
        page.goto(f"{url}/studies/{study}#cond-none")  # the token is already stored
        page.wait_for_selector("#cond-none.picked")
        shared = browser.new_page()  # a colleague's first visit: token and anchor in one link
        shared.goto(f"{url}/studies/{study}#cond-none&token={token}")
        shared.wait_for_selector("#cond-none.picked")
        assert shared.evaluate("() => location.hash") == "#cond-none"
        shared.goto(f"{url}/studies/{study}?model=all")  # a shared pick
        _drawn(shared, "fig-target-S_CNN_Neural_model_16")
        assert shared.locator("#sim-run").input_value() == "all"


def test_compare_overlays_and_runs_filters_live_in_the_url(browser, settings: Settings):  # type: ignore[no-untyped-def]
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        headers = {"Authorization": f"Bearer {token}"}
        ids = []
        for i in range(3):
            run = httpx.post(f"{url}/api/runs", headers=headers, json={
                "kind": "external", "name": f"sweep {i}",
                "config": {"params": {"lr": 0.1 * (i + 1), "batch": 64, "opt": {"name": "sgd"}}},
                "provenance": {"git_commit": "a" * 40, "host": f"gpu{i % 2}",
                               "packages": {"numpy": f"2.{i}.0", "torch": "2.4.0"}}}
            ).json()
            httpx.post(f"{url}/api/runs/{run['id']}/metrics", headers=headers, json={
                "points": [{"key": "loss", "step": k, "value": (i + 1) / (k + 1)}
                           for k in range(50)]})
            ids.append(run["id"])
        httpx.patch(f"{url}/api/runs/{ids[0]}", headers=headers, json={"tags": ["best"]})
        page = _login(browser, url, token, f"/compare?runs={ids[0]},{ids[2]}&key=loss")
        page.wait_for_function("() => { const d = document.getElementById('compare-chart');"
                               " return d && d.data && d.data.length === 2; }")
        assert page.evaluate("() => document.getElementById('compare-chart').data[1].y[0]") == 3
        # the config diff: only the field that differs (lr), its differing value marked
        page.wait_for_selector("#diff-table")
        rows = page.locator("#diff-table tbody tr").all_inner_texts()
        assert rows == ["params.lr\t0.1\t0.30000000000000004"], rows
        assert page.locator("#diff-table td.differs").count() == 1
        assert "1 of 4 fields differ" in page.locator("#config-diff").inner_text()
        # the provenance diff: runs 1 and 3 ran on one host, with other numpy versions
        page.wait_for_selector("#provenance-table")
        rows = page.locator("#provenance-table tbody tr").all_inner_texts()
        assert rows == ["package numpy\t2.0.0\t2.2.0"], rows
        assert "0 fields and 1 package differ; 12 fields and 1 package are" in page.locator(
            "#provenance-diff").inner_text()
        assert page.locator("#provenance-table td.differs").count() == 1
        assert figure_problems(page) == []
        page.screenshot(path=str(OUTPUT / "compare.png"), full_page=True)
        page.goto(f"{url}/?tag=best&order=oldest")
        page.wait_for_selector("#run-rows tr")
        assert page.locator("#run-rows tr").count() == 1
        assert page.locator("select[name=order]").input_value() == "oldest"
        page.select_option("select[name=kind]", "external")
        page.wait_for_function("() => location.search.includes('kind=external')")
        # a study's cells are hidden by "top-level only", which lives in the URL too
        study = httpx.post(f"{url}/api/runs", headers=headers,
                           json={"kind": "external", "name": "parent"}).json()
        httpx.post(f"{url}/api/runs", headers=headers, json={
            "kind": "external", "name": "child cell", "parent_id": study["id"]})
        page.goto(f"{url}/?kind=external")
        page.wait_for_function("() => document.querySelector('#run-rows').textContent"
                               ".includes('child cell')")
        page.check("input[name=top_level]")
        page.wait_for_function("() => location.search.includes('top_level=true') && "
                               "!document.querySelector('#run-rows').textContent"
                               ".includes('child cell')")
        assert page.locator("#run-rows tr").count() == 4
        page.reload()
        assert page.locator("input[name=top_level]").is_checked()


def test_a_large_target_shows_an_overview_and_exact_blocks_on_zoom(browser, settings: Settings):  # type: ignore[no-untyped-def]
    from tests.server.test_matrices import stored_targets

    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        rid = stored_targets(settings, 2000)
        page = _login(browser, url, token, f"/runs/{rid}")
        sel = "fig-target-S_target_neural_model"
        page.wait_for_function(f"() => {{ const d = document.getElementById('{sel}');"
                               " return d && d.data && d.data[0] && d.data[0].z.length === 200; }",
                               timeout=20_000)
        assert page.evaluate(f"() => document.getElementById('{sel}').dataset.exact") == "0"
        assert page.locator("#fig-target-S_model_S_data").count() == 1  # the difference map
        page.evaluate(f"() => Plotly.relayout('{sel}', {{'xaxis.range': [100, 300],"
                      " 'yaxis.range': [400, 250]})")
        page.wait_for_function(f"() => document.getElementById('{sel}').dataset.exact === '1'")
        z = page.evaluate(f"() => document.getElementById('{sel}').data[0].z")
        assert 150 <= len(z) <= 152 and 200 <= len(z[0]) <= 202  # exact cells, not means
        assert figure_problems(page) == []
        page.screenshot(path=str(OUTPUT / "target-zoom.png"), full_page=True)


def test_a_train_run_page_shows_s_target_beside_s_cnn_per_tap(browser, settings: Settings,  # type: ignore[no-untyped-def]
                                                              tmp_path):
    import dataclasses

    import torch

    from core.store.artifacts import save_artifact
    from ml.models import build_backbone
    from ml.train import TrainConfig
    from ml.train.classifier import checkpoint_bytes
    from tests.server.test_matrices import stored_targets

    with live_server(settings) as url, contextlib.ExitStack() as later:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        sim = stored_targets(settings, 400)
        cfg = TrainConfig(backbone="small_cnn", width=4, target="neural-model", target_run=sim)
        with session_scope(settings.db_url) as s:
            run = create_run(s, owner=s.query(User).first(), kind="train", name="trained",
                             config=dataclasses.asdict(cfg), input_run_id=sim)
            torch.manual_seed(0)
            save_artifact(s, settings.artifacts, run_id=run.id, name="model.pt",
                          data=checkpoint_bytes(build_backbone("small_cnn", num_classes=10,
                                                               width=4), cfg, step=0),
                          media_type="application/octet-stream")
            finish_run(s, run.id, RunStatus.succeeded,
                       result={"layers": [1, 2, 3], "gamma": [0.2, 0.5, 0.3],
                               "r_similarity": 0.4321, "r_similarity_per_tap": [0.1, 0.2, 0.3]})
            rid = run.id
        page = _login(browser, url, token, f"/runs/{rid}")
        # no S_CNN overview stored: the page says a worker is computing it
        page.wait_for_function("() => { const d = document.getElementById("
                               "'fig-target-S_CNN_layer_1'); return d && d.layout"
                               " && (d.layout.title.subtitle || {}).text"
                               "?.includes('a worker is computing'); }",
                               timeout=30_000)
        page.screenshot(path=str(OUTPUT / "train-s-cnn-pending.png"), full_page=True)
        later.enter_context(live_worker(settings, tmp_path / "worker.log"))
        for fig in ("fig-target-S_target_what_it_was_trained_toward_", "fig-target-S_CNN_layer_1",
                    "fig-target-S_CNN_layer_2", "fig-target-S_CNN_layer_3",
                    "fig-target-S_CNN_weighted_Eq_10_", "fig-target-S_CNN_S_target"):
            page.wait_for_function(f"() => {{ const d = document.getElementById('{fig}');"
                                   " return d && d.data && d.data[0]"
                                   " && d.data[0].z.length === 200; }",
                                   timeout=30_000)
        z = page.evaluate("() => ['fig-target-S_CNN_weighted_Eq_10_', 'fig-target-S_CNN_S_target',"
                          " 'fig-target-S_target_what_it_was_trained_toward_']"
                          ".map((id) => document.getElementById(id).data[0].z)")
        import numpy as np

        mixed, diff, target = (np.array(m) for m in z)
        assert figure_problems(page) == []
        assert "r(S_CNN, S_target) = 0.432 on held-out" in page.evaluate(
            TITLE, "fig-target-S_CNN_weighted_Eq_10_")
        assert "r(S_k, S_target) = 0.200 on held-out" in page.evaluate(
            TITLE, "fig-target-S_CNN_layer_2")
        assert np.allclose(diff, mixed - target, atol=2e-4)  # S_CNN − S_target, same order
        page.screenshot(path=str(OUTPUT / "train-s-cnn.png"), full_page=True)


def test_study_frontier_matched_table_and_papers_values(browser, settings: Settings):  # type: ignore[no-untyped-def]
    from tests.server.test_frontier_api import stored_study

    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        ids = stored_study(settings, note="Why: does the gain survive at matched accuracy?")
        empty = stored_study(settings, evaluated=False)
        page = _login(browser, url, token, f"/studies/{ids['study']}")
        _drawn(page, "frontier")
        assert page.locator("#study-note").inner_text() == \
            "Why: does the gain survive at matched accuracy?"
        traces = page.evaluate("() => document.getElementById('frontier').data.map((t) =>"
                               " [t.name, t.xaxis, t.showlegend, t.text, t.error_x.array.length,"
                               " t.error_y.array.length])")
        # four measures (mean and highest-σ noise accuracy, L2 and L∞ medians), one trace per
        # condition in each; a condition is in the legend once
        assert len(traces) == 12 and {t[1] for t in traces} == {"x", "x2", "x3", "x4"}
        assert [t[0] for t in traces if t[2]] == ["None", "neural-model", "shuffle"]
        neural = next(t for t in traces if t[0] == "neural-model")
        assert neural[3] == ["α=2", "α=16"] and neural[4] == neural[5] == 2
        assert next(t for t in traces if t[0] == "None")[3] == ["α=0"]
        # one colour per condition, line and markers alike, no two conditions sharing one
        # (Fig. 4's per-(condition, α) colours cycle once a grid has more cells than colours)
        colours = page.evaluate("""() => Object.fromEntries(document.getElementById('frontier')
            .data.filter((t) => t.showlegend).map((t) => [t.name, [t.line.color,
                                                                  t.marker.color]]))""")
        assert all(line == marker for line, marker in colours.values()), colours
        assert len({line for line, _ in colours.values()}) == len(colours) == 3
        table = page.locator("#frontier-table").inner_text()
        assert "neural-model\tα=2\t-0.005\tclean accuracy (σ = 0)" in table
        assert "accuracy at the highest σ\t3\t+0.1000 ± 0.0000" in table
        assert "no α within ±0.02 (closest α=16, gap -0.100)" in table
        note = page.locator("#frontier-matched").inner_text()
        assert "Higher is better for every measure" in note and "below 2/2^3 = 0.250" in note
        # a wider tolerance matches Shuffle too, and lives in the URL
        page.fill("#frontier-tolerance", "0.2")
        page.dispatch_event("#frontier-tolerance", "change")
        page.wait_for_function("() => !document.getElementById('frontier-table')"
                               ".textContent.includes('no α within')")
        assert "tolerance=0.2" in page.evaluate("() => location.search")
        page.fill("#frontier-tolerance", "-1")
        page.dispatch_event("#frontier-tolerance", "change")
        page.wait_for_function("() => document.getElementById('frontier-note')"
                               ".textContent.includes('tolerance: Input should be greater than 0')")
        assert page.locator("#frontier-charts").is_hidden()
        paired = page.locator("#paired-tests").inner_text()
        assert "mean difference ± SEM" in paired and "+0.0203 ± 0.0002" in paired
        # what the pairs can say: a direction only when the 95 % interval excludes 0
        assert "95 % interval\tverdict\tdetectable" in paired
        clear = next(ln for ln in paired.splitlines() if "+0.0203 ± 0.0002" in ln)
        assert "\thigher\t" in clear, clear
        verdicts = {ln.split("\t")[5] for ln in paired.splitlines()[1:]}
        assert verdicts <= {"higher", "lower", "unresolved"}, verdicts
        # the paper's values: off by default, on by the toggle (and in the URL)
        assert "paper" not in " ".join(page.evaluate(
            "() => document.getElementById('fig4').data.map((t) => t.name)"))
        differences = page.locator("#paper-differences").inner_text()
        assert "digits32\tgrayscale CIFAR-10" in differences
        assert "simulated responses" in differences
        page.check("#paper-toggle")
        page.wait_for_function("() => document.getElementById('fig4').data"
                               ".some((t) => t.name === 'paper: Neural (model)')")
        fig4 = page.evaluate("() => document.getElementById('fig4').data"
                             ".filter((t) => t.name.startsWith('paper')).map((t) =>"
                             " [t.name, t.x, t.y, t.marker.symbol])")
        assert fig4 == [["paper: None", [0.4], [0.2], "diamond-open"],
                        ["paper: Neural (model)", [0.4], [0.5], "diamond-open"]]
        fig5 = page.evaluate("() => document.getElementById('fig5-linf').data"
                             ".filter((t) => t.name.startsWith('paper')).map((t) => [t.x, t.y])")
        assert fig5 == [[["paper: None", "paper: Shuffle", "paper: VGG", "paper: Neural (model)"],
                         [0.0025, 0.003, 0.0028, 0.0034]]]
        # this study taps two layers: the paper's Table 1 stands on its own, in its rows
        assert page.locator("#paper-gamma tr.paper-row").count() == 6
        assert "paper: Neural (model) α=32" in page.locator("#paper-gamma").inner_text()
        assert "paper=1" in page.evaluate("() => location.search")
        assert figure_problems(page) == []
        page.screenshot(path=str(OUTPUT / "study-paper.png"), full_page=True)
        # a study with nothing evaluated yet says so where the frontier would be
        page.goto(f"{url}/studies/{empty['study']}")
        page.wait_for_function("() => document.getElementById('frontier-note')"
                               ".textContent.includes('no finished evaluations yet')")
        assert page.locator("#frontier-charts").is_hidden()
        page.wait_for_selector("#study-conditions")  # the rest of the page still draws


def test_the_leaderboard_sorts_by_a_clicked_column_and_a_run_shows_its_record(  # type: ignore[no-untyped-def]
        browser, settings: Settings):
    import json

    from core.store.models import Role
    from core.store.users import create_user
    from tests.server.test_records_api import stored

    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
            create_user(s, name="ada", role=Role.member)
        ids = stored(settings)
        page = _login(browser, url, token, "/leaderboard")
        page.wait_for_selector("#lb-rows tr")
        column = "() => [...document.querySelectorAll('#lb-rows tr')].map((r) => r.dataset.run)"
        ev = [str(i) for i in ids["evals"]]
        assert page.evaluate(column) == [ev[1], ev[0], ev[3], ev[2]]  # AA L∞ 8/255, best first
        head = page.locator("#lb-head").inner_text()
        assert "AA L∞ 8/255" in head and "AA L2 0.5" in head
        assert "20.0*" in page.locator(f"#lb-rows tr[data-run='{ev[1]}']").inner_text()
        assert "custom" in page.locator("#lb-note").inner_text()
        page.screenshot(path=str(OUTPUT / "leaderboard.png"), full_page=True)
        page.click("button.sort[data-key='clean_acc']")  # highest first, then lowest
        page.wait_for_function(f"() => ({column})()[0] === '{ev[0]}'")
        assert page.evaluate("() => location.search").startswith("?sort=clean_acc&order=desc")
        page.click("button.sort[data-key='clean_acc']")
        page.wait_for_function(f"() => ({column})()[0] === '{ev[3]}'")
        assert page.get_attribute("th[aria-sort='ascending'] button", "data-key") == "clean_acc"
        page.fill("input[name=eps_linf]", "0.1")  # another ε: another column
        page.press("input[name=eps_linf]", "Enter")
        page.click("button.sort[data-key='autoattack_linf']")
        # the answer to the click (ev[3] led the clean sort too: wait for the sort itself)
        page.wait_for_selector("th[aria-sort='descending'] button[data-key='autoattack_linf']")
        assert page.evaluate(column)[0] == str(ev[3])
        assert "AA L∞ 0.1" in page.locator("#lb-head").inner_text()
        page.fill("input[name=eps_linf]", "2")
        page.press("input[name=eps_linf]", "Enter")
        page.wait_for_function("() => document.getElementById('lb-error').textContent")
        assert "eps_linf" in page.locator("#lb-error").inner_text()
        with page.expect_download() as download:  # a row's record, with the token
            page.locator("#lb-rows a.download").first.click()
        rec = json.loads(Path(download.value.path()).read_text())
        assert rec["schema"] == "neuroreg.record/1"
        # an evaluation's page: its record's tables, the corruption heatmap, the download
        run = _login(browser, url, token, f"/runs/{ids['evals'][1]}")
        run.wait_for_selector("#record:not([hidden]) #record-autoattack")
        _drawn(run, "record-corruptions")
        table = run.locator("#record-autoattack").inner_text()
        assert "L∞" in table and "8/255" in table and "20.0 %" in table and "custom" in table
        assert "75.0 %" in run.locator("#record-tables").inner_text()
        # its attacks' soundness (suspect in L∞: HopSkipJump beat them) and its mechanism
        rows = run.evaluate("() => [...document.querySelectorAll('#record-soundness tbody tr')]"
                            ".map((r) => [...r.cells].map((c) => c.textContent))")
        assert [r[:2] for r in rows] == [["L2", "sound"], ["L∞", "suspect"]]
        assert rows[1][4] == "0.0040 vs 0.0100 (5 of 7 smaller)" and rows[1][6] == "2"
        assert rows[0][3] == "1.30×" and rows[0][5] == "–"  # no transfer run here
        tables = run.locator("#record-tables").inner_text()
        assert "L∞: HopSkipJump beats the gradient attacks" in tables
        assert "transferred from run #4" in tables
        mechanism = run.locator("#record-mechanism").inner_text()
        assert "L2 perturbations' energy in the top 64 PCs\t0.300" in mechanism
        assert "random directions' (k/D = 0.0625)\t0.060" in mechanism
        assert "Layer similarity: no similarity target" in tables
        run.screenshot(path=str(OUTPUT / "run-record.png"), full_page=True)
        with run.expect_download() as download:
            run.click("#record-download")
        assert download.value.suggested_filename == f"neuroreg-record-{ids['evals'][1]}.json"


def test_the_submit_form_inspects_a_recording_with_its_importer_options(  # type: ignore[no-untyped-def]
        browser, settings: Settings):
    from tests.ml.neural.test_nwb_layouts import write_lab_nwb

    settings.recordings.mkdir(parents=True, exist_ok=True)
    write_lab_nwb(settings.recordings / "allen.nwb", layout="allen", dropout=(10.0, 13.0))
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        page = _login(browser, url, token, "/submit?kind=similarity")
        page.wait_for_selector("#f-recording")
        page.select_option("#f-source", "recording")
        page.fill("#f-recording", "allen.nwb")
        page.click("#inspect")
        page.wait_for_function("() => !document.getElementById('inspect-result')"
                               ".textContent.startsWith('reading')")
        text = page.locator("#inspect-result").inner_text()
        assert "acquisition/EyeTracking/eye_position: no samples" in text  # the refusal
        page.fill("#f-importer", '{"behavior_gaps": "fill"}')  # empty: every default
        page.click("#inspect")
        page.wait_for_function("() => document.getElementById('inspect-result')"
                               ".textContent.includes('→')", timeout=5000)
        text = page.locator("#inspect-result").inner_text()
        assert "dropped 4: blank (frame < 0)" in text and "filled 3" in text
        assert "pupil size: acquisition/PupilTracking/pupil_area [pixels^2]" in text
        assert "negative somewhere (dF/F" in text
        page.screenshot(path=str(OUTPUT / "submit-inspect.png"), full_page=True)


@contextlib.contextmanager
def _runs_page(browser, settings: Settings):  # type: ignore[no-untyped-def]
    """The Runs page signed in as the admin (and its token), over the query tests' stored
    runs (tests/core/test_query)."""
    from tests.core.test_query import stored

    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        stored(settings.db_url)
        page = _login(browser, url, token, "/")
        page.wait_for_selector("#run-rows tr")
        yield page, token


def test_an_answer_overtaken_by_a_later_query_never_replaces_its_table(browser, settings: Settings):  # type: ignore[no-untyped-def]
    """Filling the form fires a query per change: the answer to an earlier one, arriving
    after the last one's (held back here), is dropped instead of drawing the old table
    under the new columns."""
    with _runs_page(browser, settings) as (page, _):
        held = []

        def hold_the_first(route):  # type: ignore[no-untyped-def]
            if held:
                route.continue_()
            else:
                held.append(route)

        page.route("**/api/runs?*", hold_the_first)
        page.fill("#q", 'config.alpha >= 8 and (tag = "fig4" or tag = "fig6")')
        page.press("#q", "Enter")  # asks without columns: held
        page.fill("#columns", "config.alpha")
        page.press("#q", "Enter")
        cells = ("() => [...document.querySelectorAll('#run-rows tr td.col-extra')]"
                 ".map((td) => td.textContent).join()")
        page.wait_for_function(f"() => ({cells})() === '16,8'")
        with page.expect_response(lambda r: "/api/runs?" in r.url):
            held[0].continue_()
        page.evaluate("() => new Promise((done) => setTimeout(done))")  # its handler's turn
        assert page.evaluate(cells) == "16,8"


def test_the_runs_page_takes_a_query_kept_in_the_url(browser, settings: Settings):  # type: ignore[no-untyped-def]
    with _runs_page(browser, settings) as (page, token):
        names = ("() => [...document.querySelectorAll('#run-rows tr td:nth-child(3)')]"
                 ".map((td) => td.textContent)")
        page.fill("#q", 'config.alpha >= 8 and (tag = "fig4" or tag = "fig6")')
        page.fill("#sort", "config.alpha")
        page.check("input[name=desc]")
        page.fill("#columns", "config.alpha, metrics.test_acc.max")
        page.press("#q", "Enter")
        page.wait_for_function(f"() => ({names})().join() === 'c,a'")
        page.wait_for_selector("#run-head th.col-extra")
        heads = page.locator("#run-head th.col-extra").all_inner_texts()
        cells = page.evaluate("() => [...document.querySelectorAll('#run-rows tr')].map((tr) =>"
                              " [...tr.querySelectorAll('td.col-extra')].map((td) =>"
                              " td.textContent))")
        assert heads == ["config.alpha", "metrics.test_acc.max"]
        assert cells == [["16", "0.9200"], ["8", "0.9500"]]
        assert "q=config.alpha" in page.evaluate("() => decodeURIComponent(location.search)"
                                                 ".replace(/\\+/g, ' ')")
        page.screenshot(path=str(OUTPUT / "runs-query.png"), full_page=True)
        # grouped by target: each group's count and its metric columns' mean ± SEM
        page.fill("#q", 'kind = "train"')
        page.fill("#group", "config.target")
        page.press("#q", "Enter")
        page.wait_for_selector("#groups:not([hidden]) #group-rows tr")
        groups = page.locator("#group-rows tr").all_inner_texts()
        assert groups == ["neural-model\t2\t0.9350 ± 0.015 (n=2)", "none\t1\t0.8000 (n=1)"]
        assert "group=config.target" in page.evaluate("() => decodeURIComponent(location.search)")
        link = page.get_attribute("#group-compare", "href")  # the groups' curves in Compare
        assert link == "/compare?group=config.target&key=test_acc&q=kind+%3D+%22train%22", link
        page.screenshot(path=str(OUTPUT / "runs-groups.png"), full_page=True)
        page.fill("#q", 'config.alpha >= 8 and (tag = "fig4" or tag = "fig6")')
        page.fill("#group", "")
        page.press("#q", "Enter")
        page.wait_for_function(f"() => ({names})().join() === 'c,a'")
        with page.expect_download() as download:  # the query's runs with their columns
            page.click("#export")
        lines = Path(download.value.path()).read_text().splitlines()
        assert lines[0].endswith(",config.alpha,metrics.test_acc.max") and len(lines) == 3
        shared = browser.new_page()  # the URL alone brings the query back
        shared.goto(f"{page.url}#token={token}")
        shared.wait_for_function(f"() => ({names})().join() === 'c,a'")
        assert shared.input_value("#q").startswith("config.alpha >= 8")
        page.fill("#q", "config.alpha >")
        page.press("#q", "Enter")
        page.wait_for_function("() => document.getElementById('q-error').textContent")
        assert "q: at 14: the query ends too soon" in page.locator("#q-error").inner_text()


def test_compare_groups_curves_and_draws_parcoords_and_a_scatter(browser, settings: Settings):  # type: ignore[no-untyped-def]
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        headers = {"Authorization": f"Bearer {token}"}
        # two optimizers × three seeds; sgd's loss is twice adam's
        for opt, scale in (("sgd", 2.0), ("adam", 1.0)):
            for seed in range(3):
                run = httpx.post(f"{url}/api/runs", headers=headers, json={
                    "kind": "external", "name": f"{opt} {seed}",
                    "config": {"params": {"opt": opt, "seed": seed, "lr": 0.01 * (seed + 1)}}}
                ).json()
                httpx.post(f"{url}/api/runs/{run['id']}/metrics", headers=headers, json={
                    "points": [{"key": "loss", "step": k, "value": scale * (1 + seed) / (k + 1)}
                               for k in range(20)]})
                httpx.patch(f"{url}/api/runs/{run['id']}", headers=headers,
                            json={"tags": ["sweep"]})
        page = _login(browser, url, token,
                      '/compare?q=tag+%3D+"sweep"&key=loss&group=config.params.opt')
        page.wait_for_function("() => { const d = document.getElementById('compare-chart');"
                               " return d && d.data && d.data.length === 4; }")
        traces = page.evaluate("() => document.getElementById('compare-chart').data"
                               ".map((t) => [t.name, t.fill || '', t.y[0]])")
        # per group a band (fill) and its mean line: adam's seeds 1, 2, 3 → mean 2 at step 0
        bands = [t for t in traces if t[1] == "toself"]
        means = {t[0]: t[2] for t in traces if t[1] != "toself"}
        assert len(bands) == 2, traces
        assert means == {"params.opt=adam (n=3)": 2, "params.opt=sgd (n=3)": 4}, traces
        assert "6 runs in 2 groups" in page.locator("#compare-status").inner_text()
        # parallel coordinates default to the fields that differ and the metric
        page.wait_for_function("() => { const d = document.getElementById('compare-parcoords');"
                               " return d && d.data && d.data[0].type === 'parcoords'; }")
        dims = page.evaluate("() => document.getElementById('compare-parcoords').data[0]"
                             ".dimensions.map((d) => [d.label, d.ticktext || null])")
        assert dims == [["config.params.lr", None], ["config.params.opt", ["adam", "sgd"]],
                        ["config.params.seed", None], ["metrics.loss.last", None]], dims
        page.wait_for_function("() => { const d = document.getElementById('compare-scatter');"
                               " return d && d.data && d.data.length === 2; }")
        assert page.evaluate("() => document.getElementById('compare-scatter').data"
                             ".map((t) => t.x.length)") == [3, 3]
        csv = page.evaluate("async () => (await import('/static/figures.js'))"
                            ".csvOf(document.getElementById('compare-parcoords'))")
        lines = csv.splitlines()  # one row per run, categories as their text
        assert lines[0] == "config.params.lr,config.params.opt,config.params.seed,metrics.loss.last"
        assert len(lines) == 7 and lines[1] == "0.01,sgd,0,0.1", lines
        assert "6 of 6 runs have config.params.lr and metrics.loss.last" in page.locator(
            "#scatter-note").inner_text()
        assert figure_problems(page) == []
        page.screenshot(path=str(OUTPUT / "compare-groups.png"), full_page=True)
        # a scatter of two chosen fields, kept in the URL; a bad query names its position
        page.fill("#compare-x", "config.params.seed")
        page.fill("#compare-y", "metrics.loss.min")
        page.click("#compare-form button")
        page.wait_for_function("() => location.search.includes('x=config.params.seed')")
        page.wait_for_function("() => document.getElementById('compare-scatter').layout"
                               ".xaxis.title.text === 'config.params.seed'")
        page.fill("#compare-q", "tag =")
        page.click("#compare-form button")
        page.wait_for_function("() => document.getElementById('compare-error')"
                               ".textContent.includes('at ')")
