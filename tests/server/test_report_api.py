"""A study as a report (GET /api/studies/{id}/report): one zipped folder with every figure
of the study page as SVG, PDF and CSV, the tables, configs, provenance, the API answers it
was drawn from and the commands that reproduce it; what a study with nothing finished, an
unknown id and a run of another kind answer."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml
from fastapi.testclient import TestClient

from core.settings import Settings
from core.store.db import session_scope
from core.store.models import User
from core.store.runs import create_run
from tests.browser.conftest import CHROMIUM
from tests.conftest import admin_client, unavailable
from tests.server.test_frontier_api import stored_study

pytestmark = pytest.mark.no_numerics

FIGURES = {"fig4", "fig5-l2", "fig5-linf", "fig6", "frontier"}


def unzipped(body: bytes, dest: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        tops = {n.split("/")[0] for n in z.namelist()}
        z.extractall(dest)
    (top,) = tops
    return dest / top


@pytest.mark.browser
def test_a_report_holds_every_figure_as_svg_pdf_and_csv_the_tables_and_configs(
        client: TestClient, settings: Settings, tmp_path: Path) -> None:
    if not shutil.which(CHROMIUM):
        unavailable(f"chromium at {CHROMIUM}")
    ids = stored_study(settings, note="Does the gain survive at matched accuracy?")
    res = client.get(f"/api/studies/{ids['study']}/report")
    assert res.status_code == 200, res.text
    assert res.headers["content-type"] == "application/zip"
    assert f"study-{ids['study']}-report.zip" in res.headers["content-disposition"]
    out = unzipped(res.content, tmp_path)
    assert out.name == f"study-{ids['study']}-report"
    manifest = json.loads((out / "manifest.json").read_text())
    assert FIGURES <= {f["id"] for f in manifest["figures"]}
    for f in manifest["figures"]:
        svg = ElementTree.parse(out / f["svg"]).getroot()
        assert svg.tag.endswith("svg") and float(svg.get("width", 0)) > 300
        assert (out / f["pdf"]).read_bytes().startswith(b"%PDF-")
        assert (out / f["csv"]).read_text().startswith(("trace,x,y", "condition"))
    # the data behind a figure, as the page's own CSV button writes it
    assert "None (n=3)" in (out / "figures" / "fig4.csv").read_text()
    # the tables: matched tests, Table 1, paired tests against None, runs by condition
    for table in ("frontier-table", "gamma-table", "paired-tests", "study-conditions"):
        assert (out / "tables" / f"{table}.csv").read_text().count("\n") >= 2, table
    index = (out / "index.html").read_text()
    for table in ("frontier-table", "gamma-table", "paired-tests", "study-conditions"):
        assert f'id="{table}"' in index
    assert "Does the gain survive at matched accuracy?" in index
    # plotly once, every script a file beside it: nothing fetched, nothing from a network
    assert index.count("<script") == 3 and index.count('src="plotly.min.js"') == 1
    assert "http://" not in index.split("<main>")[0].replace(manifest["server"], "")
    assert sum(1 for p in out.rglob("*.js") if "plotly.js" in p.read_text()[:400]) == 1
    data = json.loads((out / "data.js").read_text().split("= ", 1)[1].rstrip(";\n"))
    assert {f["file"] for f in data["figures"]} == {f["id"] for f in manifest["figures"]}
    # the links point to the server it came from
    assert f'href="{manifest["server"]}/runs/{ids["trains"][0]}"' in index
    # the configs as run files neuroreg submit takes, the run ids, the API answers
    study_file = yaml.safe_load((out / "configs" / "study.yaml").read_text())
    got = client.get(f"/api/studies/{ids['study']}").json()
    assert study_file == {"kind": "study", "name": "grid", "config": got["study"]["config"]}
    assert manifest["runs"]["train"] == ids["trains"]
    assert set(ids["evals"].values()) <= set(manifest["runs"]["evaluate"])
    assert len(list((out / "configs" / "runs").iterdir())) == len(got["runs"])
    gets = [a["get"] for a in manifest["api"]]
    assert f"/api/studies/{ids['study']}" in gets
    assert any(g.startswith(f"/api/studies/{ids['study']}/frontier") for g in gets)
    assert json.loads((out / manifest["api"][gets.index(f"/api/studies/{ids['study']}")]["file"])
                      .read_text())["study"]["id"] == ids["study"]
    assert set(json.loads((out / "provenance.json").read_text())) == \
        {str(ids["study"]), *(str(r["id"]) for r in got["runs"])}
    reproduce = (out / "REPRODUCE.md").read_text()
    assert "neuroreg submit configs/study.yaml --wait" in reproduce
    assert f"neuroreg report {ids['study']} -o" in reproduce


def test_a_report_of_a_study_with_nothing_finished_is_409_saying_what_is_missing(
        client: TestClient, settings: Settings) -> None:
    with session_scope(settings.db_url) as s:
        owner = s.query(User).first()
        study = create_run(s, owner=owner, kind="study", name="waiting", config={})
        for seed in range(2):
            create_run(s, owner=owner, kind="train", name="t", parent_id=study.id,
                       config={"seed": seed})
        study_id = study.id
    res = client.get(f"/api/studies/{study_id}/report")
    assert res.status_code == 409
    detail = res.json()["detail"]
    assert f"study {study_id} has nothing finished to report yet" in detail
    assert "none of its 2 train runs" in detail and "2 queued" in detail
    assert "at least one finished train run" in detail


def test_a_report_of_no_study_is_404_naming_what_the_id_is(client: TestClient,
                                                          settings: Settings) -> None:
    assert client.get("/api/studies/999999/report").status_code == 404
    ids = stored_study(settings, seeds=1, evaluated=False)
    res = client.get(f"/api/studies/{ids['trains'][0]}/report")
    assert res.status_code == 404
    assert res.json()["detail"] == f"run {ids['trains'][0]} is a train run, not a study"
    assert client.get("/api/studies/0/report").status_code == 422  # not an id


def test_a_server_without_chromium_says_so(make_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(chromium=str(tmp_path / "no-chromium"))
    with admin_client(settings) as c:
        ids = stored_study(settings, seeds=1)
        res = c.get(f"/api/studies/{ids['study']}/report")
    assert res.status_code == 503
    assert "no-chromium" in res.json()["detail"] and "NEUROREG_CHROMIUM" in res.json()["detail"]


def test_a_report_asked_while_the_server_draws_its_most_is_503_retry_after(
        client: TestClient, settings: Settings) -> None:
    from server.routes import studies

    ids = stored_study(settings, seeds=1)
    held = [studies._BUILDS.acquire(blocking=False) for _ in range(studies.MAX_BUILDS)]
    try:
        assert all(held)
        res = client.get(f"/api/studies/{ids['study']}/report")
    finally:
        for _ in held:
            studies._BUILDS.release()
    assert res.status_code == 503 and res.headers["retry-after"] == "5"
    assert "being drawn" in res.json()["detail"]
