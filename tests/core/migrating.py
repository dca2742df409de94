"""Rows as an older revision's code wrote them, for the tests of a migration that start
there: the model has later tables and columns, so only theirs are written."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.store.models import Role, User


def old_user(session: Session, name: str) -> User:
    """A member as every revision before 0017 made one: a users row (no project
    membership, no audit event)."""
    user = User(name=name, role=Role.member)
    session.add(user)
    session.flush()
    return user
