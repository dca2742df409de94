"""A run an unchanged MLflow client logged (tests/mlflowenv.py), on neuroreg's pages: the
links MLflow's client prints open the run's page and the experiment's runs; the run page
shows its params as config, its MLflow tags and experiment beside the provenance, and an
artifact in a folder, listed and downloadable. Screenshot: test-output/mlflow-run.png."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.settings import Settings
from core.store.db import migrate, session_scope
from core.store.users import ensure_admin
from tests.browser.conftest import OUTPUT
from tests.livesrv import live_server
from tests.mlflowenv import run_script

pytestmark = pytest.mark.browser

SCRIPT = """
import mlflow

mlflow.set_experiment("digits-sweep")
with mlflow.start_run(run_name="lr 0.1"):
    mlflow.log_params({"lr": 0.1, "epochs": 3})
    mlflow.set_tag("figure", "fig4")
    for step, loss in enumerate([0.9, 0.5, 0.3, 0.2]):
        mlflow.log_metric("train/loss", loss, step=step)
    mlflow.log_dict({"width": 16}, "model/config.json")
"""


def test_an_mlflow_run_on_the_run_page(browser, settings: Settings,  # type: ignore[no-untyped-def]
                                       tmp_path: Path) -> None:
    OUTPUT.mkdir(exist_ok=True)
    migrate(settings.db_url)
    with session_scope(settings.db_url) as s:
        token = ensure_admin(s)
    with live_server(settings) as url:
        printed = run_script(SCRIPT, url, token, tmp_path, raw=True)
        # MLflow's own "View run … at: <url>/#/experiments/1/runs/1" line, followed
        run_link = re.search(r"View run .* at: (\S+)", printed)
        exp_link = re.search(r"View experiment at: (\S+)", printed)
        assert run_link and exp_link, printed
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        signed = context.new_page()
        signed.goto(f"{url}/#token={token}")  # signed in once, as a user is
        signed.wait_for_selector("#runs:not([hidden])")
        page = context.new_page()  # each link opened from the terminal: a new tab
        page.goto(exp_link.group(1))
        page.wait_for_url(re.compile(r"/\?tag=exp%3Adigits-sweep$"))
        page.wait_for_selector("#runs tbody tr")
        page = context.new_page()
        page.goto(run_link.group(1))
        page.wait_for_url(re.compile(r"/runs/\d+$"))
        page.wait_for_function(
            "() => document.getElementById('run-status').textContent === 'succeeded'")
        page.wait_for_selector("#artifacts li")
        assert "model/config.json" in page.inner_text("#artifacts")
        page.wait_for_selector("#prov-mlflow-experiment")
        tags = page.locator("tr.mlflow-tag").all_inner_texts()
        assert any("figure" in t and "fig4" in t for t in tags), tags
        assert "exp:digits-sweep" in page.inner_text("#run")
        assert '"lr": "0.1"' in page.inner_text("#run")
        with page.expect_download() as download:
            page.get_by_text("model/config.json").click()
        target = tmp_path / "config.json"
        download.value.save_as(target)
        assert target.read_text().strip().startswith("{")
        page.screenshot(path=str(OUTPUT / "mlflow-run.png"), full_page=True)
