"""What the worker records about a job besides its output: system/* series while it runs
(no GPU series and no error without NVML) and its provenance when it starts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from core.settings import Settings, get_settings
from core.store.db import migrate, session_scope
from core.store.metrics import read_series, summarize_keys
from core.store.models import Role, Run
from core.store.runs import create_run
from core.store.users import create_user
from worker.tasks import execute

pytestmark = pytest.mark.no_numerics


@pytest.fixture
def env_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("NEUROREG_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("NEUROREG_SYSTEM_METRICS_S", "1")
    get_settings.cache_clear()
    migrate(settings.db_url)
    yield get_settings()
    get_settings.cache_clear()


def _run(settings: Settings) -> int:
    with session_scope(settings.db_url) as s:
        user = create_user(s, name="u", role=Role.member)
        return create_run(s, owner=user, kind="train", name="", config={}).id


def _samples(settings: Settings, run_id: int) -> int:
    with session_scope(settings.db_url) as s:
        return read_series(s, run_id, "system/cpu_percent", max_points=100).total


def test_a_task_records_cpu_and_memory_every_interval(env_settings: Settings) -> None:
    run_id = _run(env_settings)
    ballast: list[bytes] = []

    def job(config, rec):  # type: ignore[no-untyped-def]
        ballast.append(bytes(64 * 2**20))  # 64 MiB resident
        # keep a core busy until three samples are stored, however slowly a loaded machine
        # schedules the sampler (a fixed busy time gave one sample on a busy CI machine)
        x, start = 0, time.monotonic()
        while _samples(env_settings, run_id) < 3:
            end = time.monotonic() + 0.25
            while time.monotonic() < end:
                x += 1
            assert time.monotonic() - start < 300, "the sampler stored no 3 samples in 300 s"
        return {}

    assert execute(run_id, job)["status"] == "succeeded"
    with session_scope(env_settings.db_url) as s:
        keys = {k["key"] for k in summarize_keys(s, run_id)}
        assert {"system/cpu_percent", "system/rss_mb"} <= keys
        assert not [k for k in keys if k.startswith("system/gpu")]  # no GPU here
        cpu = read_series(s, run_id, "system/cpu_percent", max_points=100)
        rss = read_series(s, run_id, "system/rss_mb", max_points=100)
        created = s.get(Run, run_id).created_at.timestamp()
    assert cpu.total >= 3
    assert cpu.steps == sorted(set(cpu.steps))  # whole seconds since creation, increasing
    assert cpu.wall_times is not None
    assert all(abs(w - created - st) < 1.01 for st, w in zip(cpu.steps, cpu.wall_times,
                                                           strict=True))
    # one sample an interval (1 s), never more often
    assert all(b - a >= 0.99 for a, b in zip(cpu.wall_times, cpu.wall_times[1:], strict=False))
    assert max(cpu.values) > 50  # a busy loop keeps a core busy
    assert min(rss.values) > 64


def test_without_nvml_there_are_no_gpu_series_and_no_error(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    import pynvml

    from neuroreg.system import Sampler

    def no_driver() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", no_driver)
    sampler = Sampler()
    assert not sampler.gpu
    assert set(sampler.sample()) == {"system/cpu_percent", "system/rss_mb"}
    sampler.close()


def test_zero_seconds_turns_the_sampler_off(env_settings: Settings,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROREG_SYSTEM_METRICS_S", "0")
    get_settings.cache_clear()
    run_id = _run(env_settings)
    sampling: list[bool] = []

    def job(config, rec):  # type: ignore[no-untyped-def]
        sampling.append(any(t.name == "system-metrics" for t in threading.enumerate()))
        return {}

    assert execute(run_id, job)["status"] == "succeeded"
    assert sampling == [False]  # no sampler thread while the job ran
    with session_scope(env_settings.db_url) as s:
        assert summarize_keys(s, run_id) == []


def test_the_worker_stores_its_codes_provenance_when_it_starts_the_run(
        env_settings: Settings) -> None:
    import platform
    import socket
    from importlib.metadata import version

    from worker.observe import code_dir

    run_id = _run(env_settings)
    seen = {}

    def job(config, rec):  # type: ignore[no-untyped-def]
        with session_scope(env_settings.db_url) as s:
            seen.update(s.get(Run, run_id).provenance or {})
        return {}

    assert execute(run_id, job)["status"] == "succeeded"
    assert seen["python"] == platform.python_version() and seen["host"] == socket.gethostname()
    assert seen["packages"]["torch"] == version("torch") and "sqlalchemy" in seen["packages"]
    assert seen["torch"] and isinstance(seen["gpus"], list) and seen["neuroreg_version"]
    from neuroreg.provenance import git_state

    assert {k: seen[k] for k in ("git_commit", "git_dirty", "git_root")} == {
        k: v for k, v in git_state(code_dir()).items() if k != "git_branch"}
