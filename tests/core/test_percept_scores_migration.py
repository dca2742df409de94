"""Migration 0014 rescores the evaluations stored before the leaderboard sorted by the
percept part's L2 headline numbers: theirs appear, the others' are unchanged; downgrading
takes them away again."""

from __future__ import annotations

from sqlalchemy import delete, select

from core.lifecycle import finish_run
from core.store.db import migrate, session_scope
from core.store.models import EvaluationScore, RunStatus
from core.store.runs import create_run
from tests.core.migrating import old_user
from tests.percept_block import percept_block

PERCEPT = ["percept_model_adv_l2", "percept_specificity_l2", "percept_v1_adv_l2"]


def _scores(db_url: str, ids: list[int]) -> dict[int, dict[str, float]]:
    with session_scope(db_url) as s:
        return {rid: {c: v for c, v in s.execute(
            select(EvaluationScore.column, EvaluationScore.value)
            .where(EvaluationScore.run_id == rid)).all()} for rid in ids}


def test_evaluations_stored_before_get_their_percept_scores(db_url: str) -> None:
    migrate(db_url, "0013")
    block = percept_block()
    with session_scope(db_url) as s:
        owner = old_user(s, "percept-owner")
        model = create_run(s, owner=owner, kind="train", name="m",
                           config={"dataset": "digits32", "target": "none", "alpha": 0.0})
        finish_run(s, model.id, RunStatus.succeeded, result={})
        ids = []
        for part in (block, None):
            ev = create_run(s, owner=owner, kind="evaluate", name="e", input_run_id=model.id,
                            config={})
            result = {"noise": {"sigmas": [0.0], "accuracy": [0.9]}}
            finish_run(s, ev.id, RunStatus.succeeded,
                       result=result if part is None else {**result, "percept": part})
            ids.append(ev.id)
        # as 0013's code left them: no percept scores
        s.execute(delete(EvaluationScore).where(EvaluationScore.column.in_(PERCEPT)))
    assert not any(k in PERCEPT for k in _scores(db_url, ids)[ids[0]])
    migrate(db_url)
    got = _scores(db_url, ids)
    assert sorted(k for k in got[ids[0]] if k in PERCEPT) == PERCEPT
    assert got[ids[0]]["percept_specificity_l2"] == block["headline"]["specificity_l2"]
    assert got[ids[0]]["clean_acc"] == 0.9
    assert got[ids[1]]["clean_acc"] == 0.9 and not any(k in PERCEPT for k in got[ids[1]])
    migrate(db_url, "0013")  # down again: 0014 takes its scores away
    got = _scores(db_url, ids)
    assert not any(k in PERCEPT for k in got[ids[0]]) and got[ids[0]]["clean_acc"] == 0.9
