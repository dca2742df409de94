"""What the migrations of ``evaluation_scores`` share: rebuilding stored evaluations' scores
from their records, as ``ml.evaluate.record`` builds them in the code being migrated to.

A migration that adds leaderboard columns (0010 the mechanism's, 0013 the alignment's, 0014
the percept's) rescores the evaluations that ran that part; 0009, which made the table,
scored every one. Tables are named here, not taken from ``core.store.models``, so that a
later change to the models does not change what an old migration does to its tables.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("kind", sa.String),
                sa.column("status", sa.String), sa.column("config", sa.JSON),
                sa.column("result", sa.JSON), sa.column("parent_id", sa.Integer),
                sa.column("input_run_id", sa.Integer))
scores = sa.table("evaluation_scores", sa.column("run_id", sa.Integer),
                  sa.column("column", sa.String), sa.column("eps", sa.Float),
                  sa.column("value", sa.Float))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def rescore(bind: sa.Connection, part: str | None = None) -> None:
    """Replace the scores of every succeeded evaluation of a model that still exists by
    those of its record; with ``part``, only of those whose result has that part (the
    others' scores are unchanged)."""
    from ml.evaluate.record import model_record
    from ml.evaluate.record import scores as record_scores

    model = runs.alias("model")
    rows = bind.execute(
        sa.select(runs.c.id, runs.c.result, model.c.id, model.c.config, model.c.parent_id)
        .join(model, runs.c.input_run_id == model.c.id)
        .where(runs.c.kind == "evaluate", runs.c.status == "succeeded")).all()
    for run_id, result, model_id, config, parent_id in rows:
        result, config = _json(result), _json(config)
        if not result or not isinstance(result, dict) or (part and not result.get(part)):
            continue
        rec = model_record(evaluation={"id": run_id, "result": result},
                           model={"id": model_id, "config": config if isinstance(
                               config, dict) else {}, "parent_id": parent_id})
        bind.execute(scores.delete().where(scores.c.run_id == run_id))
        values = [{"run_id": run_id, "column": c, "eps": e, "value": v}
                  for c, e, v in record_scores(rec)]
        if values:
            bind.execute(scores.insert(), values)


def unscore(bind: sa.Connection, columns: Sequence[str]) -> None:
    """Delete every score of these columns (a downgrade past the migration that added
    them: the older code neither writes nor reads them)."""
    bind.execute(scores.delete().where(scores.c.column.in_(list(columns))))
