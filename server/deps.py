"""FastAPI dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.orm import Session

from core.settings import Settings
from core.store.db import new_session
from core.store.models import MAX_ID, ApiToken, Role, Run, User
from core.store.runs import NotFound, get_run
from core.store.users import live_token

_bearer = HTTPBearer(auto_error=False)


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]

RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="a run's id")]
RunIdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID, description="a run's id")]
"""Ids as requests name them: 1..MAX_ID (a larger one is a 422 naming the field)."""


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """A session per request; writing routes commit explicitly before they respond."""
    session = new_session(settings.db_url)
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


NO_TOKEN = "missing or invalid bearer token"
CHALLENGE = {"WWW-Authenticate": "Bearer"}
"""A 401's detail and header, wherever it is answered."""


WORKER_ONLY = ("a worker token acts only as a worker (/api/worker/...); use a member "
               "token for this")
NOT_A_WORKER = ("only a worker token may act as a worker: an admin issues one with "
                "`neuroreg tokens create NAME --worker`")


def get_current_user(
    session: SessionDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The member a live member token belongs to: 401 without one, 403 for a worker
    token."""
    row = live_token(session, creds.credentials) if creds else None
    if row is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, NO_TOKEN, headers=CHALLENGE)
    if row.scope != "member":
        raise HTTPException(status.HTTP_403_FORBIDDEN, WORKER_ONLY)
    return row.user


def get_worker_token(
    session: SessionDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiToken:
    """The live worker token a worker over the API sends: 401 without one, 403 for a
    member token."""
    row = live_token(session, creds.credentials) if creds else None
    if row is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, NO_TOKEN, headers=CHALLENGE)
    if row.scope != "worker":
        raise HTTPException(status.HTTP_403_FORBIDDEN, NOT_A_WORKER)
    return row


def token_is_valid(db_url: str, authorization: str | None) -> bool:
    """Whether an ``Authorization`` header carries a bearer token that
    :func:`get_current_user` would take: for the check before a body is read
    (``server.app.BodyGate``), where there is no request yet. It blocks on the database:
    call it from a worker thread."""
    scheme, token = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer" or not token:
        return False
    with closing(new_session(db_url)) as session:
        return live_token(session, token) is not None


CurrentUser = Annotated[User, Depends(get_current_user)]
WorkerToken = Annotated[ApiToken, Depends(get_worker_token)]


def may_write(user: User, run: Run) -> bool:
    """Whether ``user`` may change ``run``, log into it, upload to it or parent a run
    under it: its owner or an admin."""
    return run.owner_id == user.id or user.role is Role.admin


def run_or_404(session: Session, run_id: int) -> Run:
    try:
        return get_run(session, run_id)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
