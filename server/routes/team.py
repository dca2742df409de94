"""The team: users (created by an admin) and each user's own API tokens; an admin also
disables and re-enables users, changes roles, lists and revokes anyone's tokens, and
reads the audit trail of all of it.

Who reads and writes which runs is a matter of projects (:mod:`core.access`,
:mod:`server.routes.projects`). Tokens are 256 random bits shown once at creation; only
their sha256 is stored.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import HTTPException, Path, Query, Request, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.queue import revoke as revoke_task
from core.store import audit
from core.store.models import MAX_ID, ApiToken, ProjectRole, Role, User
from core.store.users import (
    LastAdmin,
    create_user,
    hash_token,
    issue_token,
    revoke,
    set_disabled,
    set_role,
    tokens_of,
)
from server.deps import CurrentAccess, CurrentUser, SessionDep
from server.schemas import (
    AuditEventPublic,
    TokenCreate,
    TokenIssued,
    TokenPublic,
    UserCreate,
    UserIssued,
    UserPublic,
    UserUpdate,
)
from server.strict import CONFLICT, ErrorDetail, api_router

router = api_router(prefix="/api", tags=["team"])

UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="a user's id")]
ADMINS_ONLY: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorDetail, "description": "Only an admin may do this"}}


def _admin(user: User, action: str) -> None:
    if user.role is not Role.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"only an admin may {action}")


@router.get("/tokens")
def list_tokens(session: SessionDep, user: CurrentUser) -> list[TokenPublic]:
    """Your tokens (never their secrets)."""
    return [TokenPublic.model_validate(t) for t in tokens_of(session, user.id)]


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
def create_token(body: TokenCreate, session: SessionDep, user: CurrentUser) -> TokenIssued:
    """A token for you: ``member`` (the default) for everything you do, or ``worker``
    (admins only) for a worker that reaches the service over its API."""
    if body.scope == "worker":
        _admin(user, "issue worker tokens")
    token = issue_token(session, user=user, name=body.name, actor=user, scope=body.scope)
    row = session.execute(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token))
    ).scalar_one()
    session.commit()
    return TokenIssued(id=row.id, user_id=row.user_id, name=row.name, scope=row.scope,
                       created_at=row.created_at, revoked_at=None, token=token)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=MAX_ID)], session: SessionDep, user: CurrentUser
) -> None:
    """Revoke one of your tokens (an admin may revoke anyone's); it is refused from the
    next request on."""
    row = session.get(ApiToken, token_id)
    if row is None or (row.user_id != user.id and user.role is not Role.admin):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no token {token_id}")
    revoke(session, row, actor=user)
    session.commit()


@router.get("/users")
def list_users(session: SessionDep, _: CurrentUser) -> list[UserPublic]:
    return [UserPublic.model_validate(u)
            for u in session.execute(select(User).order_by(User.id)).scalars()]


@router.post("/users", status_code=status.HTTP_201_CREATED, responses={**CONFLICT, **ADMINS_ONLY})
def add_user(body: UserCreate, session: SessionDep, user: CurrentUser) -> UserIssued:
    """Create a user with a first token (admins only)."""
    _admin(user, "add users")
    try:
        new = create_user(session, name=body.name, role=body.role, actor=user)
        token = issue_token(session, user=new, name="first", actor=user)
        session.commit()
    except IntegrityError:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"a user named {body.name!r} exists") from None
    return UserIssued(id=new.id, name=new.name, role=new.role, token=token)


def _user_or_404(session: SessionDep, user_id: int) -> User:
    target = session.get(User, user_id)
    if target is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"there is no user {user_id}")
    return target


@router.patch("/users/{user_id}", responses={**CONFLICT, **ADMINS_ONLY})
def update_user(user_id: UserId, body: UserUpdate, request: Request, session: SessionDep,
                user: CurrentUser) -> UserPublic:
    """Disable or re-enable a user, or change their role (admins only). A disabled user's
    every token is refused (401) from the next request on and their queued runs are
    cancelled; their running runs go on and keep their results. 409 when it would leave
    no enabled admin."""
    _admin(user, "change a user")
    target = _user_or_404(session, user_id)
    try:
        if body.role is not None:
            set_role(session, target, body.role, actor=user)
        cancelled = [] if body.disabled is None else \
            set_disabled(session, target, body.disabled, actor=user)
        session.commit()
    except LastAdmin as exc:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    for run in cancelled:  # after the commit: the status is what a worker obeys
        with contextlib.suppress(Exception):  # the broker may be down
            if run.task_id:
                revoke_task(request.app.state.celery, run.task_id)
    session.refresh(target)
    return UserPublic.model_validate(target)


@router.get("/users/{user_id}/tokens", responses=ADMINS_ONLY)
def list_user_tokens(user_id: UserId, session: SessionDep, user: CurrentUser
                     ) -> list[TokenPublic]:
    """A user's tokens, never their secrets: your own, or anyone's for an admin."""
    if user_id != user.id:
        _admin(user, "list another user's tokens")
    _user_or_404(session, user_id)
    return [TokenPublic.model_validate(t) for t in tokens_of(session, user_id)]


@router.get("/audit", responses={403: {"model": ErrorDetail, "description": (
    "Only an admin or a project's owner may read the audit trail")}})
def list_audit(
    session: SessionDep, access: CurrentAccess,
    limit: Annotated[int, Query(ge=1, le=500, description="how many, newest first")] = 50,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description=(
        "only events older than this event id: the next page starts before the last "
        "event shown"))] = None,
    project: Annotated[int | None, Query(ge=1, le=MAX_ID, description=(
        "only the events of this project (its id)"))] = None,
) -> list[AuditEventPublic]:
    """Who did what to whom, newest first: users created, disabled, re-enabled and given
    another role, tokens issued and revoked, projects made and their members set, runs
    created, imported, changed, moved, cancelled and deleted. An admin reads every event;
    a project's owner the events of the projects they own."""
    if not access.admin and ProjectRole.owner not in access.roles.values():
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin or a project's owner "
                            "may read the audit trail")
    if project is not None and not access.owns(project):
        # the same answer whether the project exists or not: it says nothing of others'
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"project: you own no project {project};"
                            " you may read the audit trail of the projects you own")
    return [AuditEventPublic.model_validate(e)
            for e in audit.events(session, limit=limit, before=before, where=access.owned(),
                                  project_id=project)]
