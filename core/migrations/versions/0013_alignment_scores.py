"""evaluation_scores: rescore the succeeded evaluations for the alignment part's columns

The leaderboard sorts by the alignment part's headline means (``rsa_mix_oracle``,
``rsa_mix_oracle_normalized``, ``feve_best``, ``cka_mix_oracle``) from now on; an
evaluation that ran that part before has no such scores. Each succeeded evaluate run with a result, of a model that
still exists, gets its scores replaced by those of its record as ``ml.evaluate.record``
builds them (the same numbers, and the new ones).

Revision ID: 0013
Revises: 0012

"""

from alembic import op

from core.migrations.scores import rescore, unscore

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Rescore every succeeded evaluation of a model that still exists whose result has a
    alignment part (the others' scores are unchanged)."""
    rescore(op.get_bind(), "alignment")


def downgrade() -> None:
    """The alignment scores go; 0012's code neither writes nor reads them."""
    unscore(op.get_bind(),
            ["rsa_mix_oracle", "rsa_mix_oracle_normalized", "feve_best", "cka_mix_oracle"])
