"""projects, project_members, runs.project_id, audit_events.project_id: projects and
roles

A run belongs to one project; a member is a ``viewer``, ``editor`` or ``owner`` of each
project they may read (``core.access``). Every run so far goes into the project this
makes, ``default`` (id 1, the ``runs.project_id`` server default); every member becomes
its editor and every admin its owner, so that every user reads and writes what they did
before. ``audit_events.project_id`` is the project a recorded change was in, for its
owners to read.

Revision ID: 0017
Revises: 0016

"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    projects = op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=64), nullable=False, unique=True),
        sa.Column("description", sa.String(length=500), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    members = op.create_table(
        "project_members",
        sa.Column("project_id", sa.Integer(),
                  sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("role", sa.String(length=16), nullable=False),
    )
    op.create_index("ix_project_members_user_id", "project_members", ["user_id"])
    bind = op.get_bind()
    from datetime import UTC, datetime

    # no explicit id: a PostgreSQL sequence would not know it; the first row is id 1
    bind.execute(projects.insert().values(name="default", description="",
                                          created_at=datetime.now(UTC)))
    default = bind.execute(sa.select(projects.c.id).where(projects.c.name == "default")
                           ).scalar_one()
    assert default == 1, default
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("role", sa.String))
    rows = [{"project_id": default, "user_id": uid,
             "role": "owner" if role == "admin" else "editor"}
            for uid, role in bind.execute(sa.select(users.c.id, users.c.role))]
    if rows:
        bind.execute(members.insert(), rows)
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("project_id", sa.Integer(), nullable=False,
                                   server_default="1"))
        batch.create_foreign_key("fk_runs_project_id_projects", "projects",
                                 ["project_id"], ["id"])
        batch.create_index("ix_runs_project_id", ["project_id"])
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("project_id", sa.Integer(), nullable=True))
        batch.create_index("ix_audit_events_project_id", ["project_id"])


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_index("ix_audit_events_project_id")
        batch.drop_column("project_id")
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_project_id")
        batch.drop_constraint("fk_runs_project_id_projects", type_="foreignkey")
        batch.drop_column("project_id")
    op.drop_index("ix_project_members_user_id", table_name="project_members")
    op.drop_table("project_members")
    op.drop_table("projects")
