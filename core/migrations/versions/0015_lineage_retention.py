"""run_reads and retention_policies: lineage, and rules for deleting artifacts

``run_reads`` holds, per run, each artifact it reads from another run (``core.lineage``),
filled here for every stored run from its kind and config as the lineage code reads them;
``retention_policies`` the lab's artifact retention rules (``core.retention``), none at
first: nothing is deleted until an admin adds one.

Revision ID: 0015
Revises: 0014

"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    reads_table = op.create_table(
        "run_reads",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("input_run_id", sa.Integer(),
                  sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("artifact", sa.String(length=255), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.UniqueConstraint("run_id", "input_run_id", "artifact", "field",
                            name="uq_run_reads"),
    )
    op.create_index("ix_run_reads_run_id", "run_reads", ["run_id"])
    op.create_index("ix_run_reads_input_run_id", "run_reads", ["input_run_id"])
    op.create_table(
        "retention_policies",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=64), nullable=False, unique=True),
        sa.Column("rule", sa.String(length=16), nullable=False),
        sa.Column("pattern", sa.String(length=255), nullable=False),
        sa.Column("query", sa.String(length=2000), nullable=False),
        sa.Column("keep", sa.Integer(), nullable=True),
        sa.Column("days", sa.Float(), nullable=True),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    _backfill(op.get_bind(), reads_table)


def _backfill(bind: sa.Connection, reads_table: sa.Table) -> None:
    from core.lineage import reads

    runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("kind", sa.String),
                    sa.column("config", sa.JSON))
    ids = set(bind.execute(sa.select(runs.c.id)).scalars())
    rows = []
    for run_id, kind, config in bind.execute(
            sa.select(runs.c.id, runs.c.kind, runs.c.config).where(
                runs.c.kind.in_(["train", "evaluate", "study"]))):
        config = json.loads(config) if isinstance(config, str) else config
        for r in sorted(set(reads(kind, config)), key=lambda r: (r.run_id, r.artifact, r.field)):
            if r.run_id in ids and r.run_id != run_id:
                rows.append({"run_id": run_id, "input_run_id": r.run_id,
                             "artifact": r.artifact, "field": r.field})
    if rows:
        bind.execute(reads_table.insert(), rows)


def downgrade() -> None:
    op.drop_table("retention_policies")
    op.drop_index("ix_run_reads_input_run_id", table_name="run_reads")
    op.drop_index("ix_run_reads_run_id", table_name="run_reads")
    op.drop_table("run_reads")
