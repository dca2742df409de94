"""evaluation_scores (the leaderboard's sortable scores, so it sorts and pages in SQL),
backfilled for the succeeded evaluations already stored

Each succeeded evaluate run with a result, of a model that still exists, gets the scores
of its record as ``ml.evaluate.record`` builds them; the lifecycle writes them from now
on (``core.store.scores.write_scores``). The backfill scores with the code of this
migration's time: a later change to what a record holds rescores in a migration of its
own.

Revision ID: 0009
Revises: 0008

"""

import sqlalchemy as sa
from alembic import op

from core.migrations.scores import rescore

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluation_scores",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("column", sa.String(length=32), primary_key=True),
        sa.Column("eps", sa.Float(), primary_key=True),
        sa.Column("value", sa.Float(), nullable=False),
    )
    op.create_index("ix_evaluation_scores_column_eps_value", "evaluation_scores",
                    ["column", "eps", "value"])
    rescore(op.get_bind())  # every succeeded evaluation of a model that still exists


def downgrade() -> None:
    op.drop_table("evaluation_scores")
