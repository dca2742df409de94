"""A study whose evaluation asks for soundness: each regularized model's evaluation
transfers attacks from the None model of its seed, and waits for it to finish."""

from __future__ import annotations

from typing import Any

import pytest

from core.lifecycle import finish_run, start_run
from core.settings import Settings
from core.store.db import migrate, session_scope
from core.store.models import Role, Run, RunStatus
from core.store.runs import create_run
from core.store.users import create_user
from core.studies import fan_out
from ml.study import StudyConfig, reference_of

EVALUATE = {"attacks": "quick", "norms": ["l2"], "parts": ["minimal", "soundness"]}


def _study(settings: Settings, evaluate: dict[str, Any]) -> tuple[int, dict[tuple[str, int], int]]:
    """A running study of None and neural-model at two seeds, its train runs running;
    the runs by (condition, seed)."""
    migrate(settings.db_url)
    with session_scope(settings.db_url) as s:
        user = create_user(s, name="u", role=Role.member)
        study = create_run(s, owner=user, kind="study", name="grid", config={
            "conditions": ["none", "neural-model"], "seeds": 2, "target_run": 1,
            "train": {"backbone": "small_cnn"}, "evaluate": evaluate})
        s.flush()
        start_run(s, study.id, worker="host:1")
        runs = fan_out(s, study)
        for r in runs:
            start_run(s, r.id, worker="host:1")
        return study.id, {(r.config["target"], r.config["seed"]): r.id for r in runs}


def _finish(settings: Settings, run_id: int, status: RunStatus = RunStatus.succeeded
            ) -> list[dict[str, Any]]:
    """End a train run; the evaluations that creates, as (train_run, reference_run)."""
    with session_scope(settings.db_url) as s:
        new = finish_run(s, run_id, status)
        return [{"train_run": r.config["train_run"], "reference_run": r.config["reference_run"]}
                for r in new if r.kind == "evaluate"]


def test_a_regularized_evaluation_waits_for_the_none_model_of_its_seed(settings: Settings
                                                                       ) -> None:
    study, runs = _study(settings, EVALUATE)
    # neural seed 0 finishes first: its evaluation waits for None seed 0
    assert _finish(settings, runs[("neural-model", 0)]) == []
    # None seed 0 finishes: its own evaluation (no reference) and the waiting one's
    got = _finish(settings, runs[("none", 0)])
    assert sorted(got, key=lambda e: e["train_run"]) == sorted([
        {"train_run": runs[("none", 0)], "reference_run": None},
        {"train_run": runs[("neural-model", 0)], "reference_run": runs[("none", 0)]}],
        key=lambda e: e["train_run"])
    # seed 1: None first, then the regularized model at once; a failed None releases
    assert _finish(settings, runs[("none", 1)], RunStatus.failed) == []
    assert _finish(settings, runs[("neural-model", 1)]) == [
        {"train_run": runs[("neural-model", 1)], "reference_run": None}]
    with session_scope(settings.db_url) as s:
        evals = s.query(Run).filter(Run.parent_id == study, Run.kind == "evaluate").all()
        assert len(evals) == 3  # each succeeded model evaluated once


@pytest.mark.parametrize("evaluate", [
    {"attacks": "quick", "norms": ["l2"], "parts": ["noise", "minimal"]},  # no soundness
    {**EVALUATE, "reference_run": 7},  # the study names its own
])
def test_without_soundness_or_with_its_own_reference_nothing_waits(
        settings: Settings, evaluate: dict[str, Any]) -> None:
    _, runs = _study(settings, evaluate)
    assert _finish(settings, runs[("neural-model", 0)]) == [
        {"train_run": runs[("neural-model", 0)], "reference_run": evaluate.get("reference_run")}]


def test_reference_of_pairs_regularized_cells_with_none_of_the_same_seed() -> None:
    config = StudyConfig(conditions=("none", "shuffle"), evaluate={"parts": ["minimal",
                                                                             "soundness"]})
    assert reference_of(config, "shuffle", 3) == ("none", 3)
    assert reference_of(config, "none", 3) is None
    assert reference_of(StudyConfig(conditions=("shuffle",), evaluate={
        "parts": ["minimal", "soundness"]}), "shuffle", 0) is None  # no None model
    assert reference_of(StudyConfig(conditions=("none", "shuffle")), "shuffle", 0) is None
    assert StudyConfig(conditions=("none",)).evaluate.parts == (
        "noise", "minimal", "autoattack", "corruptions")  # the default: no soundness


def test_a_studys_runs_are_queued_seed_by_seed(settings: Settings) -> None:
    """fan_out's order is the queue's: seed 0's None and Neural (model) first, so the
    first paired row can be trained and evaluated while later seeds wait; the run ids keep
    the grid's own order (condition by condition)."""
    migrate(settings.db_url)
    with session_scope(settings.db_url) as s:
        user = create_user(s, name="u", role=Role.member)
        study = create_run(s, owner=user, kind="study", name="grid", config={
            "conditions": ["none", "neural-model"], "seeds": 3, "target_run": 1,
            "train": {"backbone": "small_cnn"}})
        s.flush()
        runs = fan_out(s, study)
        order = [(r.config["target"], r.config["seed"]) for r in runs]
        ids = sorted(r.id for r in runs)
        by_id = {r.id: (r.config["target"], r.config["seed"]) for r in runs}
    assert order == [("none", 0), ("neural-model", 0), ("none", 1), ("neural-model", 1),
                     ("none", 2), ("neural-model", 2)]
    assert [by_id[i] for i in ids] == [(c, seed) for c in ("none", "neural-model")
                                       for seed in range(3)]
