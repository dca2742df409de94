"""train runs without a target store α = 0: the α they never used

A None run (``target: none``) has no similarity loss, so its α (Eq. 7's weight of that
loss) is unused; studies stored the train template's α (20) in their None cells, and a
train run without a target kept the default 20. Compared or grouped by ``config.alpha``,
those runs were drawn at α = 20 beside the regularized runs of that α. From now on a
study's None cell stores α = 0 (:func:`ml.study.study_cells`), as every study figure
already draws it; this stores α = 0 in the train runs stored before.

Revision ID: 0011
Revises: 0010

"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("kind", sa.String),
                sa.column("config", sa.JSON))


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(runs.c.id, runs.c.config).where(runs.c.kind == "train")).all()
    for run_id, config in rows:
        if isinstance(config, str):
            config = json.loads(config)
        if (isinstance(config, dict) and config.get("target", "none") == "none"
                and config.get("alpha", 0) != 0):
            bind.execute(runs.update().where(runs.c.id == run_id)
                         .values(config={**config, "alpha": 0.0}))


def downgrade() -> None:
    pass  # α = 0 is a config the older code reads as it reads 20 without a target
