"""Task logic called directly (the queue path runs in tests/integration)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ml.recorder import Recorder
from server.settings import Settings, get_settings
from server.store.db import migrate, session_scope
from server.store.metrics import read_series
from server.store.models import Role, RunStatus
from server.store.runs import cancel_run, create_run, get_run
from server.store.users import create_user
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
    rec.log_metrics({"a": 1.0}, 0)  # first call flushes (no flush yet)
    rec.log_metrics({"a": 2.0}, 1)
    with session_scope(env_settings.db_url) as s:
        assert read_series(s, run_id, "a", max_points=10).total == 1
    rec.flush()
    with session_scope(env_settings.db_url) as s:
        assert read_series(s, run_id, "a", max_points=10).total == 2
    with pytest.raises(ValueError, match="'a' at step 2"):
        rec.log_metrics({"a": float("inf")}, 2)
