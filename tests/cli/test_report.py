"""``neuroreg report STUDY -o DIR`` against a live server: the folder with every figure as
SVG, PDF and CSV; a folder that is not empty, a study with nothing finished and a run that
is not a study, each refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli import main
from core.settings import Settings
from core.store.db import session_scope
from core.store.models import User
from core.store.runs import create_run
from tests.browser.conftest import CHROMIUM
from tests.cli.conftest import Server
from tests.conftest import unavailable
from tests.server.test_frontier_api import stored_study


@pytest.mark.browser
def test_report_writes_the_folder_and_refuses_one_that_is_not_empty(
        server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    if not shutil.which(CHROMIUM):
        unavailable(f"chromium at {CHROMIUM}")
    ids = stored_study(server.settings)
    out = tmp_path / "report"
    assert main(["report", str(ids["study"]), "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"{out / 'index.html'}" in said and "figures, each as SVG, PDF and CSV" in said
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["study"] == ids["study"] and manifest["server"] == server.url
    assert {"fig4", "fig5-l2", "frontier"} <= {f["id"] for f in manifest["figures"]}
    for f in manifest["figures"]:
        assert (out / f["svg"]).read_text().startswith("<svg")
        assert (out / f["pdf"]).read_bytes().startswith(b"%PDF-")
        assert (out / f["csv"]).stat().st_size > 0
    for name in ("index.html", "plotly.min.js", "data.js", "report.js", "report.css",
                 "configs/study.yaml", "provenance.json", "REPRODUCE.md"):
        assert (out / name).is_file(), name
    # again into the same folder: refused unless --force, which replaces the report
    (out / "notes.txt").write_text("mine")
    assert main(["report", str(ids["study"]), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "not empty; pass --force" in err and len(err.strip().splitlines()) == 1
    assert main(["report", str(ids["study"]), "-o", str(out), "--force"]) == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "index.html").is_file()


def test_report_of_a_study_with_nothing_finished_or_of_no_study_says_why_in_a_line(
        server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    settings: Settings = server.settings
    with session_scope(settings.db_url) as s:
        study = create_run(s, owner=s.query(User).first(), kind="study", name="waiting",
                           config={})
        create_run(s, owner=study.owner, kind="train", name="t", parent_id=study.id, config={})
        study_id = study.id
    out = tmp_path / "r"
    assert main(["report", str(study_id), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error 409:") and "nothing finished to report yet" in err
    assert "none of its 1 train runs" in err
    assert not out.exists()  # nothing written
    train = stored_study(settings, seeds=1, evaluated=False)["trains"][0]
    assert main(["report", str(train), "-o", str(out)]) == 1
    assert f"run {train} is a train run, not a study" in capsys.readouterr().err
