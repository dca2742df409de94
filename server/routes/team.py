"""The team: users (created by an admin) and each user's own API tokens.

Every member can browse every run; writes to a run are the owner's or an admin's. Tokens
are 256 random bits shown once at creation; only their sha256 is stored.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Path, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from server.deps import CurrentUser, SessionDep
from server.schemas import TokenCreate, TokenIssued, TokenPublic, UserCreate, UserIssued, UserPublic
from server.store.models import MAX_ID, ApiToken, Role, User, utcnow
from server.store.users import create_user, hash_token, issue_token
from server.strict import CONFLICT, api_router

router = api_router(prefix="/api", tags=["team"])


@router.get("/tokens")
def list_tokens(session: SessionDep, user: CurrentUser) -> list[TokenPublic]:
    rows = session.execute(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    ).scalars()
    return [TokenPublic.model_validate(t) for t in rows]


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
def create_token(body: TokenCreate, session: SessionDep, user: CurrentUser) -> TokenIssued:
    token = issue_token(session, user=user, name=body.name)
    row = session.execute(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token))
    ).scalar_one()
    session.commit()
    return TokenIssued(id=row.id, name=row.name, created_at=row.created_at,
                       revoked_at=None, token=token)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=MAX_ID)], session: SessionDep, user: CurrentUser
) -> None:
    """Revoke one of your tokens (an admin may revoke anyone's)."""
    row = session.get(ApiToken, token_id)
    if row is None or (row.user_id != user.id and user.role is not Role.admin):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    session.commit()


@router.get("/users")
def list_users(session: SessionDep, _: CurrentUser) -> list[UserPublic]:
    return [UserPublic.model_validate(u)
            for u in session.execute(select(User).order_by(User.id)).scalars()]


@router.post("/users", status_code=status.HTTP_201_CREATED, responses=CONFLICT)
def add_user(body: UserCreate, session: SessionDep, user: CurrentUser) -> UserIssued:
    """Create a user with a first token (admins only)."""
    if user.role is not Role.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin may add users")
    try:
        new = create_user(session, name=body.name, role=body.role)
        token = issue_token(session, user=new, name="first")
        session.commit()
    except IntegrityError:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"a user named {body.name!r} exists") from None
    return UserIssued(id=new.id, name=new.name, role=new.role, token=token)
