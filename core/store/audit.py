"""The audit trail: who did what to whom, one row per change, added to the session of the
change itself so that the change and its record commit (or roll back) together."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from core.store.models import AuditEvent, User


def record(session: Session, actor: User | None, action: str, target_kind: str,
           target_id: int | None, *, project_id: int | None = None, **detail: Any
           ) -> AuditEvent:
    """Add one event; ``actor`` None is the service itself (the first admin at first
    start); ``project_id`` the project the change was in (its owners read the event).
    ``detail`` stays small: names and ids, never a secret."""
    event = AuditEvent(actor_id=actor.id if actor else None,
                       actor_name=actor.name if actor else "",
                       action=action, target_kind=target_kind, target_id=target_id,
                       detail=detail)
    if project_id is not None:
        event.project_id = project_id
    session.add(event)
    return event


def events(session: Session, *, limit: int, before: int | None = None,
           where: ColumnElement[bool] | None = None, project_id: int | None = None,
           ) -> Sequence[AuditEvent]:
    """Up to ``limit`` events, newest first; ``before``: only those older than that event's
    id (the next page starts before the last one shown); ``where``: only those the caller
    may read (:meth:`core.access.Access.owned`); ``project_id``: only that project's."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if where is not None:
        query = query.where(where)
    if project_id is not None:
        query = query.where(AuditEvent.project_id == project_id)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    return session.execute(query).scalars().all()
