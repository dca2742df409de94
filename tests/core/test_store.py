"""The store on SQLite and PostgreSQL: migrations, idempotent metrics, downsampling."""

import hashlib
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from core.lifecycle import cancel_run, finish_run, start_run
from core.store.db import engine_for, migrate, session_scope
from core.store.metrics import (
    binned_means,
    insert_points,
    latest_values,
    read_series,
    summarize_keys,
)
from core.store.models import Base, Role, RunStatus
from core.store.runs import NotFound, create_run, list_runs
from core.store.users import create_user, ensure_admin, issue_token, revoke_token, user_for_token
from tests.concurrently import at_once
from tests.core.migrating import old_user


def _run(db_url: str) -> int:
    migrate(db_url)
    with session_scope(db_url) as s:
        user = create_user(s, name="ada", role=Role.member)
        return create_run(s, owner=user, kind="train", name="r", config={"a": 1}).id


def test_migrations_match_models_and_are_idempotent(db_url: str) -> None:
    migrate(db_url)
    migrate(db_url)
    with engine_for(db_url).connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_metrics_are_idempotent_on_run_key_step(db_url: str) -> None:
    run_id = _run(db_url)
    with session_scope(db_url) as s:
        insert_points(s, run_id, [("loss", 0, 1.0, None), ("loss", 1, 0.5, None)])
    with session_scope(db_url) as s:  # a retry re-sends step 1 with another value
        insert_points(s, run_id, [("loss", 1, 99.0, None), ("loss", 2, 0.25, None)])
    with session_scope(db_url) as s:
        series = read_series(s, run_id, "loss", max_points=100)
        assert series.steps == [0, 1, 2] and series.values == [1.0, 0.5, 0.25]
        assert not series.downsampled and series.wall_times is not None
        assert latest_values(s, [run_id], ["loss"]) == {run_id: {"loss": 0.25}}
        assert summarize_keys(s, run_id) == [
            {"key": "loss", "count": 3, "last_step": 2, "last_value": 0.25}
        ]


@pytest.mark.parametrize("max_points", [200, 100, 2000], ids=["raw-sql", "rollups", "whole"])
def test_downsampling_keeps_spikes_and_bounds(db_url: str, max_points: int) -> None:
    run_id = _run(db_url)
    n = 20_000
    values = np.sin(np.arange(n) / 500.0)
    values[12_345], values[777] = 50.0, -40.0
    with session_scope(db_url) as s:
        insert_points(s, run_id, [("x", i, float(v), 0.0) for i, v in enumerate(values)])
    with session_scope(db_url) as s:
        series = read_series(s, run_id, "x", max_points=max_points)
    assert series.total == n and series.downsampled
    assert max_points // 2 <= len(series.steps) <= max_points
    assert series.steps == sorted(series.steps)
    got = dict(zip(series.steps, series.values, strict=True))
    assert got[12_345] == 50.0 and got[777] == -40.0
    assert all(math.isclose(got[s], values[s]) for s in series.steps)


def test_downsampling_constant_series_returns_one_point_per_bucket(db_url: str) -> None:
    run_id = _run(db_url)
    with session_scope(db_url) as s:
        insert_points(s, run_id, [("acc", i, 1.0, 0.0) for i in range(5000)])
    with session_scope(db_url) as s:
        series = read_series(s, run_id, "acc", max_points=100)
    assert len(series.steps) == 50  # ties collapse: min == max in every bucket


def test_binned_means_average_each_bin_of_steps(db_url: str) -> None:
    run_id = _run(db_url)
    values = np.random.default_rng(0).random(1003)
    with session_scope(db_url) as s:
        insert_points(s, run_id, [("loss", i, float(v), 0.0) for i, v in enumerate(values)])
    with session_scope(db_url) as s:
        steps, means = binned_means(s, run_id, "loss", width=100)
        raw_steps, raw = binned_means(s, run_id, "loss", width=1)
    assert steps == [99 + 100 * b for b in range(11)]  # the last, partial bin too
    assert np.allclose(means, [values[b * 100:(b + 1) * 100].mean() for b in range(11)])
    assert raw_steps == list(range(1003)) and np.allclose(raw, values)


def test_run_status_transitions_and_cancel_wins(db_url: str) -> None:
    run_id = _run(db_url)
    with session_scope(db_url) as s:
        assert start_run(s, run_id)
    with session_scope(db_url) as s:
        from core.store.runs import get_run

        cancel_run(s, get_run(s, run_id))
    with session_scope(db_url) as s:
        finish_run(s, run_id, RunStatus.succeeded)  # arrives after the cancel
        assert not start_run(s, run_id)
    with session_scope(db_url) as s:
        runs, total = list_runs(s, status=RunStatus.cancelled)
        assert total == 1 and runs[0].id == run_id and runs[0].finished_at is not None


