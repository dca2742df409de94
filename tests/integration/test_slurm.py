"""Workers as SLURM jobs on a real one-node Slurm (tests/slurmcluster.py): a train run
submitted through the API runs inside a job started by ``neuroreg slurm up``; ``scontrol
requeue`` of that job mid-run sends the run to the other job's worker, which resumes it
from its checkpoint; it ends succeeded with every step stored exactly once."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from cli import main
from core.settings import Settings, get_settings
from core.store.db import session_scope
from core.store.models import Metric, RunStatus
from core.store.runs import get_run
from core.store.users import ensure_admin
from ml.train import TrainConfig
from tests.conftest import unavailable
from tests.livesrv import live_server
from tests.slurmcluster import Cluster, Unavailable, slurm_cluster

pytestmark = pytest.mark.integration

# ~23 steps per epoch on the digits, a checkpoint after each
CONFIG = TrainConfig(backbone="small_cnn", width=16, epochs=8, batch_size=64, lr=0.02,
                     lr_decay=1.0, device="cpu")
STEPS = 23 * 8


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    try:
        with slurm_cluster(tmp_path / "slurm") as c:
            monkeypatch.setenv("SLURM_CONF", str(c.conf))
            yield c
    except Unavailable as exc:
        unavailable(str(exc))


@pytest.fixture
def team(make_settings, pg_url: str, redis_url: str, tmp_path: Path,  # type: ignore[no-untyped-def]
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The team's settings, as the environment of `neuroreg slurm up` (and so of every
    job's worker): PostgreSQL, Redis and a shared artifact folder."""
    from tests.conftest import _truncate

    _truncate(pg_url)
    settings = make_settings(database_url=pg_url, broker_url=redis_url, heartbeat_s=1,
                             stale_after_s=60, reaper_interval_s=1)
    settings.artifacts.mkdir(parents=True, exist_ok=True)
    for name, value in (("DATA_DIR", settings.data_dir), ("DATABASE_URL", pg_url),
                        ("BROKER_URL", redis_url), ("ARTIFACT_DIR", settings.artifacts),
                        ("HEARTBEAT_S", 1), ("SYSTEM_METRICS_S", 0)):
        monkeypatch.setenv(f"NEUROREG_{name}", str(value))
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def _wait(what: str, done, timeout: float = 240):  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while True:
        got = done()
        if got:
            return got
        assert time.time() < deadline, what
        time.sleep(0.3)


def test_a_train_run_moves_to_another_slurm_job_on_requeue_and_resumes(
        cluster: Cluster, team: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    with session_scope(team.db_url) as s:
        token = ensure_admin(s) or ""
    with live_server(team) as url, httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
        assert main(["slurm", "up", "--workers", "2", "--gpus-per-worker", "0",
                     "--partition", cluster.partition, "--time", "30",
                     "--cpus-per-worker", "1", "--mem", "2G"]) == 0
        jobs = re.findall(r"\b\d+\b", capsys.readouterr().out.splitlines()[0])[1:]
        assert len(jobs) == 2, jobs
        run = api.post("/api/runs", json={"kind": "train", "name": "on slurm",
                                          "config": dataclasses.asdict(CONFIG)})
        assert run.status_code == 201, run.text
        run_id = run.json()["id"]

        def running_in_a_job():  # type: ignore[no-untyped-def]
            with session_scope(team.db_url) as s:
                r = get_run(s, run_id)
                m = re.search(r"slurm:(\d+)", r.worker or "")
                return (m and r.status is RunStatus.running and r.progress > 0.3
                        and (m.group(1), r.progress))

        first, progress = _wait(
            f"run {run_id} never ran past 30% in a SLURM job\n{cluster.log()}", running_in_a_job)
        assert main(["slurm", "status"]) == 0
        status = capsys.readouterr().out
        assert re.search(rf"{first}\s+RUNNING.*#{run_id} train on slurm", status), status
        cluster.run("scontrol", "requeue", first)

        def finished():  # type: ignore[no-untyped-def]
            with session_scope(team.db_url) as s:
                r = get_run(s, run_id)
                return r.status.finished and r

        done = _wait(f"run {run_id} never finished after the requeue\n{cluster.log()}",
                     finished)
        assert done.status is RunStatus.succeeded, done.error
        # from the checkpoint the hand-back took where it stopped (past the step the
        # progress showed at the requeue), not from the last epoch's end, nor from 0
        assert done.result["resumed_from_step"] >= int(progress * STEPS), (done.result, progress)
        with session_scope(team.db_url) as s:
            for key in ("loss", "acc", "task_loss"):
                steps = s.execute(select(Metric.step).where(
                    Metric.run_id == run_id, Metric.key == key)).scalars().all()
                assert sorted(steps) == list(range(STEPS)), key  # none lost, none twice
        second = re.search(r"slurm:(\d+)", done.worker or "")
        assert second and second.group(1) in jobs and second.group(1) != first, done.worker
        assert "Restarts=1" in cluster.run("scontrol", "show", "job", first)
        assert main(["slurm", "down"]) == 0
        assert "cancelled 2 job(s)" in capsys.readouterr().out
        _wait("the jobs never ended", lambda: not cluster.run(
            "squeue", "-h", "-j", ",".join(jobs), check=False).strip(), timeout=90)
