"""evaluation_scores: rescore the succeeded evaluations for the percept part's columns

The leaderboard sorts by the percept part's L2 headline numbers (``percept_v1_adv_l2``,
``percept_model_adv_l2``, ``percept_specificity_l2``) from now on; an evaluation that ran
that part before has no such scores. Each succeeded evaluate run with a result that has a
percept part, of a model that still exists, gets its scores replaced by those of its
record as ``ml.evaluate.record`` builds them (the same numbers, and the new ones).

Revision ID: 0014
Revises: 0013

"""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("kind", sa.String),
                sa.column("status", sa.String), sa.column("config", sa.JSON),
                sa.column("result", sa.JSON), sa.column("parent_id", sa.Integer),
                sa.column("input_run_id", sa.Integer))
scores = sa.table("evaluation_scores", sa.column("run_id", sa.Integer),
                  sa.column("column", sa.String), sa.column("eps", sa.Float),
                  sa.column("value", sa.Float))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def upgrade() -> None:
    """Rescore every succeeded evaluation of a model that still exists whose result has a
    percept part (the others' scores are unchanged)."""
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
        if not result or not isinstance(result, dict) or not result.get("percept"):
            continue
        rec = model_record(evaluation={"id": run_id, "result": result},
                           model={"id": model_id, "config": config if isinstance(
                               config, dict) else {}, "parent_id": parent_id})
        bind.execute(scores.delete().where(scores.c.run_id == run_id))
        values = [{"run_id": run_id, "column": c, "eps": e, "value": v}
                  for c, e, v in record_scores(rec)]
        if values:
            bind.execute(scores.insert(), values)


def downgrade() -> None:
    """The percept scores go; 0013's code neither writes nor reads them."""
    bind = op.get_bind()
    bind.execute(scores.delete().where(scores.c.column.in_(
        ["percept_v1_adv_l2", "percept_model_adv_l2", "percept_specificity_l2"])))