def test_list_filters_and_paginates(db_url: str) -> None:
    migrate(db_url)
    with session_scope(db_url) as s:
        a = create_user(s, name="a", role=Role.member)
        b = create_user(s, name="b", role=Role.member)
        for i in range(7):
            create_run(s, owner=a if i % 2 else b, kind="train", name=f"r{i}", config={})
    with session_scope(db_url) as s:
        page, total = list_runs(s, owner="a", limit=2, offset=0)
        assert total == 3 and [r.name for r in page] == ["r5", "r3"]
        page, _ = list_runs(s, owner="a", limit=2, offset=2)
        assert [r.name for r in page] == ["r1"]
        with pytest.raises(NotFound, match="parent_id"):
            create_run(s, owner=a, kind="train", name="x", config={}, parent_id=999)
        owner = page[0].owner  # "a", as this session knows it
        study = create_run(s, owner=owner, kind="study", name="grid", config={})
        create_run(s, owner=owner, kind="train", name="cell", config={}, parent_id=study.id)
    with session_scope(db_url) as s:
        page, total = list_runs(s, top_level=True)
        assert total == 8 and "cell" not in [r.name for r in page]
        assert [r.name for r in list_runs(s, parent_id=study.id)[0]] == ["cell"]


def test_tokens_are_hashed_and_revocable(db_url: str) -> None:
    migrate(db_url)
    with session_scope(db_url) as s:
        token = ensure_admin(s)
        assert token and ensure_admin(s) is None
        member = create_user(s, name="m", role=Role.member)
        other = issue_token(s, user=member, name="laptop")
    with engine_for(db_url).connect() as conn:
        from sqlalchemy import text

        stored = [r[0] for r in conn.execute(text("SELECT token_hash FROM api_tokens"))]
    assert token not in stored and other not in stored and len(stored) == 2
    with session_scope(db_url) as s:
        assert user_for_token(s, other).name == "m"  # type: ignore[union-attr]
        assert revoke_token(s, token=other)
    with session_scope(db_url) as s:
        assert user_for_token(s, other) is None
        assert user_for_token(s, token).role is Role.admin  # type: ignore[union-attr]


