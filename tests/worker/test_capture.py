"""A job's output in its run's log: print(), sys.stderr, os-level writes, child processes
and logging captured by the worker's one lifecycle, kept as logs.txt, bounded, per run
under the threads pool, undone afterwards and robust to a store that is away."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading

import pytest

from core.settings import Settings, get_settings
from core.store.artifacts import get_artifact, resolve
from core.store.db import session_scope
from core.store.logs import dropped_of, read_lines
from core.store.models import Role, Run
from core.store.runs import create_run
from core.store.users import create_user
from ml import artifacts
from ml.recorder import Recorder
from worker.backend import Direct
from worker.tasks import execute

pytestmark = pytest.mark.no_numerics


@pytest.fixture
def env_settings(worker_settings: Settings) -> Settings:
    return worker_settings


def _run(settings: Settings, name: str = "u") -> int:
    with session_scope(settings.db_url) as s:
        user = create_user(s, name=name, role=Role.member)
        return create_run(s, owner=user, kind="train", name="", config={}).id


def _log(settings: Settings, run_id: int) -> list[tuple[str, str]]:
    with session_scope(settings.db_url) as s:
        return [(ln.stream, ln.line) for ln in read_lines(s, run_id, limit=100_000)]


def _artifact(settings: Settings, run_id: int) -> str:
    with session_scope(settings.db_url) as s:
        row = get_artifact(s, run_id, artifacts.LOGS)
        assert row is not None
        return resolve(settings.artifacts, row.path).read_text()


def test_print_stderr_logging_and_child_processes_land_in_the_log_and_logs_txt(
        env_settings: Settings) -> None:
    run_id = _run(env_settings)
    stdout, stderr, root = sys.stdout, sys.stderr, logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def job(config, rec: Recorder):  # type: ignore[no-untyped-def]
        print("epoch 1: loss 0.5")
        sys.stderr.write("a warning on stderr\n")
        logging.getLogger("my.training").info("logged at INFO")
        os.write(1, b"straight to fd 1\n")
        subprocess.run([sys.executable, "-c", "print('from a child process')"], check=True)
        print("progress 10%\rprogress 100%")  # a carriage return starts the line over
        print("no newline at the end", end="")
        return {}

    assert execute(run_id, job)["status"] == "succeeded"
    lines = _log(env_settings, run_id)
    assert ("stdout", "epoch 1: loss 0.5") in lines
    assert ("stderr", "a warning on stderr") in lines
    assert ("log", "INFO my.training: logged at INFO") in lines
    assert ("stdout", "straight to fd 1") in lines
    assert ("stdout", "from a child process") in lines
    assert ("stdout", "progress 100%") in lines
    assert ("stdout", "no newline at the end") in lines
    text = _artifact(env_settings, run_id)
    for stream, line in lines:
        assert f" {stream:<7} {line}\n" in text
    # and everything is as it was
    assert sys.stdout is stdout and sys.stderr is stderr
    assert root.handlers == handlers and root.level == level


def test_a_log_past_its_bound_keeps_its_start_and_one_marker(
        env_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROREG_LOG_MAX_BYTES", "2048")
    get_settings.cache_clear()
    run_id = _run(env_settings)

    def job(config, rec: Recorder):  # type: ignore[no-untyped-def]
        for i in range(1000):
            print(f"line {i:04d}")  # 10 bytes each with the newline
        return {}

    assert execute(run_id, job)["status"] == "succeeded"
    lines = _log(env_settings, run_id)
    assert [ln for _, ln in lines] == [f"line {i:04d}" for i in range(len(lines))]
    with session_scope(env_settings.db_url) as s:
        assert s.get(Run, run_id).log_bytes <= 2048
        dropped = dropped_of(s, run_id)
    assert dropped is not None and dropped.lines == 1000 - len(lines)
    assert dropped.bytes == 10 * dropped.lines
    assert _artifact(env_settings, run_id).splitlines()[-1].endswith(
        f"[neuroreg] {dropped.lines} lines ({dropped.bytes} bytes) dropped: this run's log "
        "reached its bound of 2048 bytes (NEUROREG_LOG_MAX_BYTES), up to line 999")


def test_under_the_threads_pool_each_task_gets_its_own_lines(env_settings: Settings) -> None:
    runs = [_run(env_settings, "a"), _run(env_settings, "b")]
    both = threading.Barrier(2)
    stdout = sys.stdout

    def job_for(tag: str):  # type: ignore[no-untyped-def]
        def job(config, rec):  # type: ignore[no-untyped-def]
            both.wait(timeout=10)  # both capturing at once
            for i in range(20):
                print(f"{tag} {i}")
                logging.getLogger("job").warning("%s warned %d", tag, i)
            both.wait(timeout=10)
            return {}
        return job

    results: list[dict[str, object]] = []
    threads = [threading.Thread(target=lambda r=r, t=t: results.append(execute(r, job_for(t))))
               for r, t in zip(runs, "ab", strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [r["status"] for r in results] == ["succeeded", "succeeded"]
    for run_id, tag in zip(runs, "ab", strict=True):
        lines = _log(env_settings, run_id)
        assert [ln for s, ln in lines if s == "stdout"] == [f"{tag} {i}" for i in range(20)]
        assert [ln for s, ln in lines if s == "log"] == [
            f"WARNING job: {tag} warned {i}" for i in range(20)]
    assert sys.stdout is stdout


def test_a_store_that_is_away_loses_no_lines_and_never_breaks_the_job(
        env_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = _run(env_settings)
    real, calls = Direct.append_lines, []

    def flaky(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) <= 2:
            raise OSError("database went away")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Direct, "append_lines", flaky)

    def job(config, rec):  # type: ignore[no-untyped-def]
        for i in range(5):
            print(f"still here {i}")
        return {"ok": 1}

    assert execute(run_id, job)["status"] == "succeeded"
    assert [ln for _, ln in _log(env_settings, run_id)] == [f"still here {i}" for i in range(5)]
    assert len(calls) >= 3


def test_a_record_a_handler_already_prints_to_stderr_is_kept_once(
        env_settings: Settings) -> None:
    run_id = _run(env_settings)

    def job(config, rec):  # type: ignore[no-untyped-def]
        handler = logging.StreamHandler(sys.stderr)  # as logging.basicConfig() in a job does
        handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
        logger = logging.getLogger("configured")
        logger.addHandler(handler)
        try:
            logger.warning("once")
        finally:
            logger.removeHandler(handler)
        return {}

    assert execute(run_id, job)["status"] == "succeeded"
    assert [ln for ln in _log(env_settings, run_id) if "once" in ln[1]] == [
        ("stderr", "WARNING:configured:once")]


def test_the_workers_own_console_log_of_a_jobs_record_is_a_log_line_not_stderr(
        env_settings: Settings) -> None:
    # what a Celery pool process has before any job: a handler on the root logger printing
    # to descriptor 2 in Celery's format
    console = open(2, "w", closefd=False)  # noqa: SIM115 — the handler's stream
    worker = logging.StreamHandler(console)
    worker.setFormatter(logging.Formatter("[%(asctime)s: %(levelname)s/ForkPoolWorker-1] "
                                          "%(message)s"))
    root = logging.getLogger()
    root.addHandler(worker)
    run_id = _run(env_settings)

    def job(config, rec):  # type: ignore[no-untyped-def]
        logging.getLogger("ml.train").info("epoch 1/2: loss 0.5")
        logging.getLogger("ml.train").info("epoch 1/2: loss 0.5")  # the same line twice
        print("epoch 1/2: loss 0.5", file=sys.stderr)  # …and once printed by the job
        return {}

    try:
        assert execute(run_id, job)["status"] == "succeeded"
    finally:
        root.removeHandler(worker)
        console.close()
    assert not worker.filters  # the capture's filter went with it
    lines = [ln for ln in _log(env_settings, run_id) if "loss 0.5" in ln[1]]
    assert lines == [("log", "INFO ml.train: epoch 1/2: loss 0.5")] * 2 + [
        ("stderr", "epoch 1/2: loss 0.5")]


def test_print_is_captured_though_celery_redirected_stdout_to_its_logger(
        env_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from celery.utils.log import LoggingProxy

    proxy = LoggingProxy(logging.getLogger("celery.redirected"), logging.WARNING)
    monkeypatch.setattr(sys, "stdout", proxy)  # what a Celery pool process has
    run_id = _run(env_settings)

    def job(config, rec):  # type: ignore[no-untyped-def]
        print("through the proxy?")
        return {}

    assert execute(run_id, job)["status"] == "succeeded"
    assert _log(env_settings, run_id) == [("stdout", "through the proxy?")]  # once, as stdout
    assert sys.stdout is proxy
