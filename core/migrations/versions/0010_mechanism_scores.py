"""evaluation_scores: rescore the succeeded evaluations for the mechanism's columns

The leaderboard sorts by the mechanism part's medians (``grad_l2_median``,
``grad_l1_median``, ``subspace_share_<norm>``) from now on; an evaluation that ran that
part before has no such scores. Each succeeded evaluate run with a result, of a model that
still exists, gets its scores replaced by those of its record as ``ml.evaluate.record``
builds them (the same numbers, and the new ones).

Revision ID: 0010
Revises: 0009

"""

from alembic import op

from core.migrations.scores import rescore, unscore

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Rescore every succeeded evaluation of a model that still exists whose result has a
    mechanism part (the others' scores are unchanged)."""
    rescore(op.get_bind(), "mechanism")


def downgrade() -> None:
    """The mechanism's scores go; 0009's code neither writes nor reads them."""
    unscore(op.get_bind(),
            ["grad_l2_median", "grad_l1_median", "subspace_share_linf", "subspace_share_l2",
             "subspace_share_l1", "subspace_share_l0"])
