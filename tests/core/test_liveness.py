"""Heartbeats, takeover of a dead worker's run, and the reaper (SQLite and PostgreSQL)."""

import subprocess
import sys
from datetime import timedelta

from sqlalchemy import update

from core.kinds import HELD
from core.lifecycle import reap, start_run
from core.store.db import migrate, session_scope
from core.store.models import Role, Run, RunStatus, utcnow
from core.store.runs import beat, create_run, get_run
from core.store.users import create_user


def _runs(url: str, *kinds: str) -> list[int]:
    migrate(url)
    with session_scope(url) as s:
        user = create_user(s, name="u", role=Role.member)
        return [create_run(s, owner=user, kind=k, name="", config={}).id for k in kinds]


def _age(url: str, run_id: int, seconds: float) -> None:
    with session_scope(url) as s:
        s.execute(update(Run).where(Run.id == run_id)
                  .values(heartbeat_at=utcnow() - timedelta(seconds=seconds)))


def test_a_live_worker_keeps_its_run_and_a_stale_one_loses_it(db_url: str) -> None:
    (rid,) = _runs(db_url, "train")
    with session_scope(db_url) as s:
        assert start_run(s, rid, worker="a:1")
        assert not start_run(s, rid, stale_after=60, worker="b:2")  # a:1 is beating
        beat(s, rid)
    _age(db_url, rid, 90)
    with session_scope(db_url) as s:
        assert start_run(s, rid, stale_after=60, worker="b:2")  # a:1 went quiet
        run = get_run(s, rid)
        assert run.worker == "b:2" and run.attempts == 2
        assert start_run(s, rid, stale_after=0, worker="c:3")  # caller knows b:2 is dead


def test_the_reaper_requeues_then_gives_up(db_url: str) -> None:
    train, external, study, fresh = _runs(db_url, "train", "external", "study", "train")
    with session_scope(db_url) as s:
        for rid in (train, external, study, fresh):
            start_run(s, rid)
    for rid in (train, external, study):
        _age(db_url, rid, 300)
    with session_scope(db_url) as s:
        assert [r.id for r in reap(s, stale_after=120, max_attempts=2, kinds=HELD)] == [train]
        assert get_run(s, train).status is RunStatus.queued
        assert get_run(s, fresh).status is RunStatus.running  # still beating
        assert get_run(s, external).status is RunStatus.running  # a script owns it
        assert start_run(s, train)  # the requeued task starts: attempt 2
    _age(db_url, train, 300)
    with session_scope(db_url) as s:
        assert reap(s, stale_after=120, max_attempts=2, kinds=HELD) == []
        run = get_run(s, train)
        assert run.status is RunStatus.failed and "worker lost 2 times" in run.error


def test_a_dead_pool_process_on_this_host_is_recognised() -> None:
    import os
    import socket

    from worker.tasks import WORKER_ID, _dead_here

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    host = socket.gethostname()
    assert _dead_here(f"{host}:{proc.pid}")
    assert not _dead_here(WORKER_ID())  # ourselves
    assert not _dead_here(f"{host}:{os.getppid()}")  # alive
    assert not _dead_here(f"elsewhere:{proc.pid}") and not _dead_here(None)
