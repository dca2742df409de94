"""``neuroreg import mlflow --from URI``: runs that MLflow's own client logged — into an
``mlruns/`` folder, and into a real MLflow tracking server — copied into neuroreg, then
read back through neuroreg's MLflow endpoint by the same MLflow client and compared
value by value and byte by byte with what the source holds."""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli import main
from core.settings import Settings
from core.store.db import session_scope
from core.store.models import Run
from tests.mlflowenv import api_get, mlflow_python, run_script

pytestmark = pytest.mark.no_numerics

LOG = r"""
import json, os, time
import mlflow
from mlflow import MlflowClient

c = MlflowClient()
exp = c.create_experiment("vision sweep")
other = c.create_experiment("other")
t0 = 1767225600000  # 2026-01-01, in ms
r = c.create_run(exp, run_name="lr-0.1", start_time=t0, tags={"team": "v1", "note": "n" * 500})
rid = r.info.run_id
c.log_param(rid, "lr", "0.1")
c.log_param(rid, "layers", "[1, 2]")
for step in range(300):
    c.log_metric(rid, "loss", 1 / (step + 1), timestamp=t0 + 10 * step, step=step)
c.log_metric(rid, "acc", 0.5, timestamp=t0 + 5)  # no step: step 0
c.log_metric(rid, "acc", 0.7, timestamp=t0 + 9)  # at step 0 again
c.log_metric(rid, "weird", float("nan"), timestamp=t0, step=1)
c.log_metric(rid, "weird", 2.0, timestamp=t0, step=2)
c.log_text(rid, "hello\n", "notes/readme.txt")
c.log_dict(rid, {"a": 1}, "config.json")
open("blob.bin", "wb").write(bytes(range(256)) * 3)
c.log_artifact(rid, "blob.bin", artifact_path="data")
c.set_terminated(rid, "FINISHED", end_time=t0 + 60_000)
f = c.create_run(exp, run_name="failed-one", start_time=t0 + 1000)
c.log_param(f.info.run_id, "lr", "1.0")
c.log_metric(f.info.run_id, "loss", 9.0, timestamp=t0 + 1001, step=0)
c.set_terminated(f.info.run_id, "FAILED", end_time=t0 + 2000)
k = c.create_run(other, run_name="killed", start_time=t0 + 3000)
c.set_terminated(k.info.run_id, "KILLED", end_time=t0 + 4000)
g = c.create_run(other, run_name="gone", start_time=t0 + 5000)
c.set_terminated(g.info.run_id, "FINISHED", end_time=t0 + 6000)
c.delete_run(g.info.run_id)
print(json.dumps({"runs": 4}))
"""

DUMP = r"""
import hashlib, json, os, tempfile
import mlflow
from mlflow import MlflowClient
from mlflow.entities import ViewType

c = MlflowClient()
out = {}

def files(run_id, path=None):
    for f in c.list_artifacts(run_id, path):
        if f.is_dir:
            yield from files(run_id, f.path)
        else:
            yield f.path

for name in ("vision sweep", "other"):
    e = c.get_experiment_by_name(name)
    for r in c.search_runs([e.experiment_id], run_view_type=ViewType.ALL):
        rid = r.info.run_id
        arts = {}
        for path in files(rid):
            local = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path=path,
                                                        dst_path=tempfile.mkdtemp())
            arts[path] = hashlib.sha256(open(local, "rb").read()).hexdigest()
        out[f"{name}/{r.info.run_name}"] = {
            "status": r.info.status, "start_time": r.info.start_time,
            "end_time": r.info.end_time, "lifecycle_stage": r.info.lifecycle_stage,
            "params": r.data.params,
            "tags": {k: v for k, v in r.data.tags.items() if k not in ("mlflow.user",)},
            "metrics": {k: sorted([m.step, m.value, m.timestamp]
                                  for m in c.get_metric_history(rid, k))
                        for k in r.data.metrics},
            "artifacts": arts}
print(json.dumps(out))
"""


def _as_neuroreg_keeps(source: dict[str, Any]) -> dict[str, Any]:
    """What neuroreg keeps of each MLflow run: its non-finite points are left out, and a
    metric keeps one value per step (the latest logged)."""
    out = json.loads(json.dumps(source))
    for run in out.values():
        for key, points in run["metrics"].items():
            latest: dict[int, list[Any]] = {}
            for step, value, ts in sorted(points, key=lambda p: p[2]):
                if isinstance(value, float) and math.isfinite(value):
                    latest[step] = [step, value, ts]
            run["metrics"][key] = sorted(latest.values())
    return out


