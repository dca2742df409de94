"""Task logic called directly (the queue path runs in tests/integration)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.lifecycle import cancel_run
from core.settings import Settings, get_settings
from core.store.db import migrate, session_scope
from core.store.metrics import read_series
from core.store.models import Role, RunStatus
from core.store.runs import create_run, get_run
from core.store.users import create_user
from ml.recorder import Recorder
from worker.recorder import SqlRecorder
from worker.tasks import execute


@pytest.fixture
def env_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("NEUROREG_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    migrate(settings.db_url)
    yield get_settings()
    get_settings.cache_clear()


def _run(settings: Settings, **config: object) -> int:
    with session_scope(settings.db_url) as s:
        user = create_user(s, name="u", role=Role.member)
        return create_run(s, owner=user, kind="train", name="", config=dict(config)).id


def _state(settings: Settings, run_id: int):  # type: ignore[no-untyped-def]
    with session_scope(settings.db_url) as s:
        return get_run(s, run_id)


def test_success_records_metrics_progress_and_result(env_settings: Settings) -> None:
    run_id = _run(env_settings, epochs=1)

    def job(config, rec: Recorder):  # type: ignore[no-untyped-def]
        assert config.epochs == 1
        for step in range(5):
            rec.log_metrics({"loss": 1.0 / (step + 1)}, step)
            rec.progress((step + 1) / 5, f"step {step}")
        rec.save_artifact("note.txt", b"hi", "text/plain")
        return {"final": 0.2}

    assert execute(run_id, job) == {"run_id": run_id, "status": "succeeded"}
    run = _state(env_settings, run_id)
    assert run.status is RunStatus.succeeded and run.result == {"final": 0.2}
    assert run.progress == 1.0 and run.started_at <= run.finished_at
    with session_scope(env_settings.db_url) as s:
        assert read_series(s, run_id, "loss", max_points=10).steps == [0, 1, 2, 3, 4]
    assert (env_settings.artifacts / str(run_id) / "note.txt").read_bytes() == b"hi"


def test_failure_keeps_the_message_and_metrics_so_far(env_settings: Settings) -> None:
    run_id = _run(env_settings)

    def job(config, rec: Recorder):  # type: ignore[no-untyped-def]
        rec.log_metrics({"loss": 1.0}, 0)
        raise RuntimeError("out of cheese")

    assert execute(run_id, job)["status"] == "failed"
    run = _state(env_settings, run_id)
    assert run.status is RunStatus.failed
    assert run.error.startswith("RuntimeError: out of cheese (at ")
    with session_scope(env_settings.db_url) as s:
        assert read_series(s, run_id, "loss", max_points=10).total == 1


def test_cancelled_before_start_is_skipped(env_settings: Settings) -> None:
    run_id = _run(env_settings)
    with session_scope(env_settings.db_url) as s:
        cancel_run(s, get_run(s, run_id))
    called = []
    assert execute(run_id, lambda c, r: called.append(1))["skipped"]
    assert not called and _state(env_settings, run_id).status is RunStatus.cancelled


def test_cancel_while_running_stops_cooperatively(env_settings: Settings) -> None:
    run_id = _run(env_settings)

    def job(config, rec: Recorder):  # type: ignore[no-untyped-def]
        from ml.recorder import Cancelled

        with session_scope(env_settings.db_url) as s:
            cancel_run(s, get_run(s, run_id))
        rec._last_check = 0.0  # type: ignore[attr-defined]  # skip the 1 s throttle
        if rec.should_stop():
            raise Cancelled("asked to stop")
        raise AssertionError("recorder did not see the cancellation")

    assert execute(run_id, job)["status"] == "cancelled"
    assert _state(env_settings, run_id).status is RunStatus.cancelled


def test_bad_stored_config_fails_the_run(env_settings: Settings) -> None:
    run_id = _run(env_settings, epochs=0)
    from worker.tasks import train

    train.run(run_id)  # the task body, without a broker
    run = _state(env_settings, run_id)
    assert run.status is RunStatus.failed and "epochs" in run.error


def test_recorder_buffers_and_rejects_non_finite(env_settings: Settings) -> None:
    run_id = _run(env_settings)
    rec = SqlRecorder(
        db_url=env_settings.db_url,
        artifact_root=env_settings.artifacts,
        run_id=run_id,
        interval=3600,
        flush_points=1000,
    )
    rec.log_metrics({"a": 1.0}, 0)  # buffered: the timer writes it within the interval
    rec.log_metrics({"a": 2.0}, 1)
    with session_scope(env_settings.db_url) as s:
        assert read_series(s, run_id, "a", max_points=10).total == 0
    rec.flush()
    with session_scope(env_settings.db_url) as s:
        assert read_series(s, run_id, "a", max_points=10).total == 2
    with pytest.raises(ValueError, match="'a' at step 2"):
        rec.log_metrics({"a": float("inf")}, 2)
    rec.close()


def test_a_study_goes_through_the_same_lifecycle_and_waits_for_its_children(
        env_settings: Settings) -> None:
    """execute() starts a study like any run; its job fans out, the study stays running
    (not reaped: no worker holds it) and the last child to finish finishes it."""
    from datetime import timedelta

    from core.kinds import HELD
    from core.lifecycle import finish_run, reap
    from core.store.models import Run
    from worker.tasks import study_job

    with session_scope(env_settings.db_url) as s:
        user = create_user(s, name="u", role=Role.member)
        study = create_run(s, owner=user, kind="study", name="grid", config={
            "conditions": ["none"], "seeds": 2, "train": {"backbone": "small_cnn"},
            "evaluate": {"attacks": "quick", "norms": ["l2"], "parts": ["noise", "minimal"]}}).id
    out = execute(study, study_job)
    assert out == {"run_id": study, "status": "running", "children": 2}
    with session_scope(env_settings.db_url) as s:
        kids = s.query(Run).filter(Run.parent_id == study).all()
        assert sorted(k.name for k in kids) == ["grid: none seed 0", "grid: none seed 1"]
        assert all(k.task_id and k.status is RunStatus.queued for k in kids)  # sent
        run = get_run(s, study)
        assert run.status is RunStatus.running and run.attempts == 1
        run.heartbeat_at = run.heartbeat_at - timedelta(hours=1)
    with session_scope(env_settings.db_url) as s:
        assert reap(s, stale_after=120, max_attempts=1, kinds=HELD) == []
    assert execute(study, study_job)["children"] == 0  # redelivered: no second grid
    # a cancelled child is finished; the study finishes when its last child does
    for kid in kids:
        with session_scope(env_settings.db_url) as s:
            finish_run(s, kid.id, RunStatus.cancelled)
    assert _state(env_settings, study).status.finished


def test_a_study_whose_stored_config_no_longer_validates_fails(env_settings: Settings) -> None:
    from worker.tasks import study_job

    with session_scope(env_settings.db_url) as s:
        user = create_user(s, name="u", role=Role.member)
        study = create_run(s, owner=user, kind="study", name="", config={"seeds": 0}).id
    assert execute(study, study_job) == {"run_id": study, "status": "failed"}
    run = _state(env_settings, study)
    assert run.status is RunStatus.failed and "seeds" in run.error