def test_rollups_match_a_recount_after_out_of_order_and_resent_batches(db_url: str) -> None:
    from sqlalchemy import text

    from core.store.rollups import BUCKET, _aggregate

    run_id = _run(db_url)
    rng = np.random.default_rng(1)
    steps = rng.permutation(3000)
    values = rng.normal(size=3000).round(1)  # rounding makes ties
    for chunk in np.array_split(steps, 7):
        with session_scope(db_url) as s:
            insert_points(s, run_id, [("v", int(i), float(values[i]), 0.0) for i in chunk])
    with session_scope(db_url) as s:  # a resend with other values changes nothing
        insert_points(s, run_id, [("v", int(i), 99.0, 0.0) for i in steps[:500]])
    expected = _aggregate((i, float(values[i])) for i in range(3000))
    with engine_for(db_url).connect() as conn:
        rows = conn.execute(
            text("SELECT bucket, n, first_step, last_step, min_step, min_value, max_step, "
                 "max_value FROM metric_buckets WHERE run_id = :r ORDER BY bucket"),
            {"r": run_id},
        ).all()
    assert {r[0]: list(r[1:]) for r in rows} == expected
    assert len(rows) == -(-3000 // BUCKET)


def test_train_runs_stored_before_stimulus_norm_read_as_trained_shared(db_url: str) -> None:
    import sqlalchemy as sa

    from core.store.models import Run

    # the schema before the field (PostgreSQL's database is shared by the session and
    # at head already: migrate goes back down to 0003)
    migrate(db_url, "0003")
    # rows as that schema holds them: only its columns (the model has later ones)
    runs_0003 = sa.table("runs", sa.column("id", sa.Integer), sa.column("name"),
                         sa.column("owner_id"), sa.column("kind"), sa.column("config", sa.JSON),
                         sa.column("status"), sa.column("progress"), sa.column("message"),
                         sa.column("created_at", sa.DateTime(timezone=True)),
                         sa.column("attempts"))
    users_0003 = sa.table("users", sa.column("id", sa.Integer), sa.column("name"),
                          sa.column("role"), sa.column("created_at", sa.DateTime(timezone=True)))
    with session_scope(db_url) as s:
        user_id = s.execute(sa.insert(users_0003).values(
            name="old", role="member", created_at=datetime.now(UTC)).returning(users_0003.c.id)
        ).scalar_one()
        old = {"dataset": "digits32", "target": "neural-model", "alpha": 2.0}
        ids = [s.execute(sa.insert(runs_0003).values(
            name=k, owner_id=user_id, kind=k, config=c, status="queued", progress=0.0,
            message="", created_at=datetime.now(UTC), attempts=0).returning(runs_0003.c.id)
        ).scalar_one() for k, c in (
            ("train", old), ("study", {"seeds": 3, "train": old}),
            ("train", {**old, "stimulus_norm": "frozen"}), ("similarity", {"seed": 0}))]
    migrate(db_url)
    with session_scope(db_url) as s:
        configs = [s.get(Run, i).config for i in ids]
    assert configs[0] == {**old, "stimulus_norm": "shared"}
    assert configs[1] == {"seeds": 3, "train": {**old, "stimulus_norm": "shared"}}
    assert configs[2]["stimulus_norm"] == "frozen"  # said by its owner: kept
    assert configs[3] == {"seed": 0}


def test_train_runs_without_a_target_store_the_alpha_they_never_used(db_url: str) -> None:
    """A None run stored with α = 20 (a study's None cell, before cells stored 0) reads as
    α = 0 after the migration: Compare and the run groups place it at α = 0, not beside the
    regularized runs of α = 20; a regularized run keeps its α."""
    from core.store.models import Run

    migrate(db_url, "0010")
    with session_scope(db_url) as s:
        owner = old_user(s, "none-run-owner")
        none = create_run(s, owner=owner, kind="train", name="n",
                          config={"dataset": "digits32", "target": "none", "alpha": 20.0})
        neural = create_run(s, owner=owner, kind="train", name="r",
                            config={"dataset": "digits32", "target": "neural-model",
                                    "alpha": 20.0})
        study = create_run(s, owner=owner, kind="study", name="s",
                           config={"train": {"target": "none", "alpha": 20.0}})
        ids = [none.id, neural.id, study.id]
    migrate(db_url)
    with session_scope(db_url) as s:
        configs = [s.get(Run, i).config for i in ids]
    assert configs[0] == {"dataset": "digits32", "target": "none", "alpha": 0.0}
    assert configs[1]["alpha"] == 20.0
    assert configs[2] == {"train": {"target": "none", "alpha": 20.0}}  # a template: kept


def test_rollups_match_a_recount_after_batches_written_at_once(db_url: str) -> None:
    """Eight writers at once into the same buckets of one series, each in its own
    session: on PostgreSQL each recounted a bucket from the points it saw, and the last
    upsert lost the others' (1024 points counted as 128)."""
    from sqlalchemy import text

    from core.store.rollups import _aggregate

    run_id = _run(db_url)
    keys = ("a", "b", "c")  # a round of writes each: one may by chance not interleave

    def write(key: str, w: int) -> None:
        with session_scope(db_url) as s:
            insert_points(s, run_id, [(key, i, float(i % 13), 0.0) for i in range(w, 1024, 8)])

    for key in keys:
        at_once([lambda key=key, w=w: write(key, w) for w in range(8)])
    expected = _aggregate((i, float(i % 13)) for i in range(1024))
    with engine_for(db_url).connect() as conn:
        for key in keys:
            rows = conn.execute(text(
                "SELECT bucket, n, first_step, last_step, min_step, min_value, max_step, "
                "max_value FROM metric_buckets WHERE run_id = :r AND key = :k ORDER BY bucket"),
                {"r": run_id, "k": key}).all()
            assert {r[0]: list(r[1:]) for r in rows} == expected, key


def test_one_name_saved_at_once_is_one_artifact_whose_file_it_describes(
        db_url: str, tmp_path: Path) -> None:
    """Eight saves of one name at once: one row (none fails on (run, name)), and the
    file on disk is the one whose size and sha256 the row has."""
    from core.store.artifacts import list_artifacts, resolve, save_artifact

    run_id = _run(db_url)
    bodies = [bytes([w]) * (100_000 + w) for w in range(8)]

    def save(w: int) -> None:
        with session_scope(db_url) as s:
            save_artifact(s, tmp_path, run_id=run_id, name="model.bin", data=bodies[w],
                          media_type="application/octet-stream")

    at_once([lambda w=w: save(w) for w in range(8)])
    with session_scope(db_url) as s:
        (row,) = list_artifacts(s, run_id)
        data = resolve(tmp_path, row.path).read_bytes()
    assert data in bodies and row.size_bytes == len(data)
    assert row.sha256 == hashlib.sha256(data).hexdigest()
    assert [p.name for p in (tmp_path / str(run_id)).iterdir()] == ["model.bin"]


def test_tags_set_at_once_are_set_once(db_url: str) -> None:
    """On PostgreSQL two retags at once each deleted nothing, then both inserted."""
    from core.store.runs import get_run, set_tags, tags_of

    run_id = _run(db_url)

    def retag() -> None:
        with session_scope(db_url) as s:
            set_tags(s, get_run(s, run_id), ["fig-3", "sweep"])

    for _ in range(3):
        at_once([retag] * 8)
    with session_scope(db_url) as s:
        assert tags_of(s, [run_id]) == {run_id: ["fig-3", "sweep"]}
