"""A worker with only the server's URL, a worker token and the broker: a real Celery worker
process whose database URL points at nothing and whose data folder is its own runs a
simulated similarity run and a study (fan-out, trains toward that run's target, the
evaluation each train queues, its trains as packs, the study's end) entirely through
``/api/worker``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.models import User
from core.store.users import ensure_admin, issue_token
from tests.conftest import RedisServer
from tests.livesrv import live_server, live_worker

pytestmark = pytest.mark.integration

NOWHERE = "postgresql+psycopg://nobody@127.0.0.1:9/none"
"""The remote worker's database URL: nothing listens there, so any use of it fails."""


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    server = RedisServer(tmp_path)
    try:
        yield server.port
    finally:
        server.stop()


@pytest.fixture
def stack(make_settings, pg_url: str, redis_port: int) -> Settings:  # type: ignore[no-untyped-def]
    from tests.conftest import _truncate

    _truncate(pg_url)
    return make_settings(database_url=pg_url, broker_url=f"redis://127.0.0.1:{redis_port}/0",
                         system_metrics_s=1)


def _finished(api: httpx.Client, run_id: int, log: Path, timeout: float = 400) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = api.get(f"/api/runs/{run_id}").json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return dict(run)
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish; worker log:\n"
                         f"{log.read_text(errors='replace')[-4000:]}")


def test_a_worker_over_the_api_runs_a_similarity_run_and_a_study(
        stack: Settings, tmp_path: Path) -> None:
    with session_scope(stack.db_url) as s:
        admin_token = ensure_admin(s)
        worker_token = issue_token(s, user=s.query(User).one(), name="cloud-gpu",
                                   scope="worker")
    log = tmp_path / "worker.log"
    with live_server(stack) as url, httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {admin_token}"},
            timeout=30) as api:
        remote = Settings(data_dir=tmp_path / "worker-machine", database_url=NOWHERE,
                          broker_url=stack.broker_url, api_url=url, worker_token=worker_token,
                          system_metrics_s=1)
        with live_worker(remote, log) as worker:
            sim = api.post("/api/runs", json={"kind": "similarity", "name": "tiny V1", "config": {
                "simulation": {"n_images": 80, "n_oracle": 6, "oracle_repeats": 3,
                               "n_scans": 2, "neurons_per_scan": 12},
                "predictor": {"hidden_channels": 4, "max_epochs": 1},
                "pairs_for_r": 2000}}).json()["id"]
            assert _finished(api, sim, log)["status"] == "succeeded", log.read_text()
            study = api.post("/api/runs", json={"kind": "study", "name": "remote grid",
                                                "config": {
                "conditions": ["none", "neural-model"], "seeds": 2, "alphas": [2.0],
                "target_run": sim, "pack": 2,  # each condition's two seeds as one pack
                "train": {"backbone": "small_cnn", "width": 4, "epochs": 1,
                          "batch_size": 256, "device": "cpu"},
                "evaluate": {"parts": ["noise"], "noise_sigmas": [0.0, 0.3],
                             "device": "cpu"}}}).json()["id"]
            done = _finished(api, study, log)
            assert worker.poll() is None, "the worker died"
        text = log.read_text(errors="replace")
        assert done["status"] == "succeeded", text[-4000:]
        assert done["result"] == {"runs": 8, "failed": []}
        kids = api.get("/api/runs", params={"parent_id": study}).json()["items"]
        assert sorted(k["kind"] for k in kids) == ["evaluate"] * 4 + ["train"] * 4
        for kid in kids:
            run = api.get(f"/api/runs/{kid['id']}").json()
            assert run["status"] == "succeeded" and run["started_at"], run
            names = {a["name"] for a in api.get(f"/api/runs/{kid['id']}/artifacts").json()}
            assert "logs.txt" in names, names
            if run["kind"] == "train":
                assert "model.pt" in names
                assert api.get(f"/api/runs/{kid['id']}/metrics/loss").json()["total"] > 0
            prov = api.get(f"/api/runs/{kid['id']}/provenance")
            assert prov.status_code == 200 and prov.json(), prov.text
        study_log = api.get(f"/api/runs/{study}/artifacts/logs.txt").text
        assert "8/8 of the study's runs finished" in study_log
        assert "as one pack" in text  # the trains went as packs, through the API too
    # everything it made is in the server's store; the worker kept only a cache of inputs
    machine = tmp_path / "worker-machine"
    assert not (machine / "artifacts").exists() or not any((machine / "artifacts").rglob("*"))
    assert not list(machine.rglob("*.db"))
    cached = [p.name for p in (machine / "worker-cache").rglob("*") if p.is_file()]
    assert "model.pt" in cached and "target-neural-model.npz" in cached, cached
    assert "OperationalError" not in text and NOWHERE not in text, json.dumps(text[-2000:])


def test_a_remote_workers_pool_process_killed_mid_train_resumes_with_every_step_once(
        stack: Settings, tmp_path: Path) -> None:
    """As tests/integration/test_faults.py's first test, for a worker over the API: the
    redelivered task takes the run over (its dead predecessor's, on this host, with the
    same token) and resumes from the checkpoint it stored through the API."""
    import os
    import signal

    from tests.integration.test_faults import (
        _assert_every_step_once,
        _mid_run,
        _pool_children,
        _submit,
        _wait,
    )

    with session_scope(stack.db_url) as s:
        ensure_admin(s)
        token = issue_token(s, user=s.query(User).one(), name="box", scope="worker")
    log = tmp_path / "worker.log"
    with live_server(stack) as url:
        remote = Settings(data_dir=tmp_path / "worker-machine", database_url=NOWHERE,
                          broker_url=stack.broker_url, api_url=url, worker_token=token)
        with live_worker(remote, log) as worker:
            run_id = _submit(stack)
            _wait(stack, run_id, _mid_run)
            (child,) = _pool_children(worker.pid)
            os.kill(child, signal.SIGKILL)
            _wait(stack, run_id, lambda r: r.status.finished)
    out = _assert_every_step_once(stack, run_id)
    assert out["attempts"] == 2 and out["result"]["resumed_from_step"] > 0, \
        log.read_text(errors="replace")[-3000:]
