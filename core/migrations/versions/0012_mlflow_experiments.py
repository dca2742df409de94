"""mlflow_experiments: the experiments of the MLflow-compatible tracking API, with
MLflow's "Default" (id 0)

Revision ID: 0012
Revises: 0011

"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "mlflow_experiments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=500), nullable=False, unique=True),
        sa.Column("tag", sa.String(length=64), nullable=False, unique=True),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
    )
    now = datetime.now(UTC)
    op.bulk_insert(table, [{"id": 0, "name": "Default", "tag": "exp:Default", "owner_id": None,
                            "deleted": False, "created_at": now, "updated_at": now,
                            "tags": {}}])


def downgrade() -> None:
    op.drop_table("mlflow_experiments")
