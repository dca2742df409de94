"""The leaderboard's scores on SQLite and PostgreSQL: written by the lifecycle when an
evaluation ends, the same numbers its record ranks by; and the leaderboard's one query
that filters, sorts (the unmeasured last, at one ε) and pages over them; the migration
that scores the evaluations stored before the table."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, update

from core.lifecycle import cancel_run, finish_run, start_run
from core.store.db import migrate, session_scope
from core.store.models import EvaluationScore, Role, Run, RunStatus, User
from core.store.runs import create_run
from core.store.scores import leaderboard
from core.store.users import create_user
from ml.evaluate.record import leaderboard_row, model_record, scores
from tests.core.migrating import old_user
from tests.server.test_records_api import _result

LINF, L2 = 8 / 255, 0.5
EPS = {"linf": LINF, "l2": L2}
TRAIN = {"backbone": "resnet18", "width": 16, "dataset": "cifar10", "seed": 1}


def _model(s, owner: User, *, parent_id: int | None = None, **config) -> Run:
    m = create_run(s, owner=owner, kind="train", name="m", parent_id=parent_id,
                   config={**TRAIN, **config})
    finish_run(s, m.id, RunStatus.succeeded, result={})
    return m


def _evaluation(s, owner: User, model: Run, result: dict | None,
                status: RunStatus = RunStatus.succeeded) -> int:
    e = create_run(s, owner=owner, kind="evaluate", name="e", input_run_id=model.id,
                   config={})
    finish_run(s, e.id, status, result=result, error=None if result else "boom")
    return e.id


def _stored(s, run_id: int) -> list[tuple[str, float, float]]:
    return sorted(tuple(r) for r in s.execute(
        select(EvaluationScore.column, EvaluationScore.eps, EvaluationScore.value)
        .where(EvaluationScore.run_id == run_id)))


@pytest.fixture
def store(db_url: str) -> str:
    migrate(db_url)
    with session_scope(db_url) as s:
        for name in ("ada", "bob"):
            create_user(s, name=name, role=Role.member)
    return db_url


def _user(s, name: str) -> User:
    return s.execute(select(User).filter_by(name=name)).scalar_one()


@pytest.fixture
def board(store: str) -> dict:
    """Five evaluations: one in a study, one of bob's, one of a model whose config names
    no target (an old one: ``none``), one on another dataset, a failed and an empty one."""
    with session_scope(store) as s:
        ada, bob = _user(s, "ada"), _user(s, "bob")
        study = create_run(s, owner=ada, kind="study", name="grid", config={})
        models = [_model(s, ada, target="none", alpha=0.0),
                  _model(s, ada, parent_id=study.id, target="neural-model", alpha=8.0),
                  _model(s, bob, target="neural-model", alpha=2.0, seed=2),
                  _model(s, ada, alpha=0.0),  # no target: none
                  _model(s, ada, target="shuffle", alpha=4.0, dataset="digits32")]
        results = [_result(0.9, 0.10, 0.30, 0.70), _result(0.88, 0.20, 0.25, 0.75),
                   _result(0.86, None, 0.40, 0.60), _result(0.8, 0.5, 0.5, 0.5, eps=0.1),
                   _result(0.7, 0.2, 0.1, 0.4)]
        evals = [_evaluation(s, ada if k != 2 else bob, m, r)
                 for k, (m, r) in enumerate(zip(models, results, strict=True))]
        failed = _evaluation(s, ada, models[0], None, RunStatus.failed)
        empty = _evaluation(s, ada, models[1], {})
        return {"evals": evals, "models": [m.id for m in models], "study": study.id,
                "failed": failed, "empty": empty}


def _ids(url: str, sort: str = "evaluation_run", *, descending: bool = True,
         eps: dict | None = None, **filters) -> tuple[list[int], int]:
    with session_scope(url) as s:
        pairs, total = leaderboard(s, sort=sort, descending=descending,
                                   eps={**EPS, **(eps or {})}, **filters)
        return [e.id for e, _ in pairs], total


def test_an_evaluation_ended_by_the_lifecycle_has_its_records_scores(store: str, board: dict
                                                                     ) -> None:
    with session_scope(store) as s:
        e = s.get(Run, board["evals"][1])
        model = s.get(Run, e.input_run_id)
        rec = model_record(evaluation={"id": e.id, "result": e.result},
                           model={"id": model.id, "config": model.config})
        got = _stored(s, e.id)
        assert got == sorted(scores(rec))
        row = leaderboard_row(rec)
        assert ("autoattack_linf", pytest.approx(LINF), 0.2) in got
        assert ("autoattack_l2", 0.5, 0.25) in got
        assert {c for c, _, _ in got} == {
            c for c in ("clean_acc", "corruptions_acc", "noise_acc", "median_l2", "mean_l2",
                        "alpha", "seed", "evaluation_run") if row[c] is not None} | {
            "autoattack_linf", "autoattack_l2"}
        assert ("evaluation_run", 0.0, float(e.id)) in got and ("alpha", 0.0, 8.0) in got
        # a failed, an empty and a cancelled evaluation have none; nor has a train run
        assert _stored(s, board["failed"]) == [] and _stored(s, board["empty"]) == []
        assert _stored(s, board["models"][0]) == []
        running = create_run(s, owner=_user(s, "ada"), kind="evaluate", name="e",
                             input_run_id=model.id, config={})
        start_run(s, running.id)
        cancel_run(s, running)
        assert _stored(s, running.id) == []
        # deleting the evaluation deletes its scores
        s.execute(delete(Run).where(Run.id == e.id))
        assert s.execute(select(EvaluationScore)
                         .where(EvaluationScore.run_id == e.id)).first() is None


def test_a_rescored_end_replaces_the_scores(store: str, board: dict) -> None:
    """Each end rewrites them: an evaluation requeued and finished again (or failed)
    ranks by its last result only."""
    run_id = board["evals"][0]
    with session_scope(store) as s:
        s.execute(update(Run).where(Run.id == run_id).values(status=RunStatus.running))
        finish_run(s, run_id, RunStatus.succeeded, result=_result(0.5, 0.4, 0.3, 0.2))
        assert ("clean_acc", 0.0, 0.5) in _stored(s, run_id)
        assert len([r for r in _stored(s, run_id) if r[0] == "clean_acc"]) == 1
        s.execute(update(Run).where(Run.id == run_id).values(status=RunStatus.running))
        finish_run(s, run_id, RunStatus.failed, error="boom")
        assert _stored(s, run_id) == []


def test_the_unmeasured_come_last_in_either_order_ties_newest_first(store: str, board: dict
                                                                    ) -> None:
    ev = board["evals"]
    # AA L∞ at 8/255: 0.2 (ev 1 and ev 4: a tie, newest first), 0.1; ev 2 measured no
    # L∞ and ev 3 another ε: last, newest first, in either order
    assert _ids(store, "autoattack_linf") == ([ev[4], ev[1], ev[0], ev[3], ev[2]], 5)
    assert _ids(store, "autoattack_linf", descending=False) == (
        [ev[0], ev[4], ev[1], ev[3], ev[2]], 5)
    assert _ids(store, "clean_acc", descending=False)[0] == [ev[4], ev[3], ev[2], ev[1], ev[0]]
    # no evaluation measured a median L∞: newest first whatever the order
    newest = sorted(ev, reverse=True)
    assert _ids(store, "median_linf")[0] == _ids(store, "median_linf", descending=False)[0] \
        == newest


def test_autoattack_ranks_at_the_asked_eps_within_a_relative_1e6(store: str, board: dict
                                                                 ) -> None:
    ev = board["evals"]
    assert _ids(store, "autoattack_linf", eps={"linf": 0.1})[0][0] == ev[3]
    assert _ids(store, "autoattack_linf", eps={"linf": 0.1 * (1 + 5e-7)})[0][0] == ev[3]
    far = _ids(store, "autoattack_linf", eps={"linf": 0.1 * (1 + 5e-6)})[0]
    assert far == sorted(ev, reverse=True)  # nobody measured it: all unmeasured
    # the other threat model's ε does not move this column
    assert _ids(store, "autoattack_linf", eps={"l2": 0.1})[0][0] == ev[4]
    assert _ids(store, "autoattack_l2", eps={"l2": 0.5})[0] == [ev[3], ev[2], ev[0], ev[1],
                                                                ev[4]]


def test_the_leaderboard_filters_in_sql(store: str, board: dict) -> None:
    ev = board["evals"]

    def got(**filters) -> list[int]:
        return sorted(_ids(store, **filters)[0])

    assert got() == sorted(ev)  # neither the failed nor the empty evaluation
    assert got(owner="bob") == [ev[2]] and got(owner="nobody") == []
    assert got(study=board["study"]) == [ev[1]]
    assert got(dataset="cifar10") == sorted(ev[:4]) and got(dataset="digits32") == [ev[4]]
    assert got(target="neural-model") == [ev[1], ev[2]]
    assert got(target="none") == [ev[0], ev[3]]  # a config without a target is none
    assert got(target="shuffle", dataset="cifar10") == []
    # a model deleted since: its evaluations leave the leaderboard
    with session_scope(store) as s:
        s.execute(delete(Run).where(Run.id == board["models"][4]))
    assert got() == sorted(ev[:4])


def test_the_leaderboard_pages_in_sql(store: str, board: dict) -> None:
    ev = board["evals"]
    order = sorted(ev, reverse=True)
    assert _ids(store, limit=2) == (order[:2], 5)
    assert _ids(store, limit=2, offset=2) == (order[2:4], 5)
    assert _ids(store, limit=2, offset=4) == (order[4:], 5)
    assert _ids(store, limit=2, offset=9) == ([], 5)
    assert _ids(store, owner="ada", limit=1) == ([order[0]], 4)


def test_the_migration_scores_the_evaluations_stored_before_it(db_url: str) -> None:
    """An evaluation that succeeded under 0008 (no scores table) is on the leaderboard
    once the database is at head, with the scores of its record."""
    migrate(db_url, "0008")  # runs is the same there: only the scores table is new
    with session_scope(db_url) as s:
        ada = old_user(s, "ada")
        model = create_run(s, owner=ada, kind="train", name="m",
                           config={**TRAIN, "target": "none", "alpha": 0.0})
        runs = {name: create_run(s, owner=ada, kind="evaluate", name=name,
                                 input_run_id=model.id, config={})
                for name in ("done", "failed", "empty", "orphan")}
        orphan_model = create_run(s, owner=ada, kind="train", name="gone", config=TRAIN)
        s.flush()
        # ended as 0008's code ended them (no scores), straight in the table
        for name, status, result in (("done", "succeeded", _result(0.9, 0.1, 0.3, 0.7)),
                                     ("failed", "failed", None), ("empty", "succeeded", {}),
                                     ("orphan", "succeeded", _result(0.5, 0.1, 0.1, 0.1))):
            s.execute(update(Run).where(Run.id == runs[name].id).values(
                status=status, result=result,
                input_run_id=orphan_model.id if name == "orphan" else model.id))
        s.execute(update(Run).where(Run.id == model.id).values(status="succeeded"))
        s.execute(delete(Run).where(Run.id == orphan_model.id))
        ids = {name: r.id for name, r in runs.items()}
    migrate(db_url)
    assert _ids(db_url, "clean_acc") == ([ids["done"]], 1)
    with session_scope(db_url) as s:
        got = _stored(s, ids["done"])
        assert ("clean_acc", 0.0, 0.9) in got and ("autoattack_l2", 0.5, 0.3) in got
        assert all(_stored(s, ids[n]) == [] for n in ("failed", "empty", "orphan"))


def test_the_mechanism_migration_rescores_the_evaluations_that_ran_that_part(db_url: str
                                                                             ) -> None:
    """An evaluation scored under 0009 (no mechanism columns) gets its mechanism medians at
    head, its other scores unchanged; one without the part keeps its scores as they were."""
    from tests.ml.evaluate.test_record import MECHANISM

    migrate(db_url, "0009")
    with session_scope(db_url) as s:
        ada = old_user(s, "ada")
        model = _model(s, ada, target="none", alpha=0.0)
        with_part = {**_result(0.9, 0.1, 0.3, 0.7), "mechanism": MECHANISM}
        ids = {name: _evaluation(s, ada, model, result) for name, result in (
            ("mechanism", with_part), ("plain", _result(0.8, 0.2, 0.4, 0.6)))}
        # as 0009's code scored them: without the mechanism's columns
        s.execute(delete(EvaluationScore).where(EvaluationScore.run_id == ids["mechanism"],
                                                EvaluationScore.column.like("grad_%")
                                                | EvaluationScore.column.like("subspace_%")))
        before = {name: _stored(s, i) for name, i in ids.items()}
    assert not any(c.startswith("grad_") for c, _, _ in before["mechanism"])
    migrate(db_url)
    with session_scope(db_url) as s:
        got = _stored(s, ids["mechanism"])
        assert ("grad_l2_median", 0.0, 2.0) in got and ("subspace_share_l2", 0.0, 0.3) in got
        assert set(before["mechanism"]) < set(got)
        assert _stored(s, ids["plain"]) == before["plain"]
    assert _ids(db_url, "grad_l2_median") == ([ids["mechanism"], ids["plain"]], 2)
    migrate(db_url, "0009")  # down: 0009's columns only
    with session_scope(db_url) as s:
        assert _stored(s, ids["mechanism"]) == before["mechanism"]
