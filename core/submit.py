"""Submitting runs: store a run and hand it to its queue, from the API, the CLI or a
study's worker (``enqueue_runs``, ``enqueue_pack``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from celery import Celery
from sqlalchemy.orm import Session

from core.kinds import KINDS
from core.lifecycle import finish_run, start_run
from core.queue import enqueue
from core.store import audit
from core.store.models import Run, RunStatus, User
from core.store.runs import create_run, set_task_id


class EnqueueFailed(RuntimeError):
    """The run was stored (and marked failed) but the broker refused it."""


def submit_run(
    session: Session,
    celery: Celery,
    *,
    owner: User,
    kind: str,
    name: str,
    config: dict[str, Any],
    parent_id: int | None = None,
    input_run_id: int | None = None,
    provenance: dict[str, Any] | None = None,
    client_key: str | None = None,
    started_at: datetime | None = None,
    project_id: int | None = None,
) -> Run:
    """Store a queued run, then hand it to its queue (after commit, so the worker sees it).
    ``provenance``: an external run's script's (a worker records its own); ``started_at``:
    when its script began, if earlier (an offline run). ``client_key``: the client's
    idempotency key (the caller has checked no run of this owner has it)."""
    job = KINDS[kind]
    run = create_run(
        session,
        owner=owner,
        kind=kind,
        name=name,
        config=config,
        parent_id=parent_id,
        input_run_id=input_run_id,
        project_id=project_id,
    )
    audit.record(session, owner, "run.created", "run", run.id, project_id=run.project_id,
                 name=name, kind=kind)
    run.client_key = client_key
    if job.task is None:  # an external run: running from now until its script finishes it
        run.provenance = provenance
        start_run(session, run.id)
        if started_at is not None:
            session.refresh(run)
            run.created_at = run.started_at = run.heartbeat_at = started_at
        session.commit()
        session.refresh(run)
        return run
    session.commit()
    try:
        assert job.queue is not None
        run.task_id = enqueue(celery, task=job.task, queue=job.queue, run_id=run.id,
                              priority=job.priority)
        session.commit()
    except Exception as exc:
        finish_run(session, run.id, RunStatus.failed, error=f"could not enqueue: {exc}")
        session.commit()
        raise EnqueueFailed(f"run {run.id} was stored but the broker refused it") from exc
    return run


def enqueue_runs(celery: Celery, db_url: str, runs: Sequence[tuple[int, str]]) -> None:
    """Send stored (run id, kind) pairs to their queues and record each task id (for
    revoking); kinds no worker runs are skipped. Call after the runs are committed."""
    from core import queue
    from core.store.db import session_scope

    for run_id, kind in runs:
        job = KINDS[kind]
        if job.task is not None and job.queue is not None:
            task_id = queue.enqueue(celery, task=job.task, queue=job.queue, run_id=run_id,
                                    priority=job.priority)
            with session_scope(db_url) as s:
                set_task_id(s, run_id, task_id)


def enqueue_pack(celery: Celery, run_ids: Sequence[int]) -> None:
    """Send train runs to the ``gpu`` queue as one pack (:mod:`ml.train.pack`). Their
    task id is not recorded: cancelling one member must not revoke the others' task (the
    pack leaves out a member that is cancelled when it starts)."""
    from core.queue import send

    send(celery, task="neuroreg.train_pack", queue="gpu", args=[list(run_ids)],
         priority=KINDS["train"].priority)
