"""Who may read and write what: projects and roles.

A run belongs to one project (``runs.project_id``). A member's role in a project
(``project_members``) is

- ``viewer``: reads the project's runs (lists, queries, groups, compare, the leaderboard,
  exports, plots, logs, artifacts) and writes nothing;
- ``editor``: also creates runs in it and changes, cancels and deletes their own;
- ``owner``: also changes, cancels and deletes anyone's runs in it and sets its members.

Admins read and write every project and make projects. A run a member may not read is
"not found" to them (404), never "forbidden": its id says nothing about it. One
:class:`Access` is loaded per request and every read of runs goes through
:meth:`Access.runs` (a SQL condition) or :meth:`Access.can_read`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from core.store.models import (
    DEFAULT_PROJECT_ID,
    AuditEvent,
    Project,
    ProjectMember,
    ProjectRole,
    Role,
    Run,
    User,
)


@dataclass(frozen=True)
class Access:
    """What one user may do: their role in each project they belong to."""

    user: User
    roles: dict[int, ProjectRole] = field(default_factory=dict)

    @property
    def admin(self) -> bool:
        return self.user.role is Role.admin

    def role_in(self, project_id: int) -> ProjectRole | None:
        """Their role in a project; an admin is everywhere an owner."""
        return ProjectRole.owner if self.admin else self.roles.get(project_id)

    def runs(self, project_id: Any = None) -> ColumnElement[bool]:
        """The SQL condition a run they may read meets (``project_id``: the column of an
        aliased run's project, for a query that reads two runs)."""
        column = Run.project_id if project_id is None else project_id
        return true() if self.admin else column.in_(sorted(self.roles))

    def projects(self) -> ColumnElement[bool]:
        """The SQL condition a project they may read meets."""
        return true() if self.admin else Project.id.in_(sorted(self.roles))

    def can_read(self, run: Run) -> bool:
        return self.admin or self.role_in(run.project_id) is not None

    def can_write(self, run: Run) -> bool:
        """Change it, log, upload or finish into it, cancel or delete it, parent a run
        under it: its owner while an editor of its project, an owner of the project, an
        admin."""
        if self.admin:
            return True
        role = self.role_in(run.project_id)
        return role is ProjectRole.owner or (
            role is ProjectRole.editor and run.owner_id == self.user.id)

    def can_create_in(self, project_id: int) -> bool:
        role = self.role_in(project_id)
        return role is not None and role.rank >= ProjectRole.editor.rank

    def owns(self, project_id: int) -> bool:
        return self.role_in(project_id) is ProjectRole.owner

    def owned(self) -> ColumnElement[bool]:
        """The SQL condition an audit event they may read meets: one in a project they
        own; every event for an admin."""
        if self.admin:
            return true()
        mine = sorted(p for p, r in self.roles.items() if r is ProjectRole.owner)
        return AuditEvent.project_id.in_(mine)

    def home(self) -> int | None:
        """The project a run they create goes into when they name none: the default one
        when they may create runs there, else the first project they may; None if none."""
        if self.can_create_in(DEFAULT_PROJECT_ID):
            return DEFAULT_PROJECT_ID
        editable = sorted(p for p in self.roles if self.can_create_in(p))
        return editable[0] if editable else None


def access_of(session: Session, user: User) -> Access:
    rows = session.execute(select(ProjectMember.project_id, ProjectMember.role)
                           .where(ProjectMember.user_id == user.id)).all()
    return Access(user=user, roles={pid: role for pid, role in rows})


def readable_ids(session: Session, access: Access, run_ids: Sequence[int]) -> set[int]:
    """Those of ``run_ids`` the caller may read."""
    if not run_ids:
        return set()
    return set(session.execute(select(Run.id).where(
        Run.id.in_(list(run_ids)), access.runs())).scalars())
