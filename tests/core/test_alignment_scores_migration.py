"""Migration 0013 rescores the evaluations stored before the leaderboard sorted by the
alignment part's headline means: theirs appear, the others' are unchanged."""

from __future__ import annotations

from sqlalchemy import delete, select

from core.lifecycle import finish_run
from core.store.db import migrate, session_scope
from core.store.models import EvaluationScore, RunStatus
from core.store.runs import create_run
from tests.alignment_block import alignment_block
from tests.core.migrating import old_user

ALIGNMENT = ["cka_mix_oracle", "feve_best", "rsa_mix_oracle", "rsa_mix_oracle_normalized"]


def test_evaluations_stored_before_get_their_alignment_scores(db_url: str) -> None:
    migrate(db_url, "0012")
    with session_scope(db_url) as s:
        owner = old_user(s, "aligned-owner")
        model = create_run(s, owner=owner, kind="train", name="m",
                           config={"dataset": "digits32", "target": "none", "alpha": 0.0})
        finish_run(s, model.id, RunStatus.succeeded, result={})
        ids = []
        for block in (alignment_block(0.3), None):
            ev = create_run(s, owner=owner, kind="evaluate", name="e", input_run_id=model.id,
                            config={})
            result = {"noise": {"sigmas": [0.0], "accuracy": [0.9]}}
            finish_run(s, ev.id, RunStatus.succeeded,
                       result=result if block is None else {**result, "alignment": block})
            ids.append(ev.id)
        # as 0012's code left them: no alignment scores
        s.execute(delete(EvaluationScore).where(EvaluationScore.column.in_(ALIGNMENT)))
    migrate(db_url)
    with session_scope(db_url) as s:
        got = {rid: {c: v for c, v in s.execute(
            select(EvaluationScore.column, EvaluationScore.value)
            .where(EvaluationScore.run_id == rid)).all()} for rid in ids}
    assert sorted(k for k in got[ids[0]] if k in ALIGNMENT) == ALIGNMENT
    assert got[ids[0]]["rsa_mix_oracle"] == 0.3 and got[ids[0]]["clean_acc"] == 0.9
    assert got[ids[1]]["clean_acc"] == 0.9 and not any(k in ALIGNMENT for k in got[ids[1]])
