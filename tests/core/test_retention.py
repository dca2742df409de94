"""Retention: each rule deletes what it says and nothing else, a policy covers the runs its
query matches, an artifact another run reads is always kept (a policy that would delete
one is refused, naming the reader), and applying deletes rows, files and audits it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from core import retention
from core.lifecycle import finish_run
from core.retention import PolicyError, Spec
from core.store.artifacts import save_artifact
from core.store.db import migrate, session_scope
from core.store.models import Artifact, AuditEvent, Role, Run, RunStatus, User, utcnow
from core.store.runs import create_run, set_tags
from core.store.users import create_user


def _names(items: list[retention.Item]) -> list[tuple[int, str]]:
    return [(i.run_id, i.name) for i in items]


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> dict[str, int]:
    """A succeeded train run (checkpoint, model, three epoch checkpoints) an evaluation
    reads, a failed run ended 10 days ago and one ended now, and a running external run
    with epoch checkpoints."""
    migrate(db_url)
    root = tmp_path / "artifacts"
    with session_scope(db_url) as s:
        owner = create_user(s, name="keeper", role=Role.admin)
        train = create_run(s, owner=owner, kind="train", name="t", config={"target": "none"})
        for name in ("checkpoint.pt", "model.pt", "ckpt/epoch-1.ckpt", "ckpt/epoch-2.ckpt",
                     "ckpt/epoch-3.ckpt"):
            save_artifact(s, root, run_id=train.id, name=name, data=name.encode(),
                          media_type="application/octet-stream")
        finish_run(s, train.id, RunStatus.succeeded, result={})
        ev = create_run(s, owner=owner, kind="evaluate", name="e", input_run_id=train.id,
                        config={"train_run": train.id, "runs": []})
        old_fail = create_run(s, owner=owner, kind="external", name="old", config={})
        new_fail = create_run(s, owner=owner, kind="external", name="new", config={})
        for run, days in ((old_fail, 10), (new_fail, 0)):
            save_artifact(s, root, run_id=run.id, name="out.bin", data=b"x" * 100,
                          media_type="application/octet-stream")
            finish_run(s, run.id, RunStatus.failed, error="boom",
                       finished_at=utcnow() - timedelta(days=days))
        live = create_run(s, owner=owner, kind="external", name="live", config={})
        set_tags(s, live, ["sweep"])
        for i in range(4):
            save_artifact(s, root, run_id=live.id, name=f"ckpt/epoch-{i}.ckpt", data=b"c",
                          media_type="application/octet-stream")
        return {"owner": owner.id, "train": train.id, "ev": ev.id, "old": old_fail.id,
                "new": new_fail.id, "live": live.id}


def test_keep_last_keeps_the_newest_of_each_run(db_url: str, store: dict[str, int]) -> None:
    with session_scope(db_url) as s:
        plan = retention.plan(s, [Spec("epochs", "keep-last", "ckpt/*", keep=2)])
    assert _names(plan.delete) == [(store["train"], "ckpt/epoch-1.ckpt"),
                                   (store["live"], "ckpt/epoch-0.ckpt"),
                                   (store["live"], "ckpt/epoch-1.ckpt")]
    assert plan.kept == [] and plan.bytes_freed == len(b"ckpt/epoch-1.ckpt") + 2


def test_drop_finished_takes_only_succeeded_runs_past_their_days(
        db_url: str, store: dict[str, int]) -> None:
    with session_scope(db_url) as s:
        now = retention.plan(s, [Spec("ckpt", "drop-finished", "checkpoint.pt")])
        later = retention.plan(s, [Spec("ckpt", "drop-finished", "checkpoint.pt", days=1)])
    assert _names(now.delete) == [(store["train"], "checkpoint.pt")]
    assert later.delete == []  # it finished moments ago


def test_expire_failed_goes_by_age_and_a_query_narrows_any_rule(
        db_url: str, store: dict[str, int]) -> None:
    with session_scope(db_url) as s:
        week = retention.plan(s, [Spec("failed", "expire-failed", "*", days=7)])
        every = retention.plan(s, [Spec("failed", "expire-failed", "*", days=0)])
        named = retention.plan(s, [Spec("failed", "expire-failed", "*", days=0,
                                        query='name = "new"')])
        tagged = retention.plan(s, [Spec("epochs", "keep-last", "*", keep=1,
                                         query='tag = "sweep"')])
    assert _names(week.delete) == [(store["old"], "out.bin")]
    assert _names(every.delete) == [(store["old"], "out.bin"), (store["new"], "out.bin")]
    assert _names(named.delete) == [(store["new"], "out.bin")]
    assert [r for r, _ in _names(tagged.delete)] == [store["live"]] * 3


def test_what_another_run_reads_is_kept_and_a_policy_deleting_it_is_refused(
        db_url: str, store: dict[str, int]) -> None:
    greedy = Spec("greedy", "drop-finished", "*.pt")
    with session_scope(db_url) as s:
        plan = retention.plan(s, [greedy])
        assert _names(plan.delete) == [(store["train"], "checkpoint.pt")]
        assert _names(plan.kept) == [(store["train"], "model.pt")]
        assert [(d.run_id, d.kind) for d in plan.kept[0].dependants] == [
            (store["ev"], "evaluate")]
        user = s.get(User, store["owner"])
        with pytest.raises(PolicyError, match=rf"run {store['train']}'s model.pt, which "
                                              rf"evaluate run {store['ev']} reads") as err:
            retention.create(s, user, greedy)
        assert err.value.field == "pattern"
        assert retention.policies(s) == []


@pytest.mark.parametrize(("spec", "field"), [
    (Spec("", "keep-last", "*", keep=1), "name"),
    (Spec("x", "forever", "*"), "rule"),
    (Spec("x", "keep-last", "", keep=1), "pattern"),
    (Spec("x", "keep-last", "*"), "keep"),
    (Spec("x", "keep-last", "*", keep=1, days=3), "days"),
    (Spec("x", "drop-finished", "*", keep=1), "keep"),
    (Spec("x", "expire-failed", "*"), "days"),
    (Spec("x", "expire-failed", "*", days=-1), "days"),
    (Spec("x", "drop-finished", "*", query="config.alpha >>> 3"), "query"),
])
def test_a_policy_that_cannot_be_applied_names_its_field(spec: Spec, field: str) -> None:
    with pytest.raises(PolicyError) as err:
        retention.check(spec, "sqlite")
    assert err.value.field == field


def test_apply_deletes_rows_and_files_audits_it_and_rechecks_readers(
        db_url: str, store: dict[str, int], tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    with session_scope(db_url) as s:
        user = s.get(User, store["owner"])
        retention.create(s, user, Spec("epochs", "keep-last", "ckpt/*", keep=2))
        # made while nothing read the old epochs; then a run starts reading one
        reader = create_run(s, owner=user, kind="train", name="reads-an-epoch",
                            config={"target": "cnn-features", "target_run": None,
                                    "features": {"run": store["live"]}})
        assert reader.id
    with session_scope(db_url) as s:
        plan = retention.plan(s, retention.policies(s))
    # features.run reads model.pt, not the epochs: nothing the policy covers is read
    assert plan.kept == []
    done = retention.apply_once(db_url, root)
    assert _names(done.delete) == _names(plan.delete) and len(done.delete) == 3
    with session_scope(db_url) as s:
        left = {(a.run_id, a.name) for a in s.execute(select(Artifact)).scalars()}
        events = s.execute(select(AuditEvent).where(
            AuditEvent.action == "artifacts.expired")).scalars().all()
        assert not any((r, n) in left for r, n in _names(done.delete))
        assert (store["live"], "ckpt/epoch-3.ckpt") in left
        assert sorted((e.target_id, e.detail["count"]) for e in events) == [
            (store["train"], 1), (store["live"], 2)]
        assert all(e.actor_id is None for e in events)  # the service itself
    assert not (root / str(store["live"]) / "ckpt" / "epoch-0.ckpt").exists()
    assert (root / str(store["live"]) / "ckpt" / "epoch-3.ckpt").exists()
    assert retention.apply_once(db_url, root).delete == []  # nothing left to do


def test_apply_keeps_what_a_run_made_after_the_policy_reads(
        db_url: str, store: dict[str, int], tmp_path: Path) -> None:
    with session_scope(db_url) as s:
        user = s.get(User, store["owner"])
        retention.create(s, user, Spec("models", "drop-finished", "model.pt",
                                       query=f"id = {store['old']}"))
        # the policy covers run "old", which had no model when it was made; then the run
        # has one (and counts as succeeded), and an evaluation starts reading it
        save_artifact(s, tmp_path / "artifacts", run_id=store["old"], name="model.pt",
                      data=b"m", media_type="application/octet-stream")
        s.get(Run, store["old"]).status = RunStatus.succeeded
        create_run(s, owner=user, kind="evaluate", name="late", config={
            "train_run": store["old"], "runs": []})
        done, paths = retention.apply(s, user)
    assert done.delete == [] and paths == []
    assert _names(done.kept) == [(store["old"], "model.pt")]
