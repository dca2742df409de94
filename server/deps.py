"""FastAPI dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.orm import Session

from core.access import Access, access_of
from core.settings import Settings
from core.store.db import new_session
from core.store.models import MAX_ID, ApiToken, Project, ProjectRole, Run, User
from core.store.projects import find_project
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


def token_scope(db_url: str, authorization: str | None) -> str | None:
    """The scope of the live bearer token an ``Authorization`` header carries (None: no
    live token): for the check before a body is read (``server.app.BodyGate``), where
    there is no request yet. It blocks on the database: call it from a worker thread."""
    scheme, token = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer" or not token:
        return None
    with closing(new_session(db_url)) as session:
        row = live_token(session, token)
        return row.scope if row is not None else None


CurrentUser = Annotated[User, Depends(get_current_user)]
WorkerToken = Annotated[ApiToken, Depends(get_worker_token)]


def get_access(session: SessionDep, user: CurrentUser) -> Access:
    """What the caller may read and write (:mod:`core.access`)."""
    return access_of(session, user)


CurrentAccess = Annotated[Access, Depends(get_access)]


def run_or_404(session: Session, run_id: int, access: Access) -> Run:
    """A run the caller may read; 404 for one they may not, as for one that does not
    exist (its id tells them nothing)."""
    try:
        run = get_run(session, run_id)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    if not access.can_read(run):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} does not exist")
    return run


def run_to_write(session: Session, run_id: int, access: Access, action: str) -> Run:
    """A run the caller may change (:meth:`core.access.Access.can_write`): 404 for one
    they may not read, 403 for one they may only read."""
    run = run_or_404(session, run_id, access)
    if not access.can_write(run):
        raise HTTPException(status.HTTP_403_FORBIDDEN, cannot_write(access, run, action))
    return run


def project_to_add_to(session: Session, access: Access, ref: str | None, action: str, *,
                      parent: Run | None = None) -> Project:
    """The project a run goes into (created, imported or moved: ``action``, "create runs
    in"): the one ``ref`` names (a name or id), else its ``parent``'s, else the caller's
    home (:meth:`core.access.Access.home`). A project the caller does not belong to is a
    422 naming ``body.project``, as one that does not exist; one they only view, a 403."""
    from server.strict import invalid

    if ref is not None:
        try:
            project: Project | None = find_project(session, ref)
        except NotFound:
            project = None
        if project is None or access.role_in(project.id) is None:
            raise invalid(["body", "project"], f"project {ref!r} does not exist", "not_found")
        if parent is not None and parent.project_id != project.id:
            raise invalid(["body", "project"], f"run {parent.id}, its parent, is in another "
                          "project; a run goes into its parent's", "project_mismatch")
    else:
        home = parent.project_id if parent is not None else access.home()
        if home is None:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"project: you may {action} no "
                                "project; ask a project's owner to make you its editor")
        project = find_project(session, home)
    if not access.can_create_in(project.id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"project: you may not {action} "
                            f"{project.name!r}: you are its viewer")
    return project


def cannot_write(access: Access, run: Run, action: str) -> str:
    role = access.role_in(run.project_id)
    why = ("you are a viewer of its project" if role is ProjectRole.viewer
           else "only its owner or an owner of its project may")
    return f"run {run.id} is {run.owner.name}'s; you may not {action} it: {why}"
