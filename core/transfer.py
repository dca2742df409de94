"""Runs that arrive whole from elsewhere: another neuroreg's export, or an MLflow server's
history (``neuroreg import``, :mod:`neuroreg.transfer`).

An imported run is stored as the record says it was — its kind, status, times, config,
tags, provenance, result and error — under the importing member, keyed by the record's
``key`` (the run's ``client_key``): importing it again updates that run instead of storing
a second, so an import can be repeated or resumed. Its points, log lines and artifacts
follow through their own routes; points and lines are keyed too, so a re-sent one is a
no-op.

A run of a kind a worker runs (train, similarity, evaluate, study) may be imported by an
admin only: its artifacts become what workers read back (a checkpoint an evaluation
loads, a target a training follows), which only workers write otherwise. Such a run
arrives finished (nothing would ever run it), its config is checked as its kind's, and
each run its config names must be here already, of the kind that field takes: the
importer sends a run's inputs first and rewrites their ids.

Nothing of an import fires a webhook or advances a study: it is history, not an event.
An imported evaluation's leaderboard scores are written as when it ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access import Access
from core.kinds import KINDS
from core.lineage import record_reads
from core.store.models import Metric, Role, Run, RunStatus, User
from core.store.runs import NotFound, find_run, lock_run, set_tags
from core.store.scores import write_scores


class ImportRefused(ValueError):
    """A record neuroreg cannot store as sent: ``field`` names what (``config.train_run``,
    ``finished_at``), ``forbidden`` when it is the caller's role that may not."""

    def __init__(self, field: str, message: str, *, forbidden: bool = False,
                 conflict: bool = False) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message
        self.forbidden, self.conflict = forbidden, conflict


@dataclass(frozen=True)
class Record:
    """One run as an export or a source holds it (ids already rewritten to this store's)."""

    key: str
    kind: str
    name: str
    status: RunStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    config: dict[str, Any]
    tags: Sequence[str]
    provenance: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    message: str
    progress: float
    parent_id: int | None
    input_run_id: int | None


def may_import(user: User, kind: str) -> bool:
    """Whether ``user`` may import (or write the artifacts of) a run of ``kind``."""
    return KINDS[kind].task is None or user.role is Role.admin


def _dotted(config: dict[str, Any], path: str) -> Any:
    value: Any = config
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _check(session: Session, access: Access, rec: Record) -> None:
    user = access.user
    kind = KINDS.get(rec.kind)
    if kind is None:
        raise ImportRefused("kind", f"{rec.kind!r} is not a run kind here "
                            f"({', '.join(sorted(KINDS))})")
    if not may_import(user, rec.kind):
        raise ImportRefused("kind", f"importing a {rec.kind} run needs an admin: its "
                            "artifacts become inputs workers read (a checkpoint, a target), "
                            "which only a worker writes otherwise; import external runs, "
                            "or ask an admin", forbidden=True)
    if kind.task is not None and not rec.status.finished:
        raise ImportRefused("status", f"a {rec.kind} run is imported finished (succeeded, "
                            f"failed or cancelled), not {rec.status}: no worker would run it")
    if rec.status is RunStatus.queued:
        raise ImportRefused("status", "an external run is running or finished, never queued")
    if rec.status.finished != (rec.finished_at is not None):
        raise ImportRefused("finished_at", "a finished run has its end time, a running one "
                            "none" if rec.status.finished else "a running run has no end time")
    if rec.started_at is not None and rec.started_at < rec.created_at:
        raise ImportRefused("started_at", f"{rec.started_at.isoformat()} is before the run "
                            f"was created ({rec.created_at.isoformat()})")
    start = rec.started_at or rec.created_at
    if rec.finished_at is not None and rec.finished_at < start:
        raise ImportRefused("finished_at", f"{rec.finished_at.isoformat()} is before the run "
                            f"started ({start.isoformat()})")
    for field, ref in (("parent_id", rec.parent_id), ("input_run_id", rec.input_run_id)):
        found = find_run(session, ref) if ref is not None else None
        if ref is not None and (found is None or not access.can_read(found)):
            raise ImportRefused(field, f"run {ref} does not exist here; import it first")
    if rec.parent_id is not None:
        parent = find_run(session, rec.parent_id)
        assert parent is not None
        if not access.can_write(parent):
            raise ImportRefused("parent_id", f"run {rec.parent_id} is {parent.owner.name}'s; "
                                "a run's parent must be a run you may write", forbidden=True)
        if KINDS[parent.kind].fans_out and kind.task is None:
            raise ImportRefused("parent_id", f"run {rec.parent_id} is a {parent.kind}; its "
                                f"runs are the ones it makes, not an external run")
    for field, wanted in kind.reads.items():
        ref = _dotted(rec.config, field)
        if ref is None:
            continue
        target = find_run(session, ref) if isinstance(ref, int) else None
        if target is None or not access.can_read(target):
            raise ImportRefused(f"config.{field}", f"run {ref} does not exist here; import "
                                "the runs a run reads before it")
        if target.kind != wanted:
            raise ImportRefused(f"config.{field}", f"run {ref} is a {target.kind} run, not a "
                                f"{wanted} run")


