"""Faults against real Redis and PostgreSQL with real worker processes: a pool process
killed with SIGKILL mid-train, the whole worker killed, Redis restarted mid-run. Each run
must end succeeded with every metric step stored exactly once."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.queue import enqueue, make_celery
from core.settings import Settings
from core.store.db import session_scope
from core.store.models import Metric, Role, RunStatus
from core.store.runs import create_run, get_run
from core.store.users import create_user
from ml.train import TrainConfig
from tests.conftest import RedisServer
from tests.livesrv import live_server, live_worker

pytestmark = pytest.mark.integration

# ~24 steps per epoch on the digits; a checkpoint after each epoch
CONFIG = TrainConfig(backbone="small_cnn", width=16, epochs=10, batch_size=64, lr=0.02,
                     lr_decay=1.0, device="cpu")
STEPS = 23 * 10


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[int]:
    """Our own redis-server (a real one, persisting to an append-only file), so a test may
    restart it on the same port."""
    server = RedisServer(tmp_path, appendonly=True)
    try:
        yield server.port
    finally:
        server.stop()


@pytest.fixture
def stack(make_settings, pg_url: str, redis_server) -> Settings:  # type: ignore[no-untyped-def]
    from tests.conftest import _truncate

    _truncate(pg_url)
    return make_settings(database_url=pg_url, broker_url=f"redis://127.0.0.1:{redis_server}/0",
                         heartbeat_s=0.5, stale_after_s=4, reaper_interval_s=1)


def _submit(settings: Settings) -> int:
    with session_scope(settings.db_url) as s:
        user = create_user(s, name="u", role=Role.member)
        run_id = create_run(s, owner=user, kind="train", name="",
                            config=dataclasses.asdict(CONFIG)).id
    enqueue(make_celery(settings), task="neuroreg.train", queue="gpu", run_id=run_id,
            priority=6)
    return run_id


def _wait(settings: Settings, run_id: int, pred, timeout: float = 240):  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        with session_scope(settings.db_url) as s:
            run = get_run(s, run_id)
            if pred(run):
                return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} never got there: {run.status} {run.progress}")


def _pool_children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def _assert_every_step_once(settings: Settings, run_id: int) -> dict:  # type: ignore[type-arg]
    with session_scope(settings.db_url) as s:
        run = get_run(s, run_id)
        assert run.status is RunStatus.succeeded, run.error
        for key in ("loss", "acc", "task_loss"):
            steps = s.execute(select(Metric.step).where(Metric.run_id == run_id,
                                                        Metric.key == key)).scalars().all()
            assert sorted(steps) == list(range(STEPS)), key  # none lost, none twice
        n = s.execute(select(func.count()).select_from(Metric)
                      .where(Metric.run_id == run_id, Metric.key == "test_acc")).scalar_one()
        assert n == 10
        return {"attempts": run.attempts, "result": run.result}


def _mid_run(run) -> bool:  # type: ignore[no-untyped-def]
    return run.status is RunStatus.running and 0.35 < run.progress < 0.8


def test_a_pool_process_killed_mid_train_is_redelivered_and_resumes(stack, tmp_path):  # type: ignore[no-untyped-def]
    with live_server(stack), live_worker(stack, tmp_path / "worker.log") as worker:
        run_id = _submit(stack)
        _wait(stack, run_id, _mid_run)
        (child,) = _pool_children(worker.pid)
        os.kill(child, signal.SIGKILL)
        _wait(stack, run_id, lambda r: r.status.finished)
    out = _assert_every_step_once(stack, run_id)
    assert out["attempts"] == 2 and out["result"]["resumed_from_step"] > 0


def test_a_worker_killed_outright_is_reaped_and_another_finishes_it(stack, tmp_path):  # type: ignore[no-untyped-def]
    with live_server(stack):
        with live_worker(stack, tmp_path / "w1.log") as first:
            run_id = _submit(stack)
            _wait(stack, run_id, _mid_run)
            for pid in [*_pool_children(first.pid), first.pid]:
                os.kill(pid, signal.SIGKILL)
            first.wait()
        # nothing runs it now; the API's reaper notices the silence and requeues it
        _wait(stack, run_id, lambda r: r.status is RunStatus.queued, timeout=30)
        with live_worker(stack, tmp_path / "w2.log"):
            _wait(stack, run_id, lambda r: r.status.finished)
    out = _assert_every_step_once(stack, run_id)
    assert out["attempts"] == 2 and out["result"]["resumed_from_step"] > 0


def test_redis_restarted_mid_run_the_run_still_completes(stack, redis_server, tmp_path):  # type: ignore[no-untyped-def]
    port = redis_server
    with live_server(stack), live_worker(stack, tmp_path / "worker.log"):
        run_id = _submit(stack)
        _wait(stack, run_id, _mid_run)
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], check=False)
        time.sleep(1)  # an outage of a second, not a wait: the worker sees Redis gone
        restarted = RedisServer(tmp_path, port=port, appendonly=True)
        try:
            _wait(stack, run_id, lambda r: r.status.finished)
        finally:
            restarted.stop()
    _assert_every_step_once(stack, run_id)


def test_cancel_stops_a_running_train(stack, tmp_path):  # type: ignore[no-untyped-def]
    """The worker itself ends the task on a cancel (its log says the task returned with
    status cancelled), having stopped far short of the run's steps. (How fast it stops
    is a latency, not a test's matter.)"""
    from core.lifecycle import cancel_run

    log = tmp_path / "worker.log"
    with live_server(stack), live_worker(stack, log):
        run_id = _submit(stack)
        _wait(stack, run_id, lambda r: r.status is RunStatus.running and r.progress > 0.1)
        with session_scope(stack.db_url) as s:
            cancel_run(s, get_run(s, run_id))

        def points() -> int:
            with session_scope(stack.db_url) as s:
                return s.execute(select(func.count()).select_from(Metric)
                                 .where(Metric.run_id == run_id)).scalar_one()

        returned = f"{{'run_id': {run_id}, 'status': 'cancelled'}}"
        _wait_until(lambda: returned in log.read_text(errors="replace"),
                    f"the worker's task for run {run_id} never returned cancelled")
        settled = points()  # the task has returned: its recorder flushed for the last time
        with session_scope(stack.db_url) as s:
            assert get_run(s, run_id).status is RunStatus.cancelled
        assert 0 < settled < STEPS * 7  # stopped early, far from the ~230 steps × 7 keys


def _wait_until(done, what: str, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while not done():
        assert time.time() < deadline, what
        time.sleep(0.2)
