"""Run records: create, find, list, progress, tags, delete. A run's status changes only
in :mod:`core.lifecycle`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from core.store.db import begin_write
from core.store.models import (
    MAX_ID,
    Artifact,
    Run,
    RunStatus,
    RunTag,
    User,
    utcnow,
)


class NotFound(LookupError):
    """Something a request named does not exist; ``field`` is the request field that
    named it (dotted, e.g. ``config.recording``), when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.message, self.field = message, field


def create_run(
    session: Session,
    *,
    owner: User,
    kind: str,
    name: str,
    config: dict[str, Any],
    parent_id: int | None = None,
    input_run_id: int | None = None,
    project_id: int | None = None,
) -> Run:
    """A queued run in ``project_id``; None: its parent's project (a study's run, the
    evaluation a train run queues), else the default one. The caller checks that
    ``owner`` may create runs there (:mod:`core.access`)."""
    for field, ref in (("parent_id", parent_id), ("input_run_id", input_run_id)):
        if ref is not None and find_run(session, ref) is None:
            raise NotFound(f"run {ref} does not exist", field=field)
    if project_id is None and parent_id is not None:
        parent = find_run(session, parent_id)
        project_id = parent.project_id if parent is not None else None
    # none: the column's server default, the default project
    placed = {} if project_id is None else {"project_id": project_id}
    run = Run(
        **placed,
        owner_id=owner.id,
        owner=owner,
        kind=kind,
        name=name,
        config=config,
        status=RunStatus.queued,
        parent_id=parent_id,
        input_run_id=input_run_id,
    )
    session.add(run)
    session.flush()
    from core.lineage import record_reads  # lineage reads the kinds' input rules

    record_reads(session, run, new=True)
    return run


def lock_run(session: Session, run_id: int) -> None:
    """Hold run ``run_id`` until this transaction ends. Writers into one run's log,
    metrics, artifacts and tags take it first, so they take turns: what one checks before
    writing (the log's bytes, a line or name already stored, a rollup's points) is still
    so when it writes. A row lock on PostgreSQL (not one that blocks inserting the run's
    rows); SQLite, without row locks, takes its database write lock."""
    begin_write(session)
    session.execute(select(Run.id).where(Run.id == run_id).with_for_update(key_share=True))


def find_run(session: Session, run_id: int) -> Run | None:
    """The run with this id, or None (also for ids no row can have)."""
    return session.get(Run, run_id) if 1 <= run_id <= MAX_ID else None


def get_run(session: Session, run_id: int) -> Run:
    run = find_run(session, run_id)
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    return run


def list_runs(
    session: Session,
    *,
    owner: str | None = None,
    kind: str | None = None,
    status: RunStatus | None = None,
    tag: str | None = None,
    parent_id: int | None = None,
    top_level: bool = False,
    order: str = "newest",
    limit: int = 50,
    offset: int = 0,
    q: str | None = None,
    sort: str | None = None,
    descending: bool = False,
    where: Any = None,
) -> tuple[Sequence[Run], int]:
    """Newest first (or ``oldest``, or by ``name``); returns the page and the total
    matching count. ``top_level`` leaves out runs a study made (they have a parent).
    ``q`` is a query (:mod:`core.store.query`); ``sort`` a config or metric field
    (``config.alpha``, ``metrics.test_acc.max``), runs without it last, then ``order``.

    Raises:
        QueryError: for a query or sort field that cannot be compiled.
    """
    from core.store.query import compile_query, sort_key

    dialect = session.get_bind().dialect.name
    query = select(Run)
    if where is not None:
        query = query.where(where)
    if q:
        query = query.where(compile_query(q, dialect))
    if tag is not None:
        query = query.join(RunTag, RunTag.run_id == Run.id).where(RunTag.tag == tag)
    if parent_id is not None:
        query = query.where(Run.parent_id == parent_id)
    if top_level:
        query = query.where(Run.parent_id.is_(None))
    if owner is not None:
        query = query.join(User, Run.owner_id == User.id).where(User.name == owner)
    if kind is not None:
        query = query.where(Run.kind == kind)
    if status is not None:
        query = query.where(Run.status == status)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    orders: dict[str, tuple[Any, ...]] = {
        "newest": (Run.created_at.desc(), Run.id.desc()),
        "oldest": (Run.created_at.asc(), Run.id.asc()),
        "name": (Run.name.asc(), Run.id.desc())}
    ordering: tuple[Any, ...] = orders[order]
    if sort:
        keys = sort_key(sort, dialect)
        ordering = tuple((k.desc() if descending else k.asc()).nulls_last()
                         for k in keys) + ordering
    page = session.execute(query.order_by(*ordering).limit(limit).offset(offset))
    return page.scalars().unique().all(), total


def beat(session: Session, run_id: int) -> None:
    """The worker running ``run_id`` is alive."""
    session.execute(update(Run).where(Run.id == run_id, Run.status == RunStatus.running)
                    .values(heartbeat_at=utcnow()))


def set_progress(session: Session, run_id: int, fraction: float, message: str) -> None:
    session.execute(
        update(Run)
        .where(Run.id == run_id)
        .values(progress=min(max(fraction, 0.0), 1.0), message=message[:200])
    )


def status_of(session: Session, run_id: int) -> RunStatus:
    return session.execute(select(Run.status).where(Run.id == run_id)).scalar_one()


def tags_of(session: Session, run_ids: Sequence[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {i: [] for i in run_ids}
    if run_ids:
        rows = session.execute(
            select(RunTag.run_id, RunTag.tag).where(RunTag.run_id.in_(run_ids)).order_by(RunTag.tag)
        )
        for run_id, tag in rows:
            out[run_id].append(tag)
    return out


def set_tags(session: Session, run: Run, tags: Sequence[str]) -> None:
    """Replace the run's tags."""
    lock_run(session, run.id)
    session.execute(delete(RunTag).where(RunTag.run_id == run.id))
    for tag in sorted(set(tags)):
        session.add(RunTag(run_id=run.id, tag=tag))
    session.flush()


def delete_run(session: Session, run: Run) -> list[str]:
    """Delete a finished run with its metrics, tags and artifact rows; returns the
    artifact paths (relative to the artifact root) for the caller to remove after commit.
    A run whose artifacts another run reads (:mod:`core.lineage`) is refused, naming it:
    the evaluation of a model, the train run of a target, would lose what it was built
    from."""
    if not run.status.finished:
        raise ValueError(f"run {run.id} is {run.status.value}; cancel it before deleting")
    from core.lineage import dependants

    readers = dependants(session, [run.id]).get(run.id, [])
    if readers:
        first, others = readers[0], {d.run_id for d in readers} - {readers[0].run_id}
        raise ValueError(
            f"{first.kind} run {first.run_id} reads run {run.id}'s {first.artifact}"
            + (f" (and {len(others)} other run{'s' * (len(others) > 1)})" if others else "")
            + ": delete what reads it first")
    paths = list(session.execute(select(Artifact.path).where(Artifact.run_id == run.id)).scalars())
    session.execute(delete(Artifact).where(Artifact.run_id == run.id))
    session.delete(run)
    session.flush()
    return paths


def set_task_id(session: Session, run_id: int, task_id: str) -> None:
    session.execute(update(Run).where(Run.id == run_id).values(task_id=task_id))
