"""Projects and their members (:mod:`core.access` says what each role may do). Every
change is recorded in the audit trail in its own transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from core.store import audit
from core.store.models import (
    DEFAULT_PROJECT_ID,
    MAX_ID,
    Project,
    ProjectMember,
    ProjectRole,
    Run,
    User,
)
from core.store.runs import NotFound


class LastOwner(Exception):
    """The change would leave a project without an owner (only admins could manage it)."""


def find_project(session: Session, ref: str | int) -> Project:
    """A project by id or by name.

    Raises:
        NotFound: no such project.
    """
    if isinstance(ref, int) or ref.isdigit():
        project = session.get(Project, int(ref)) if 0 < int(ref) <= MAX_ID else None
    else:
        project = session.execute(select(Project).where(Project.name == ref)
                                  ).scalar_one_or_none()
    if project is None:
        raise NotFound(f"project {ref!r} does not exist", field="project")
    return project


def create_project(session: Session, *, name: str, description: str, actor: User,
                   owners: Sequence[User] = ()) -> Project:
    """A new project; ``owners`` become its owners. Raises ValueError for a name taken."""
    if session.execute(select(Project.id).where(Project.name == name)).first():
        raise ValueError(f"name: a project named {name!r} exists")
    project = Project(name=name, description=description)
    session.add(project)
    session.flush()
    audit.record(session, actor, "project.created", "project", project.id,
                 project_id=project.id, name=name)
    for user in owners:
        set_member(session, project, user, ProjectRole.owner, actor=actor)
    return project


def members(session: Session, project_id: int) -> Sequence[tuple[User, ProjectRole]]:
    return session.execute(
        select(User, ProjectMember.role).join(ProjectMember, ProjectMember.user_id == User.id)
        .where(ProjectMember.project_id == project_id).order_by(User.name)).all()


def run_counts(session: Session, project_ids: Sequence[int]) -> dict[int, int]:
    rows = session.execute(select(Run.project_id, func.count()).where(
        Run.project_id.in_(list(project_ids))).group_by(Run.project_id))
    return {pid: n for pid, n in rows}


def set_member(session: Session, project: Project, user: User, role: ProjectRole | None,
               *, actor: User) -> bool:
    """Give ``user`` a role in ``project`` (None: take them out of it); False when
    nothing changed.

    Raises:
        LastOwner: it would leave the project without an owner.
    """
    row = session.get(ProjectMember, (project.id, user.id))
    before = row.role if row is not None else None
    if before is role:
        return False
    if row is None:
        session.add(ProjectMember(project_id=project.id, user_id=user.id, role=role))
    elif role is None:
        session.delete(row)
    else:
        row.role = role
    session.flush()
    if before is ProjectRole.owner and project.id != DEFAULT_PROJECT_ID:
        left = session.execute(select(func.count()).select_from(ProjectMember).where(
            ProjectMember.project_id == project.id,
            ProjectMember.role == ProjectRole.owner)).scalar_one()
        if left == 0:
            raise LastOwner(f"that would leave project {project.name!r} without an owner; "
                            "make another member its owner first")
    audit.record(session, actor, "project.member_set" if role else "project.member_removed",
                 "project", project.id, project_id=project.id, project=project.name,
                 user_id=user.id, user=user.name,
                 before=before.value if before else None, after=role.value if role else None)
    return True


def join_default(session: Session, user: User, role: ProjectRole) -> None:
    """A new user joins the default project (as every member did before projects)."""
    session.add(ProjectMember(project_id=DEFAULT_PROJECT_ID, user_id=user.id, role=role))


def move_run(session: Session, run: Run, project: Project, *, actor: User) -> list[int]:
    """Move ``run`` and everything it made (a study's runs, their evaluations) into
    ``project``: who may read it changes with it. Returns the ids moved."""
    before = run.project_id
    ids, frontier = [run.id], [run.id]
    while frontier:
        frontier = list(session.execute(select(Run.id).where(
            Run.parent_id.in_(frontier))).scalars())
        ids += frontier
    session.execute(update(Run).where(Run.id.in_(ids)).values(project_id=project.id)
                    .execution_options(synchronize_session="fetch"))
    source = session.get(Project, before)
    detail = {"name": run.name, "runs": len(ids), "before": before, "after": project.id,
              "before_name": source.name if source else None, "after_name": project.name}
    # an event in each project, for each one's owners: the one it enters, the one it left
    audit.record(session, actor, "run.moved", "run", run.id, project_id=project.id, **detail)
    if before != project.id:
        audit.record(session, actor, "run.moved_out", "run", run.id, project_id=before,
                     **detail)
    return ids


def delete_project(session: Session, project: Project, *, actor: User) -> None:
    """Delete an empty project (not the default one).

    Raises:
        ValueError: the default project, or one that holds runs.
    """
    if project.id == DEFAULT_PROJECT_ID:
        raise ValueError("project: the default project stays")
    held = session.execute(select(func.count()).select_from(Run).where(
        Run.project_id == project.id)).scalar_one()
    if held:
        raise ValueError(f"project: {project.name!r} holds {held} run(s); move or delete "
                         "them first")
    session.execute(delete(ProjectMember).where(ProjectMember.project_id == project.id))
    session.delete(project)
    audit.record(session, actor, "project.deleted", "project", project.id,
                 project_id=project.id, name=project.name)
