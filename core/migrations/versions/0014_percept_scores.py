"""evaluation_scores: rescore the succeeded evaluations for the percept part's columns

The leaderboard sorts by the percept part's L2 headline numbers (``percept_v1_adv_l2``,
``percept_model_adv_l2``, ``percept_specificity_l2``) from now on; an evaluation that ran
that part before has no such scores. Each succeeded evaluate run with a result that has a
percept part, of a model that still exists, gets its scores replaced by those of its
record as ``ml.evaluate.record`` builds them (the same numbers, and the new ones).

Revision ID: 0014
Revises: 0013

"""

from alembic import op

from core.migrations.scores import rescore, unscore

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Rescore every succeeded evaluation of a model that still exists whose result has a
    percept part (the others' scores are unchanged)."""
    rescore(op.get_bind(), "percept")


def downgrade() -> None:
    """The percept scores go; 0013's code neither writes nor reads them."""
    unscore(op.get_bind(),
            ["percept_v1_adv_l2", "percept_model_adv_l2", "percept_specificity_l2"])
