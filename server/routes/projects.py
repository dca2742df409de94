"""Projects and their members (:mod:`core.access` says what each role may do): every
member lists the projects they belong to; admins make and delete projects; a project's
owners (and admins) set its members' roles."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import HTTPException, Path, status
from sqlalchemy import select

from core.access import Access
from core.store.models import Project, User
from core.store.projects import (
    LastOwner,
    create_project,
    delete_project,
    find_project,
    members,
    run_counts,
    set_member,
)
from core.store.runs import NotFound
from server.deps import CurrentAccess, SessionDep
from server.schemas import MemberSet, ProjectCreate, ProjectMemberPublic, ProjectPublic
from server.strict import CONFLICT, ErrorDetail, api_router, invalid

router = api_router(prefix="/api/projects", tags=["projects"])

ProjectPath = Annotated[str, Path(min_length=1, max_length=64,
                                  pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
                                  description="a project's name or id")]
UserName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$",
                               description="a user's name")]
OWNERS_ONLY: dict[int | str, dict[str, Any]] = {403: {"model": ErrorDetail,
                     "description": "Only the project's owners and admins may do this"}}


def _readable(session: SessionDep, access: Access, ref: str) -> Project:
    """A project the caller belongs to (every one for an admin); 404 otherwise, as for one
    that does not exist."""
    try:
        project = find_project(session, ref)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, exc.message) from None
    if access.role_in(project.id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"project {ref!r} does not exist")
    return project


def _public(session: SessionDep, access: Access, project: Project, *, count: int,
            with_members: bool) -> ProjectPublic:
    role = access.role_in(project.id)
    assert role is not None
    listed = [ProjectMemberPublic(user_id=u.id, user=u.name, role=r)
              for u, r in members(session, project.id)] if with_members else []
    return ProjectPublic(id=project.id, name=project.name, description=project.description,
                         created_at=project.created_at, role=role, runs=count,
                         members=listed)


@router.get("")
def list_(session: SessionDep, access: CurrentAccess) -> list[ProjectPublic]:
    """The projects you belong to (every one for an admin), with your role in each and
    how many runs it holds."""
    projects = session.execute(select(Project).where(access.projects())
                               .order_by(Project.id)).scalars().all()
    counts = run_counts(session, [p.id for p in projects])
    return [_public(session, access, p, count=counts.get(p.id, 0), with_members=False)
            for p in projects]


@router.post("", status_code=status.HTTP_201_CREATED, responses={
    **CONFLICT, 403: {"model": ErrorDetail, "description": "Only an admin may"}})
def create(body: ProjectCreate, session: SessionDep, access: CurrentAccess) -> ProjectPublic:
    """Make a project (admins only); ``owners`` (user names) own it from the start, else
    the admin making it. Nobody else reads it until an owner adds them."""
    if not access.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin may make a project")
    owners = []
    for i, name in enumerate(body.owners or [access.user.name]):
        user = _named(session, name)
        if user is None:
            raise invalid(["body", "owners", i], f"there is no user {name!r}", "not_found")
        owners.append(user)
    try:
        project = create_project(session, name=body.name, description=body.description,
                                 actor=access.user, owners=owners)
    except ValueError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    session.commit()
    return _public(session, access, project, count=0, with_members=True)


@router.get("/{project}")
def read(project: ProjectPath, session: SessionDep, access: CurrentAccess) -> ProjectPublic:
    """A project you belong to, with its members and their roles."""
    found = _readable(session, access, project)
    return _public(session, access, found, count=run_counts(session, [found.id]).get(
        found.id, 0), with_members=True)


def _owned(session: SessionDep, access: Access, ref: str) -> Project:
    project = _readable(session, access, ref)
    if not access.owns(project.id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"only the owners of project "
                            f"{project.name!r} (and admins) may set its members")
    return project


def _named(session: SessionDep, name: str) -> User | None:
    return session.execute(select(User).where(User.name == name)).scalar_one_or_none()


def _user(session: SessionDep, name: str) -> User:
    user = _named(session, name)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"there is no user {name!r}")
    return user


@router.put("/{project}/members/{user}", responses={**OWNERS_ONLY, **CONFLICT})
def set_role(project: ProjectPath, user: UserName, body: MemberSet, session: SessionDep,
             access: CurrentAccess) -> ProjectPublic:
    """Give a user a role in the project (``viewer``, ``editor``, ``owner``): its owners
    and admins. 409 when it would leave the project without an owner."""
    found = _owned(session, access, project)
    member = _user(session, user)
    try:
        set_member(session, found, member, body.role, actor=access.user)
    except LastOwner as exc:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    session.commit()
    return read(project, session, access)


@router.delete("/{project}/members/{user}", status_code=status.HTTP_204_NO_CONTENT,
               responses={**OWNERS_ONLY, **CONFLICT})
def remove(project: ProjectPath, user: UserName, session: SessionDep,
           access: CurrentAccess) -> None:
    """Take a user out of the project: they read none of its runs from the next request
    on (their runs in it stay, and its owners manage them). Its owners and admins."""
    found = _owned(session, access, project)
    member = _user(session, user)
    try:
        if not set_member(session, found, member, None, actor=access.user):
            raise HTTPException(status.HTTP_404_NOT_FOUND,
                                f"{user} is not a member of project {found.name!r}")
    except LastOwner as exc:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    session.commit()


@router.delete("/{project}", status_code=status.HTTP_204_NO_CONTENT,
               responses={**CONFLICT, 403: {"model": ErrorDetail,
                                            "description": "Only an admin may"}})
def delete(project: ProjectPath, session: SessionDep, access: CurrentAccess) -> None:
    """Delete an empty project (admins only; never the default one)."""
    found = _readable(session, access, project)
    if not access.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin may delete a project")
    try:
        delete_project(session, found, actor=access.user)
    except ValueError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    session.commit()
