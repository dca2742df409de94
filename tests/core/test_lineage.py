"""Lineage: what each kind reads from other runs, stored when a run is made (and by
migration 0015 for runs made before), what reads a run, the graph both ways, and a run
others read that cannot be deleted."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.lifecycle import finish_run
from core.lineage import Read, dependants, graph, reads
from core.store.db import migrate, session_scope
from core.store.models import Role, Run, RunRead, RunStatus
from core.store.runs import create_run, delete_run
from core.store.users import create_user
from tests.core.migrating import old_user

TARGET = "target-neural-model.npz"


def test_each_kind_reads_what_its_worker_loads() -> None:
    assert reads("train", {"target": "neural-model", "target_run": 3}) == [
        Read(3, TARGET, "config.target_run")]
    assert reads("train", {"target": "none", "target_run": None}) == []
    # pixel similarity is built over the neural-model target's stimuli
    assert reads("train", {"target": "pixel", "target_run": 3}) == [
        Read(3, TARGET, "config.target_run")]
    assert reads("train", {"target": "cnn-features", "target_run": 3,
                           "features": {"run": 9, "weights": None}}) == [
        Read(3, TARGET, "config.target_run"), Read(9, "model.pt", "config.features.run")]
    assert reads("evaluate", {"train_run": 5, "reference_run": 6, "similarity_run": None,
                              "runs": ["noise"]}) == [
        Read(5, "model.pt", "config.train_run"), Read(6, "model.pt", "config.reference_run")]
    assert reads("evaluate", {"train_run": 5, "similarity_run": 3,
                              "runs": ["alignment"]}) == [
        Read(5, "model.pt", "config.train_run"),
        Read(3, TARGET, "config.similarity_run"),
        Read(3, "predictor.pt", "config.similarity_run"),
        Read(3, "config.json", "config.similarity_run")]
    study = reads("study", {"conditions": ["none", "neural-model", "neural-true"],
                            "target_run": 3, "evaluate": {"train_run": None,
                                                          "similarity_run": 4,
                                                          "runs": ["noise"]}})
    assert study == [Read(3, TARGET, "config.target_run"),
                     Read(3, "target-neural-true.npz", "config.target_run"),
                     Read(4, TARGET, "config.evaluate.similarity_run")]
    assert reads("similarity", {"source": "simulated"}) == []
    assert reads("external", {"params": {"train_run": 5}}) == []


@pytest.mark.parametrize("config", [None, [], "x", {"target": "neural-model", "target_run": True},
                                    {"target": 7, "target_run": 3},
                                    {"target": "neural-model", "target_run": "3"},
                                    {"target": "neural-model", "target_run": -1}])
def test_a_config_as_recorded_names_no_run_it_cannot(config: object) -> None:
    """An imported run's config is stored as recorded: whatever it holds, reads() names
    only real run ids (never a bool, a string or a negative number) and never raises."""
    assert reads("train", config) == []


def _chain(db_url: str) -> dict[str, int]:
    """similarity → train → evaluate, with a study whose cell trains from the similarity
    run too."""
    migrate(db_url)
    with session_scope(db_url) as s:
        owner = create_user(s, name="lineage-owner", role=Role.member)
        sim = create_run(s, owner=owner, kind="similarity", name="sim",
                         config={"source": "simulated"})
        study = create_run(s, owner=owner, kind="study", name="study",
                           config={"conditions": ["neural-model"], "target_run": sim.id})
        train = create_run(s, owner=owner, kind="train", name="train", parent_id=study.id,
                           input_run_id=sim.id,
                           config={"target": "neural-model", "target_run": sim.id})
        ev = create_run(s, owner=owner, kind="evaluate", name="ev", parent_id=study.id,
                        input_run_id=train.id, config={"train_run": train.id, "runs": []})
        other = create_run(s, owner=owner, kind="train", name="unrelated",
                           config={"target": "none"})
        for r in (sim, train, ev, other):
            finish_run(s, r.id, RunStatus.succeeded, result={})
        return {"sim": sim.id, "study": study.id, "train": train.id, "ev": ev.id,
                "other": other.id}


def test_what_reads_a_run_and_the_graph_both_ways(db_url: str) -> None:
    ids = _chain(db_url)
    with session_scope(db_url) as s:
        readers = dependants(s, [ids["sim"], ids["train"], ids["other"]])
        assert [(d.run_id, d.artifact) for d in readers[ids["sim"]]] == [
            (ids["study"], TARGET), (ids["train"], TARGET)]
        assert [(d.run_id, d.kind, d.artifact) for d in readers[ids["train"]]] == [
            (ids["ev"], "evaluate", "model.pt")]
        assert ids["other"] not in readers

        g = graph(s, s.get(Run, ids["train"]))
        assert g.depth == {ids["train"]: 0, ids["sim"]: -1, ids["study"]: -1, ids["ev"]: 1}
        edges = {(e.source, e.target, e.relation, e.artifacts) for e in g.edges}
        # every edge between the runs shown: the study read the target too
        assert edges == {(ids["sim"], ids["train"], "reads", (TARGET,)),
                         (ids["sim"], ids["study"], "reads", (TARGET,)),
                         (ids["study"], ids["train"], "part of", ()),
                         (ids["train"], ids["ev"], "reads", ("model.pt",))}
        assert not g.truncated

        down = graph(s, s.get(Run, ids["sim"]))
        # the study reads the target and holds the train run, which also reads it: every
        # run built from the similarity run, each once
        assert down.depth == {ids["sim"]: 0, ids["study"]: 1, ids["train"]: 1, ids["ev"]: 2}
        assert (ids["study"], ids["ev"], "part of", ()) in {
            (e.source, e.target, e.relation, e.artifacts) for e in down.edges}

        small = graph(s, s.get(Run, ids["sim"]), max_nodes=2)
        assert small.truncated and len(small.runs) == 2


def test_a_run_others_read_is_not_deleted(db_url: str) -> None:
    ids = _chain(db_url)
    with session_scope(db_url) as s:
        with pytest.raises(ValueError, match=rf"evaluate run {ids['ev']} reads run "
                                             rf"{ids['train']}'s model.pt"):
            delete_run(s, s.get(Run, ids["train"]))
        with pytest.raises(ValueError, match=r"\(and 1 other run\)"):
            delete_run(s, s.get(Run, ids["sim"]))
    with session_scope(db_url) as s:  # from the leaves up, it goes
        delete_run(s, s.get(Run, ids["ev"]))
    with session_scope(db_url) as s:
        delete_run(s, s.get(Run, ids["train"]))
        assert s.execute(select(RunRead).where(RunRead.run_id == ids["train"])).first() is None


def test_migration_0015_records_what_stored_runs_read(db_url: str) -> None:
    migrate(db_url, "0014")
    with session_scope(db_url) as s:  # rows as 0014's code made them: no reads recorded
        owner = old_user(s, "before-lineage")
        sim = Run(owner=owner, owner_id=owner.id, kind="similarity", name="s", config={})
        s.add(sim)
        s.flush()
        train = Run(owner=owner, owner_id=owner.id, kind="train", name="t",
                    config={"target": "neural-model", "target_run": sim.id})
        s.add(train)
        s.flush()
        ev = Run(owner=owner, owner_id=owner.id, kind="evaluate", name="e",
                 config={"train_run": train.id, "reference_run": 10**6, "runs": []})
        s.add(ev)
        s.flush()
        ids = (sim.id, train.id, ev.id)
    migrate(db_url)
    with session_scope(db_url) as s:
        got = sorted((r.run_id, r.input_run_id, r.artifact, r.field)
                     for r in s.execute(select(RunRead)).scalars())
    # the reference run that does not exist is left out
    assert got == [(ids[1], ids[0], TARGET, "config.target_run"),
                   (ids[2], ids[1], "model.pt", "config.train_run")]
    migrate(db_url, "0014")  # and down again
    migrate(db_url)
