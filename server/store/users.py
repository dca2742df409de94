"""Users and API tokens. Only a token's sha256 is stored."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.store.models import ApiToken, Role, User, utcnow


def hash_token(token: str) -> str:
    # tokens are 256 random bits, so a fast hash is enough (no dictionary to attack)
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(session: Session, *, name: str, role: Role) -> User:
    user = User(name=name, role=role)
    session.add(user)
    session.flush()
    return user


def issue_token(session: Session, *, user: User, name: str) -> str:
    """Create a token for ``user``; the plaintext is returned once and never stored."""
    token = "nr_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, name=name, token_hash=hash_token(token)))
    session.flush()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    row = session.execute(
        select(ApiToken).where(
            ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None)
        )
    ).scalar_one_or_none()
    return row.user if row else None


def revoke_token(session: Session, *, token: str) -> bool:
    row = session.execute(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token))
    ).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    return True


def ensure_admin(session: Session, *, name: str = "admin") -> str | None:
    """Create the first admin and return its token; None when any user exists."""
    if session.execute(select(User.id).limit(1)).first() is not None:
        return None
    admin = create_user(session, name=name, role=Role.admin)
    return issue_token(session, user=admin, name="first-start")
