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

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("kind", sa.String),
                sa.column("status", sa.String), sa.column("config", sa.JSON),
                sa.column("result", sa.JSON), sa.column("parent_id", sa.Integer),
                sa.column("input_run_id", sa.Integer))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _backfill(scores: sa.Table) -> None:
    """The scores of every succeeded evaluation of a model that still exists."""
    from ml.evaluate.record import model_record
    from ml.evaluate.record import scores as record_scores

    bind = op.get_bind()
    model = runs.alias("model")
    rows = bind.execute(
        sa.select(runs.c.id, runs.c.result, model.c.id, model.c.config, model.c.parent_id)
        .join(model, runs.c.input_run_id == model.c.id)
        .where(runs.c.kind == "evaluate", runs.c.status == "succeeded")).all()
    for run_id, result, model_id, config, parent_id in rows:
        result, config = _json(result), _json(config)
        if not result or not isinstance(result, dict):
            continue
        rec = model_record(evaluation={"id": run_id, "result": result},
                           model={"id": model_id, "config": config if isinstance(
                               config, dict) else {}, "parent_id": parent_id})
        values = [{"run_id": run_id, "column": c, "eps": e, "value": v}
                  for c, e, v in record_scores(rec)]
        if values:
            bind.execute(scores.insert(), values)


def upgrade() -> None:
    scores = op.create_table(
        "evaluation_scores",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("column", sa.String(length=32), primary_key=True),
        sa.Column("eps", sa.Float(), primary_key=True),
        sa.Column("value", sa.Float(), nullable=False),
    )
    op.create_index("ix_evaluation_scores_column_eps_value", "evaluation_scores",
                    ["column", "eps", "value"])
    _backfill(scores)


def downgrade() -> None:
    op.drop_table("evaluation_scores")
