"""Users and API tokens. Only a token's sha256 is stored.

Every change here is recorded in the audit trail (:mod:`core.store.audit`) in the same
transaction; ``actor`` is the user who made it (None: the service itself).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from core.lifecycle import cancel_run
from core.store import audit
from core.store.db import begin_write
from core.store.models import ApiToken, ProjectRole, Role, Run, RunStatus, User, utcnow
from core.store.projects import join_default


class LastAdmin(Exception):
    """The change would leave no enabled admin: nobody could manage the team any more."""


def hash_token(token: str) -> str:
    # tokens are 256 random bits, so a fast hash is enough (no dictionary to attack)
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(session: Session, *, name: str, role: Role, actor: User | None = None) -> User:
    """A new user; they join the default project, as its owner for an admin and its
    editor for a member (as every member did before projects: an admin changes it)."""
    user = User(name=name, role=role)
    session.add(user)
    session.flush()
    join_default(session, user, ProjectRole.owner if role is Role.admin else ProjectRole.editor)
    audit.record(session, actor, "user.created", "user", user.id, name=name, role=role.value)
    return user


SCOPES = ("member", "worker")
"""A token's scope: ``member`` for everything a person does (the API, the CLI, the pages,
MLflow's client) but ``/api/worker``; ``worker`` for ``/api/worker`` only (an admin issues
it to a worker that reaches the service over its API: :mod:`worker.backend`)."""


def issue_token(session: Session, *, user: User, name: str, actor: User | None = None,
                scope: str = "member") -> str:
    """Create a token for ``user``; the plaintext is returned once and never stored."""
    if scope not in SCOPES:
        raise ValueError(f"scope: {scope!r} is not one of {', '.join(SCOPES)}")
    token = ("nrw_" if scope == "worker" else "nr_") + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, token_hash=hash_token(token), scope=scope)
    session.add(row)
    session.flush()
    audit.record(session, actor, "token.issued", "token", row.id,
                 user_id=user.id, user=user.name, name=name, scope=scope)
    return token


def live_token(session: Session, token: str) -> ApiToken | None:
    """The live token row for a plaintext token, of either scope; None for an unknown or
    revoked token and for every token of a disabled user."""
    return session.execute(
        select(ApiToken).join(User, ApiToken.user_id == User.id).where(
            ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None),
            User.disabled_at.is_(None))
    ).scalar_one_or_none()


def user_for_token(session: Session, token: str) -> User | None:
    """The enabled user a live member token belongs to; None for an unknown or revoked
    token, a worker token and every token of a disabled user."""
    row = live_token(session, token)
    return row.user if row is not None and row.scope == "member" else None


def tokens_of(session: Session, user_id: int) -> Sequence[ApiToken]:
    return session.execute(
        select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
    ).scalars().all()


def revoke(session: Session, row: ApiToken, *, actor: User | None) -> bool:
    """Revoke ``row``; False when it was revoked already (nothing is recorded then)."""
    if row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    audit.record(session, actor, "token.revoked", "token", row.id,
                 user_id=row.user_id, user=row.user.name, name=row.name)
    return True


def revoke_token(session: Session, *, token: str) -> bool:
    """Revoke a token given in plaintext (the holder gives it up)."""
    row = session.execute(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token))
    ).scalar_one_or_none()
    return row is not None and revoke(session, row, actor=row.user)


def set_disabled(session: Session, user: User, disabled: bool, *, actor: User | None
                 ) -> list[Run]:
    """Disable (or re-enable) ``user``. Disabling refuses every token of theirs from the
    next request on and cancels their queued runs (returned, for their tasks to be
    revoked); running runs go on and keep their results. No change, nothing recorded.

    Raises:
        LastAdmin: it would disable the last enabled admin (nothing is changed).
    """
    if (user.disabled_at is not None) == disabled:
        return []
    _lock_admins(session)
    user.disabled_at = utcnow() if disabled else None
    session.flush()
    _keep_an_admin(session)
    if not disabled:
        audit.record(session, actor, "user.enabled", "user", user.id, name=user.name)
        return []
    cancelled = _cancel_queued(session, user)
    audit.record(session, actor, "user.disabled", "user", user.id, name=user.name,
                 queued_runs_cancelled=len(cancelled))
    return cancelled


def set_role(session: Session, user: User, role: Role, *, actor: User | None) -> None:
    """Make ``user`` an admin or a member (admins only: the route checks).

    Raises:
        LastAdmin: it would demote the last enabled admin (nothing is changed).
    """
    if user.role is role:
        return
    _lock_admins(session)
    before, user.role = user.role, role
    session.flush()
    _keep_an_admin(session)
    audit.record(session, actor, "user.role_changed", "user", user.id, name=user.name,
                 before=before.value, after=role.value)


def _enabled_admins() -> Select[int]:
    return select(User.id).where(User.role == Role.admin, User.disabled_at.is_(None))


def _lock_admins(session: Session) -> None:
    """Hold the enabled admins' rows until commit, so that two admins who disable or
    demote each other at once cannot both succeed and leave none: row locks on
    PostgreSQL, SQLite's one write lock (:func:`begin_write`)."""
    begin_write(session)
    session.execute(_enabled_admins().order_by(User.id).with_for_update()).all()


def _keep_an_admin(session: Session) -> None:
    left = session.execute(select(func.count()).select_from(_enabled_admins().subquery()))
    if left.scalar_one() == 0:
        raise LastAdmin("that would leave no enabled admin; make another user an admin first")


def _cancel_queued(session: Session, user: User) -> list[Run]:
    queued = session.execute(
        select(Run).where(Run.owner_id == user.id, Run.status == RunStatus.queued)
    ).scalars().all()
    for run in queued:
        cancel_run(session, run)
        run.message = f"cancelled: {user.name} was disabled"
    return list(queued)


def ensure_admin(session: Session, *, name: str = "admin") -> str | None:
    """Create the first admin and return its token; None when any user exists."""
    if session.execute(select(User.id).limit(1)).first() is not None:
        return None
    admin = create_user(session, name=name, role=Role.admin)
    return issue_token(session, user=admin, name="first-start")
