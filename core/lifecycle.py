"""A run's lifecycle: the only code that starts, hands back, finishes, fails or cancels a
run. Every caller — the worker and a pack's members, the reaper, the API's cancel and an
external run's finish, disabling a user, a submit the broker refused — goes through here.

    queued ──start──▶ running ──finish──▶ succeeded | failed | cancelled
       ▲                 │  └──hand back / reap (a lost worker)──▶ queued
       └─────────────────┘
    queued | running ──cancel──▶ cancelled      running ──reap, out of starts──▶ failed

Each end happens in the caller's transaction together with what must follow it: an
evaluation's leaderboard scores are written (:func:`~core.store.scores.write_scores`), the
owner's webhook deliveries too (:func:`~core.store.webhooks.queue_run_event`), and the
parent study advances (:func:`core.studies.advance`: the evaluation of a succeeded
train run is created, and the study itself finishes when its last child has) — so no path
can end a run and forget its study. The runs this creates are returned for the caller to
enqueue after commit, so a worker never picks up a run it cannot see yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.orm import Session

from core import studies
from core.kinds import KINDS
from core.store.models import Run, RunStatus, WorkerClaim, utcnow
from core.store.scores import write_scores
from core.store.webhooks import queue_run_event


def start_run(session: Session, run_id: int, *, stale_after: float = 120.0,
              worker: str | None = None, worker_token_id: int | None = None) -> bool:
    """queued → running, or running → running when its heartbeat is older than
    ``stale_after`` seconds (a redelivered task whose worker died; pass 0 when the
    caller knows that worker is dead). False when the run is finished or another
    worker is alive on it. ``worker`` ("host:pid") is recorded, and the worker token
    that claimed it (a worker over the API; None: one with the database)."""
    now = utcnow()
    cutoff = now - timedelta(seconds=stale_after)
    done: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Run)
        .where(Run.id == run_id, or_(
            Run.status == RunStatus.queued,
            (Run.status == RunStatus.running)
            & or_(Run.heartbeat_at.is_(None), Run.heartbeat_at <= cutoff)))
        .values(status=RunStatus.running, started_at=now, heartbeat_at=now, error=None,
                attempts=Run.attempts + 1, worker=worker)
    )
    if not done.rowcount:
        return False
    if worker_token_id is not None or session.get(WorkerClaim, run_id) is not None:
        session.execute(delete(WorkerClaim).where(WorkerClaim.run_id == run_id))
        if worker_token_id is not None:
            session.add(WorkerClaim(run_id=run_id, token_id=worker_token_id))
        session.flush()
    return True


def release_run(session: Session, run_id: int, *, worker: str, message: str) -> bool:
    """running → queued for a run its worker hands back (a SLURM job's end, a warm
    shutdown): the start it used is not counted against ``max_attempts``. False when the
    run was cancelled meanwhile or another worker holds it. The caller enqueues it."""
    done: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Run).where(Run.id == run_id, Run.status == RunStatus.running,
                          Run.worker == worker)
        .values(status=RunStatus.queued, worker=None, heartbeat_at=None,
                attempts=Run.attempts - 1, message=message[:200]))
    return bool(done.rowcount)


def finish_run(
    session: Session,
    run_id: int,
    status: RunStatus,
    *,
    error: str | None = None,
    result: dict[str, Any] | None = None,
    finished_at: datetime | None = None,
) -> list[Run]:
    """Record the outcome unless the run was cancelled meanwhile (cancel wins). A change of
    status queues the owner's webhooks and advances the parent study, in this transaction;
    returns the runs that creates (a succeeded train run's evaluation), to enqueue after
    commit. ``finished_at``: when it ended, if earlier than now (an external run's script,
    synced later)."""
    values: dict[str, Any] = {"status": status, "finished_at": finished_at or utcnow(),
                              "error": error}
    if result is not None:
        values["result"] = result
    if status is RunStatus.succeeded:
        values["progress"] = 1.0
    before = session.execute(select(Run.status).where(Run.id == run_id)).scalar_one_or_none()
    done: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Run).where(Run.id == run_id, Run.status != RunStatus.cancelled).values(**values)
    )
    if done.rowcount and before is not status:
        return _ended(session, run_id)
    return []


def cancel_run(session: Session, run: Run) -> list[Run]:
    """Cancel a queued or running run and, for a study, its unfinished children; finished
    runs are left as they are. Returns the runs it cancelled (the run first), whose tasks
    the caller may revoke after commit."""
    if run.status.finished:
        return []
    run.status = RunStatus.cancelled
    run.finished_at = utcnow()
    session.flush()
    _ended(session, run.id)
    cancelled = [run]
    if KINDS[run.kind].fans_out:
        for child in studies.children(session, run):
            cancelled += cancel_run(session, child)
    return cancelled


def reap(session: Session, *, stale_after: float, max_attempts: int,
         kinds: Sequence[str]) -> list[Run]:
    """Runs of ``kinds`` (those a worker holds while running) whose worker vanished
    (running, heartbeat older than ``stale_after`` s): back to queued, or failed after
    ``max_attempts`` starts (its study advancing as for any failure). Returns the runs to
    enqueue after commit: the requeued ones and any the failures created. Such a run never
    stays ``running`` without a live worker."""
    cutoff = utcnow() - timedelta(seconds=stale_after)
    stale = session.execute(
        select(Run).where(Run.status == RunStatus.running, Run.kind.in_(list(kinds)),
                          Run.heartbeat_at < cutoff)
    ).scalars().unique().all()
    enqueue: list[Run] = []
    for run in stale:
        still_stale = (Run.id == run.id, Run.status == RunStatus.running,
                       Run.heartbeat_at < cutoff)
        if run.attempts >= max_attempts:
            failed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                update(Run).where(*still_stale).values(
                    status=RunStatus.failed, finished_at=utcnow(),
                    error=f"worker lost {run.attempts} times (no heartbeat for "
                          f"{stale_after:g} s); giving up"))
            if failed.rowcount:
                enqueue += _ended(session, run.id)
        else:
            requeued: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                update(Run).where(*still_stale).values(
                    status=RunStatus.queued,
                    message=f"worker lost; requeued (attempt {run.attempts + 1})"))
            if requeued.rowcount:
                enqueue.append(run)
    return enqueue


def _ended(session: Session, run_id: int) -> list[Run]:
    """What follows any end of ``run_id``: an evaluation's leaderboard scores (written for
    a success, cleared otherwise), its webhook deliveries, then its parent study's step
    (which may end the study, and so on up). Returns the runs created."""
    session.flush()
    write_scores(session, run_id)
    queue_run_event(session, run_id)
    step = studies.advance(session, run_id)
    if step.outcome is not None and step.study_id is not None:
        status, result, error = step.outcome
        return step.new + finish_run(session, step.study_id, status, result=result,
                                     error=error)
    return step.new