def _import(url: str, token: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setenv("NEUROREG_API_URL", url)
    monkeypatch.setenv("NEUROREG_TOKEN", token)
    return main(["import", "mlflow", *args])


def _check_imported(source: dict[str, Any], url: str, token: str, tmp: Path) -> None:
    """neuroreg's runs, read through its MLflow endpoint by MLflow's client, are the
    source's, value for value and byte for byte (but for what neuroreg does not keep)."""
    got = run_script(DUMP, url, token, tmp)
    assert got == _as_neuroreg_keeps(source)
    assert source["vision sweep/lr-0.1"]["metrics"]["acc"] == [[0, 0.5, 1767225600005],
                                                              [0, 0.7, 1767225600009]]
    assert got["vision sweep/lr-0.1"]["metrics"]["acc"] == [[0, 0.7, 1767225600009]]
    assert got["other/gone"]["lifecycle_stage"] == "deleted"
    assert {r["status"] for r in got.values()} == {"FINISHED", "FAILED", "KILLED"}


def test_import_of_an_mlruns_folder_logged_by_mlflows_client(
        served: tuple[str, str], settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    url, token = served
    mlruns = tmp_path / "mlruns"
    # MLflow 3 keeps its file store for old folders only: it asks for this to write one
    env = {"MLFLOW_TRACKING_URI": mlruns.as_uri(), "MLFLOW_ALLOW_FILE_STORE": "true"}
    run_script(LOG, url, token, tmp_path, env)
    source = run_script(DUMP, url, token, tmp_path, env)
    assert len(source) == 4 and source["other/gone"]["lifecycle_stage"] == "deleted"
    # a damaged folder: the import names the file and line and stores nothing
    damaged = tmp_path / "damaged"
    shutil.copytree(mlruns, damaged)
    loss = next(damaged.glob("*/*/metrics/loss"))
    line = len(loss.read_text().splitlines()) + 1
    loss.write_text(loss.read_text() + "not a point\n")
    assert _import(url, token, monkeypatch, "--from", str(damaged), "--deleted") == 1
    assert f"{loss}:{line}: not 'timestamp value step'" in capsys.readouterr().err
    with session_scope(settings.db_url) as s:
        assert s.query(Run).count() == 0
    assert _import(url, token, monkeypatch, "--from", str(mlruns), "--deleted") == 0
    said = capsys.readouterr().out
    assert "'weird': 1 point that is not finite skipped" in said
    assert "'acc': 1 value at a step that had another left out" in said
    _check_imported(source, url, token, tmp_path)
    # again: nothing new, nothing changed
    with session_scope(settings.db_url) as s:
        before = sorted((r.id, r.client_key, r.status) for r in s.query(Run))
    assert _import(url, token, monkeypatch, "--from", mlruns.as_uri(), "--deleted") == 0
    with session_scope(settings.db_url) as s:
        assert sorted((r.id, r.client_key, r.status) for r in s.query(Run)) == before
    _check_imported(source, url, token, tmp_path)
    # the runs are neuroreg runs too: tagged with their experiment, their params as config
    runs = api_get(url, token, "/api/runs", q='tag = "exp:other"')["items"]
    assert sorted(r["name"] for r in runs) == ["gone", "killed"]
    lr = api_get(url, token, "/api/runs", q='config.params.lr = "0.1"')["items"]
    assert [r["name"] for r in lr] == ["lr-0.1"] and lr[0]["status"] == "succeeded"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """MLflow's own tracking server (``mlflow server``, SQLite backend, artifacts proxied)
    on a free port."""
    python = mlflow_python()
    port = _free_port()
    log = (tmp_path / "mlflow-server.log").open("wb")
    proc = subprocess.Popen(
        [str(python), "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--artifacts-destination", str(tmp_path / "mlflow-artifacts"), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        for _ in range(600):  # until it answers (its first start migrates its database)
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            try:  # the server's own exit, or 0.2 s of it running
                proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError((tmp_path / "mlflow-server.log").read_text()[-3000:])
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_import_from_a_running_mlflow_server(
        served: tuple[str, str], settings: Settings, mlflow_server: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    url, token = served
    env = {"MLFLOW_TRACKING_URI": mlflow_server, "MLFLOW_TRACKING_TOKEN": ""}
    run_script(LOG, url, token, tmp_path, env)
    source = run_script(DUMP, url, token, tmp_path, env)
    assert len(source) == 4
    # a server that is not there: said in one line, nothing stored
    assert _import(url, token, monkeypatch, "--from", f"http://127.0.0.1:{_free_port()}") == 1
    assert "cannot reach the MLflow server" in capsys.readouterr().err
    assert _import(url, token, monkeypatch, "--from", mlflow_server, "--experiment",
                   "nope") == 1
    assert "no experiment 'nope'" in capsys.readouterr().err
    with session_scope(settings.db_url) as s:
        assert s.query(Run).count() == 0
    assert _import(url, token, monkeypatch, "--from", mlflow_server, "--deleted") == 0
    _check_imported(source, url, token, tmp_path)
    assert _import(url, token, monkeypatch, "--from", mlflow_server, "--deleted") == 0
    with session_scope(settings.db_url) as s:
        assert s.query(Run).count() == 4
    # one experiment, without the deleted run
    assert _import(url, token, monkeypatch, "--from", mlflow_server, "--experiment",
                   "other") == 0
    assert "killed" in capsys.readouterr().out