def import_run(session: Session, access: Access, rec: Record, project_id: int
               ) -> tuple[Run, bool]:
    """Store ``rec`` as the caller's run in ``project_id``, or update their run of that key
    to it; returns the run and whether it is new. The caller commits and has chosen
    ``project_id`` by the rule every new run follows (its parent's when it has one) and
    checked that they may create runs in it.

    Raises:
        ImportRefused: what about the record cannot be stored, and why.
    """
    user = access.user
    _check(session, access, rec)
    run = session.execute(select(Run).where(
        Run.owner_id == user.id, Run.client_key == rec.key)).scalar_one_or_none()
    created = run is None
    if run is not None and not access.can_write(run):
        raise ImportRefused("key", f"your run {run.id} has this key, in a project you may "
                            "no longer write to", forbidden=True)
    if run is None:
        run = Run(owner_id=user.id, owner=user, kind=rec.kind, client_key=rec.key, config={},
                  project_id=project_id)
        session.add(run)
        session.flush()
    elif run.kind != rec.kind:
        raise ImportRefused("key", f"your run {run.id} has this key and is a {run.kind} "
                            f"run, not a {rec.kind} run", conflict=True)
    else:
        lock_run(session, run.id)
    run.name, run.status, run.config = rec.name, rec.status, rec.config
    run.created_at, run.started_at, run.finished_at = (rec.created_at, rec.started_at,
                                                       rec.finished_at)
    run.provenance, run.result, run.error = rec.provenance, rec.result, rec.error
    run.message, run.progress = rec.message, rec.progress
    run.parent_id, run.input_run_id = rec.parent_id, rec.input_run_id
    run.heartbeat_at = run.worker = run.task_id = None
    set_tags(session, run, list(rec.tags))
    session.flush()
    record_reads(session, run)
    try:
        write_scores(session, run.id)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ImportRefused("result", f"not an evaluation's result that the leaderboard "
                            f"reads ({type(exc).__name__}: {exc})") from None
    return run, created


def points_page(session: Session, run_id: int, key: str, *, after: int, limit: int
                ) -> list[tuple[int, float, float]]:
    """Up to ``limit`` raw points (step, value, wall time) of one series after step
    ``after``, in step order: what an export reads, never decimated."""
    rows = session.execute(
        select(Metric.step, Metric.value, Metric.wall_time)
        .where(Metric.run_id == run_id, Metric.key == key, Metric.step > after)
        .order_by(Metric.step).limit(limit)).all()
    return [(r.step, r.value, r.wall_time) for r in rows]


__all__ = ["ImportRefused", "NotFound", "Record", "import_run", "may_import", "points_page"]
