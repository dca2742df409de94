"""The worker's recorder writes points on a timer, not on the next log call: a job that
logs and then computes quietly has its points in the store meanwhile; close() writes the
rest and stops the timer thread. The timer is one the test drives, so no real time
passes."""

from __future__ import annotations

import functools
import threading

import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.metrics import read_series
from core.store.models import Role
from core.store.runs import create_run, get_run
from core.store.users import create_user
from ml.recorder import Recorder
from worker import tasks
from worker.recorder import SqlRecorder

GUARD = 60  # s: only a broken recorder waits this long; the test then fails, never hangs


class Ticks:
    """The recorder's timer, driven by the test: :meth:`tick` lets one interval pass and
    returns once the flusher has acted on it and waits for the next."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._ticks = self._waits = 0
        self._cancelled = False

    def wait(self, interval: float) -> bool:  # the flusher's side
        with self._cond:
            self._waits += 1
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._cancelled or self._ticks >= self._waits)
            return self._cancelled

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    def tick(self) -> None:
        with self._cond:
            self._ticks += 1
            self._cond.notify_all()
            assert self._cond.wait_for(lambda: self._waits > self._ticks, timeout=GUARD), \
                "the recorder's flusher never came back to its timer"


@pytest.fixture
def env(worker_settings: Settings) -> Settings:
    return worker_settings


def _run(settings: Settings) -> int:
    with session_scope(settings.db_url) as s:
        user = create_user(s, name="u", role=Role.member)
        return create_run(s, owner=user, kind="train", name="", config={"epochs": 1}).id


def _steps(settings: Settings, run_id: int, key: str) -> list[int]:
    with session_scope(settings.db_url) as s:
        return read_series(s, run_id, key, max_points=100).steps


def _progress(settings: Settings, run_id: int) -> tuple[float, str]:
    with session_scope(settings.db_url) as s:
        run = get_run(s, run_id)
        return run.progress, run.message


def test_points_reach_the_store_while_the_job_computes_quietly(
        env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = Ticks()
    monkeypatch.setattr(tasks, "SqlRecorder", functools.partial(SqlRecorder, timer=ticks))
    run_id = _run(env)
    logged, go = threading.Event(), threading.Event()

    def job(config, rec: Recorder):  # type: ignore[no-untyped-def]
        for k in range(3):
            rec.log_metrics({"noise_acc": 0.9 - 0.1 * k}, k)
        rec.progress(0.25, "noise curve")
        logged.set()
        assert go.wait(GUARD)  # ... and now a long quiet computation
        return {}

    outcome: list[dict[str, object]] = []
    worker = threading.Thread(target=lambda: outcome.append(tasks.execute(run_id, job)))
    worker.start()
    try:
        assert logged.wait(GUARD)
        assert _steps(env, run_id, "noise_acc") == []  # buffered: no interval has passed
        ticks.tick()  # one interval passes while the job still computes
        assert _steps(env, run_id, "noise_acc") == [0, 1, 2]
        assert _progress(env, run_id) == (0.25, "noise curve")
        assert worker.is_alive()  # the job is still blocked
    finally:
        go.set()
        worker.join(GUARD)
    assert outcome == [{"run_id": run_id, "status": "succeeded"}]


def test_close_writes_the_rest_and_stops_the_thread(env: Settings) -> None:
    run_id = _run(env)
    ticks = Ticks()
    rec = SqlRecorder(db_url=env.db_url, artifact_root=env.artifacts, run_id=run_id,
                      timer=ticks)
    assert not rec.flushing  # no thread before there is something to write
    rec.log_metrics({"loss": 1.0}, 0)
    assert rec.flushing
    ticks.tick()
    rec.log_metrics({"loss": 0.5}, 1)
    rec.progress(0.5, "half")
    assert _steps(env, run_id, "loss") == [0]
    rec.close()
    assert not rec.flushing and not any(t.name == f"recorder-{run_id}"
                                        for t in threading.enumerate())
    assert _steps(env, run_id, "loss") == [0, 1]
    assert _progress(env, run_id) == (0.5, "half")


def test_a_timer_flush_that_fails_keeps_its_points_for_the_next(
        env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.backend import Direct

    run_id = _run(env)
    ticks = Ticks()
    calls: list[int] = []
    real = Direct.sync

    def flaky(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            raise OSError("database went away")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Direct, "sync", flaky)
    with SqlRecorder(db_url=env.db_url, artifact_root=env.artifacts, run_id=run_id,
                     timer=ticks) as rec:
        rec.log_metrics({"loss": 1.0}, 0)
        ticks.tick()  # fails: kept
        assert _steps(env, run_id, "loss") == []
        rec.log_metrics({"loss": 0.5}, 1)
        ticks.tick()
        assert _steps(env, run_id, "loss") == [0, 1]
    assert len(calls) == 2


def test_the_real_timer_waits_its_interval_until_cancelled() -> None:
    from worker.recorder import Timer

    timer = Timer()
    assert timer.wait(0) is False  # an interval passed: flush
    timer.cancel()
    assert timer.wait(3600) is True  # cancelled: returns at once, the flusher ends
