"""train runs from before stimulus_norm say how they were trained: shared

Train runs (and studies' train templates) stored before the field existed were trained
with the stimuli sharing the classification pathway's BatchNorm statistics; without the
field they would read as trained with today's default.

Revision ID: 0004
Revises: 0003

"""

import json
from typing import Any
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("kind", sa.String),
                sa.column("config", sa.JSON))


def _with_shared(config: dict[str, Any]) -> dict[str, Any] | None:
    if "stimulus_norm" not in config and "alpha" in config and "dataset" in config:
        return {**config, "stimulus_norm": "shared"}  # a train config
    train = config.get("train")
    if isinstance(train, dict) and "stimulus_norm" not in train:
        return {**config, "train": {**train, "stimulus_norm": "shared"}}  # a study
    return None


def _rewrite(change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
    """Store ``change(config)`` for every train and study run it returns a config for."""
    bind = op.get_bind()
    rows = bind.execute(sa.select(runs.c.id, runs.c.config).where(
        runs.c.kind.in_(["train", "study"]))).all()
    for run_id, config in rows:
        if isinstance(config, str):
            config = json.loads(config)
        new = change(config) if isinstance(config, dict) else None
        if new is not None and new != config:
            bind.execute(runs.update().where(runs.c.id == run_id).values(config=new))


def _without_field(config: dict[str, Any]) -> dict[str, Any]:
    new = {k: v for k, v in config.items() if k != "stimulus_norm"}
    if isinstance(new.get("train"), dict):
        new["train"] = {k: v for k, v in new["train"].items() if k != "stimulus_norm"}
    return new


def upgrade() -> None:
    _rewrite(_with_shared)


def downgrade() -> None:
    _rewrite(_without_field)  # older code refuses a config field it does not know
