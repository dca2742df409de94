"""api_tokens.scope and worker_claims: tokens for workers that reach the service only
over its API

A token's ``scope`` is ``member`` (every token so far: a person's, for the API, the CLI
and the pages) or ``worker`` (for ``/api/worker/...`` only: a worker that has the
server's URL, such a token and the broker, and no database URL or shared folder).
``worker_claims`` records the worker token that claimed a run; only it may write to the
run.

Revision ID: 0016
Revises: 0015

"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("scope", sa.String(length=16), nullable=False,
                                   server_default="member"))
    op.create_table(
        "worker_claims",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("token_id", sa.Integer(),
                  sa.ForeignKey("api_tokens.id", ondelete="CASCADE"), nullable=False),
    )
    op.create_index("ix_worker_claims_token_id", "worker_claims", ["token_id"])


def downgrade() -> None:
    op.drop_index("ix_worker_claims_token_id", table_name="worker_claims")
    op.drop_table("worker_claims")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("scope")
