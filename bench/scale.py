"""How far it scales: how many concurrent GPU workers one API + PostgreSQL + Redis serves,
what saturates first, and what two API processes on one port change, measured in one run.

(a) per-worker load. A real train run (ResNet18 width 8 toward a small neural-model
    target, CPU, on digits32) goes through a real Celery worker (``worker.tasks`` on the
    solo pool, a subprocess) on PostgreSQL and Redis; the worker counts every SQL
    statement and commit it makes (a SQLAlchemy ``before_cursor_execute`` listener, by
    thread: the task, its heartbeat, log and system-metrics threads), PostgreSQL's
    ``pg_stat_database`` counts the transactions it saw, psutil the connections the
    worker held, and Redis ``MONITOR`` the broker commands of the run and of an idle
    worker. This CPU takes a few steps per second, a GPU many more, and the recorder's
    writes are paced by time (a flush and a cancellation check per second, a beat per
    10 s), not by steps. So the same code (``worker.recorder.SqlRecorder``, the heartbeat
    and system-metrics threads) is then driven at ``--gpu-steps-per-s`` (default 100:
    the paper's ResNet18 at batch 64, regularized, on a current data-centre GPU — an
    assumption, not measured here) with the measured metric keys per step, the training
    loop's 25-step device syncs and a checkpoint per CIFAR-10 epoch: one GPU worker's load.
(b) the ceilings. PostgreSQL under the worker write path: processes each repeating one
    emulated worker-second (the same points and transactions) back to back, and its
    connections (``max_connections``). Redis: ``redis-benchmark`` (LPUSH/RPOP). One
    ``neuroreg api`` process on SQLite and on PostgreSQL: 32 clients, each on its own
    connection (asyncio httpx, closed loop), posting 1,000- and 100-point metric batches,
    polling a run's status, and the health check.
(c) ``neuroreg api --workers 2`` on PostgreSQL against one process, the same requests,
    and every acknowledged point checked to be stored once.
(d) the table: workers served per resource and what saturates first.
(e) workers over the API vs on the database, side by side: one ``neuroreg api`` process on
    a fresh PostgreSQL database; N emulated GPU workers (threads in up to 4 load-generator
    processes, each with a backend and connection pool of its own), each on a run it
    claimed, drive the worker's own recorder, heartbeat, system-metrics and log-sink code
    at ``--gpu-steps-per-s`` (as in (a), plus 2 log lines a second; a checkpoint per
    CIFAR-10 epoch with ``--remote-checkpoint-mb``) once through ``worker.backend.Remote``
    (a worker token, the API process) and once through ``Direct`` (PostgreSQL), N rising
    (1, 2, 4, ... 64; a series stops once it falls behind). Per N and mode: the recorder's
    one-second flushes (p50/p95, on time, how far behind), the steps held, the points
    PostgreSQL holds against those acknowledged (each stored once), and the cores of the
    API process, PostgreSQL and the load generators. Served: the largest N with p95 flush
    < 1 s, no flush more than 1 s behind, >= 95% of the steps held and nothing lost.
    ``--only remote-vs-direct`` runs it alone (``--quick``: N 1, 4, 16, 32 for 8 s each).

Everything shares this machine's cores (the load generators too); each ceiling is
printed with the cores the server side used, the machine's busy % and what other
processes took meanwhile ("others"). PostgreSQL is ``NEUROREG_BENCH_PG``'s server
(default postgresql+psycopg://postgres@127.0.0.1:5432/test), in databases of its own
that are dropped after; Redis is ``NEUROREG_BENCH_REDIS`` (default db 11 on
127.0.0.1:6379, emptied after). ``--quick`` (about 2 minutes) trains 1 epoch and
measures 2 s per ceiling. Ends with one JSON line.

    .venv/bin/python bench/scale.py [--quick] [--gpu-steps-per-s 100]
        [--only all|scale|remote-vs-direct] [--remote-workers 1,2,4] [--remote-seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy.engine import make_url

from ml.artifacts import CHECKPOINT, MODEL

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import PG_ADMIN, free_port  # noqa: E402

REDIS = os.environ.get("NEUROREG_BENCH_REDIS", "redis://127.0.0.1:6379/11")
CIFAR_STEPS_PER_EPOCH = math.ceil(50_000 / 64)  # the paper's CIFAR-10 at batch 64
PAPER_WIDTH = 64
CLIENTS = 32
# threads of a running task that write to the database, each through the process's pool
# (which keeps what it opened): the task, its heartbeat, log sink and system metrics
WRITING_THREADS = 4


# ---------------------------------------------------------------- counting SQL --------

_VERB_TABLE = (
    (re.compile(r"^\s*INSERT\s+INTO\s+\"?(\w+)", re.I), "INSERT"),
    (re.compile(r"^\s*UPDATE\s+\"?(\w+)", re.I), "UPDATE"),
    (re.compile(r"^\s*DELETE\s+FROM\s+\"?(\w+)", re.I), "DELETE"),
    (re.compile(r"^\s*SELECT\b.*?\bFROM\s+\"?(\w+)", re.I | re.S), "SELECT"),
)


def _category(statement: str) -> str:
    for pattern, verb in _VERB_TABLE:
        m = pattern.match(statement)
        if m:
            return f"{verb} {m.group(1)}"
    return statement.split(None, 1)[0].upper() if statement.strip() else "?"


def _role() -> str:
    name = threading.current_thread().name
    for prefix in ("heartbeat", "logs", "system-metrics", "recorder"):
        if name.startswith(prefix):
            return prefix
    return "task" if name == "MainThread" else name


def _rows(statement: str, params: Any, executemany: bool) -> int:
    if executemany:
        return len(params)
    if statement.startswith("INSERT INTO metrics") and isinstance(params, tuple | list) \
            and len(params) > 1 and isinstance(params[1], list):
        return len(params[1])  # PostgreSQL's unnest insert: one statement, many rows
    return 1


class SqlCounter:
    """Every statement and commit of this process's engines: (time, thread role,
    category, rows) and (time, thread role)."""

    def __init__(self) -> None:
        self.statements: list[tuple[float, str, str, int]] = []
        self.commits: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def _execute(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any,
                 executemany: bool) -> None:
        row = (time.time(), _role(), _category(statement), _rows(statement, params,
                                                                  executemany))
        with self._lock:
            self.statements.append(row)

    def _commit(self, conn: Any) -> None:
        with self._lock:
            self.commits.append((time.time(), _role()))

    def install(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "before_cursor_execute", self._execute)
        event.listen(Engine, "commit", self._commit)

    def remove(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.remove(Engine, "before_cursor_execute", self._execute)
        event.remove(Engine, "commit", self._commit)

    def dump(self) -> dict[str, Any]:
        with self._lock:
            return {"statements": list(self.statements), "commits": list(self.commits)}


def worker_child(stats: Path, ready: Path) -> None:
    """``--worker-child``: a Celery worker on the solo pool (the task runs in this
    process's main thread) that counts its SQL, and writes the counts after each task."""
    counter = SqlCounter()
    counter.install()
    from celery.signals import task_postrun, worker_ready

    import worker.tasks  # noqa: F401 — the tasks
    from worker.app import celery_app

    @worker_ready.connect
    def _ready(**_: Any) -> None:
        ready.write_text("ready")

    @task_postrun.connect
    def _done(**_: Any) -> None:
        tmp = stats.with_suffix(".tmp")
        tmp.write_text(json.dumps(counter.dump()))
        tmp.replace(stats)

    celery_app.worker_main(["worker", "-Q", "gpu,cpu", "--pool", "solo", "-l", "WARNING",
                            "--without-gossip", "--without-mingle"])


# ---------------------------------------------------------------- services ------------

@contextlib.contextmanager
def pg_database(tag: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"neuroreg_scale_{tag}_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        from core.store.db import engine_for

        engine_for(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pg_stats(url: str) -> dict[str, int]:
    """This database's counters (all sessions, flushed by each backend when idle)."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"),
                         autocommit=True) as c:
        row = c.execute("SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, "
                        "tup_fetched FROM pg_stat_database WHERE datname = %s",
                        (name,)).fetchone()
    assert row is not None
    return dict(zip(("xact_commit", "xact_rollback", "tup_inserted", "tup_updated",
                     "tup_fetched"), (int(v) for v in row), strict=True))


def pg_settings() -> dict[str, str]:
    import psycopg

    with psycopg.connect(PG_ADMIN.replace("postgresql+psycopg", "postgresql"),
                         autocommit=True) as c:
        return {k: str(c.execute(f"SHOW {k}").fetchone()[0])  # type: ignore[index]
                for k in ("server_version", "fsync", "synchronous_commit",
                          "max_connections", "superuser_reserved_connections",
                          "shared_buffers")}


class RedisMonitor:
    """Every command Redis runs on the bench's db, from MONITOR, in a thread."""

    def __init__(self, url: str) -> None:
        import redis

        self.db = int(url.rsplit("/", 1)[1] or 0)
        self._client = redis.Redis.from_url(url)
        self.commands: list[tuple[float, str, str]] = []  # (time, client, command)
        self._monitor = self._client.monitor()
        self._monitor.__enter__()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        with contextlib.suppress(Exception):  # the connection closes at stop()
            for cmd in self._monitor.listen():
                if int(cmd.get("db", -1)) == self.db:
                    self.commands.append((float(cmd["time"]), str(cmd["client_address"]),
                                          str(cmd["command"]).split(" ", 1)[0].upper()))

    def window(self, t0: float, t1: float) -> Counter[str]:
        return Counter(c for t, _, c in list(self.commands) if t0 <= t < t1)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._monitor.connection.disconnect()
        self._client.close()


def redis_ceiling(url: str, requests: int) -> dict[str, float]:
    """redis-benchmark's LPUSH and RPOP rates (a publish and a consume) on the bench db."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    db = url.rsplit("/", 1)[1] or "0"
    exe = shutil.which("redis-benchmark")
    if exe is None:
        return {}
    out = subprocess.run([exe, "-h", host, "-p", port, "--dbnum", db, "-q", "-n",
                          str(requests), "-c", "20", "-t", "lpush,rpop"],
                         capture_output=True, text=True, timeout=120).stdout
    rates = {}
    for line in out.replace("\r", "\n").splitlines():
        m = re.match(r"^(\w+): ([\d.]+) requests per second", line.strip())
        if m:
            rates[f"{m.group(1).lower()}_per_s"] = float(m.group(2))
    return rates


def redis_flush(url: str) -> None:
    import redis

    r = redis.Redis.from_url(url)
    r.flushdb()
    r.close()


class Cpu:
    """CPU seconds of process groups between start() and stop(), as cores used. The
    groups are listed again every 0.2 s, so processes that start meanwhile (a pool's new
    PostgreSQL backends) count from their start and those that end count until then."""

    def __init__(self, **groups: Callable[[], list[psutil.Process]]) -> None:
        self.groups = groups
        self._first: dict[str, dict[int, float]] = {}
        self._last: dict[str, dict[int, float]] = {}
        self._stop = threading.Event()

    def _sample(self, initial: bool = False) -> None:
        for name, procs in self.groups.items():
            for p in procs():
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    seconds = t.user + t.system
                    self._first[name].setdefault(p.pid, seconds if initial else 0.0)
                    self._last[name][p.pid] = seconds

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def start(self) -> None:
        self._first = {k: {} for k in self.groups}
        self._last = {k: {} for k in self.groups}
        self._sample(initial=True)
        self._wall = time.perf_counter()
        psutil.cpu_percent()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        self._sample()
        wall = time.perf_counter() - self._wall
        busy = psutil.cpu_percent()
        self._stop.set()
        self._thread.join()
        out = {f"{k}_cores": sum(v - self._first[k][pid] for pid, v in self._last[k].items())
               / wall for k in self.groups}
        out["machine_busy_pct"] = busy
        # what else ran meanwhile (other users' processes on a shared machine)
        out["other_cores"] = max(0.0, busy / 100 * (psutil.cpu_count() or 1)
                                 - sum(out[f"{k}_cores"] for k in self.groups))
        return out


PG_PORT = make_url(PG_ADMIN).port or 5432


def pg_connections(procs: list[psutil.Process]) -> int:
    """Open connections from ``procs`` to the PostgreSQL server."""
    n = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            n += sum(1 for c in p.net_connections(kind="tcp")
                     if c.raddr and c.raddr.port == PG_PORT)
    return n


class PeakConnections:
    """The most connections ``procs()`` held to PostgreSQL at once, sampled every 0.2 s."""

    def __init__(self, procs: Callable[[], list[psutil.Process]]) -> None:
        self.procs, self.peak = procs, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while True:
            self.peak = max(self.peak, pg_connections(self.procs()))
            if self._stop.wait(0.2):
                return

    def __enter__(self) -> PeakConnections:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def postgres_procs() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]


@contextlib.contextmanager
def api(data_dir: Path, database_url: str | None, workers: int = 1
        ) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """``neuroreg api [--workers N]`` as a subprocess: (url, admin token, process), once
    each of its processes has started."""
    port = free_port()
    env = dict(os.environ, NEUROREG_DATA_DIR=str(data_dir), NEUROREG_PORT=str(port),
               NEUROREG_BROKER_URL=REDIS)
    if database_url:
        env["NEUROREG_DATABASE_URL"] = database_url
    log = data_dir / f"api-{workers}.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cli", "api", "--workers",
                                 str(workers)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while log.read_text(errors="replace").count("Application startup complete") < workers:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"API did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
        token = (data_dir / "admin-token").read_text().strip()
        yield url, token, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ---------------------------------------------------------------- (a) one real run ---

def _settings_env(data_dir: Path, db_url: str) -> dict[str, str]:
    return {"NEUROREG_DATA_DIR": str(data_dir), "NEUROREG_DATABASE_URL": db_url,
            "NEUROREG_BROKER_URL": REDIS}


@contextlib.contextmanager
def settings_for(data_dir: Path, db_url: str) -> Iterator[Any]:
    from core.settings import get_settings

    saved = {k: os.environ.get(k) for k in _settings_env(data_dir, db_url)}
    os.environ.update(_settings_env(data_dir, db_url))
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


def _target_run(settings: Any, owner: Any) -> int:
    """A succeeded similarity run holding a small neural-model target (as a similarity
    run would store it), for the train run to read."""
    import numpy as np
    import torch

    from core.lifecycle import finish_run
    from core.store.artifacts import save_artifact
    from core.store.db import session_scope
    from core.store.models import RunStatus
    from core.store.runs import create_run
    from ml.neural.estimators import unit_vectors
    from ml.neural.stimuli import natural_patches
    from ml.neural.target import SimilarityTarget

    images = natural_patches(200, seed=1)
    quad = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(images), (2, 2))
    f = quad.flatten(1).numpy()
    target = SimilarityTarget("neural-model", unit_vectors((f - f.mean(0)) / f.std(0)),
                              np.arange(len(f)), images)
    with session_scope(settings.db_url) as s:
        run = create_run(s, owner=s.merge(owner), kind="similarity", name="scale target",
                         config={})
        save_artifact(s, settings.artifacts, run_id=run.id, name="target-neural-model.npz",
                      data=target.to_bytes(), media_type="application/x-npz")
        finish_run(s, run.id, RunStatus.succeeded)
        return int(run.id)


def real_run(db_url: str, epochs: int, idle_s: float) -> dict[str, Any]:
    """One train run through a real worker; its SQL, PostgreSQL's counters, Redis's."""
    from core.queue import make_celery
    from core.store.db import migrate, session_scope
    from core.store.models import Artifact, Run, User
    from core.store.users import ensure_admin
    from core.submit import submit_run

    tmp = Path(tempfile.mkdtemp(prefix="neuroreg-scale-"))
    try:
        with settings_for(tmp, db_url) as settings:
            migrate(db_url)
            with session_scope(db_url) as s:
                ensure_admin(s)
                owner = s.query(User).order_by(User.id).first()
            sim = _target_run(settings, owner)
            stats, ready = tmp / "sql.json", tmp / "ready"
            monitor = RedisMonitor(REDIS)
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            log = (tmp / "worker.log").open("wb")
            worker = subprocess.Popen([sys.executable, __file__, "--worker-child", str(stats),
                                       str(ready)], env=env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
            try:
                deadline = time.monotonic() + 180
                while not ready.exists():
                    if time.monotonic() > deadline or worker.poll() is not None:
                        raise RuntimeError("worker did not start: " +
                                           (tmp / "worker.log").read_text()[-2000:])
                    time.sleep(0.2)
                time.sleep(2.0)  # past the worker's start-up commands
                i0 = time.time()
                time.sleep(idle_s)  # an idle worker's broker polling
                i1 = time.time()
                before = pg_stats(db_url)
                config = {"backbone": "resnet18", "width": 8, "epochs": epochs,
                          "batch_size": 64, "target": "neural-model", "target_run": sim,
                          "alpha": 8.0, "device": "cpu", "deterministic": False}
                t_submit = time.time()
                with session_scope(db_url) as s:
                    run = submit_run(s, make_celery(settings), owner=s.merge(owner),
                                     kind="train", name="scale: one real run", config=config)
                    run_id = int(run.id)
                deadline = time.monotonic() + 1800
                with PeakConnections(lambda: [psutil.Process(worker.pid)]) as conns:
                    while not stats.exists():
                        if time.monotonic() > deadline or worker.poll() is not None:
                            raise RuntimeError("the run did not finish: " +
                                               (tmp / "worker.log").read_text()[-2000:])
                        time.sleep(0.2)
                t_done = time.time()
            finally:
                os.killpg(worker.pid, signal.SIGTERM)
                try:
                    worker.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)
                    worker.wait()
                log.close()
            from core.store.db import engine_for

            engine_for(db_url).dispose()  # our backends exit: their statistics are flushed
            time.sleep(1.5)  # the worker's too, once its backends are gone
            after = pg_stats(db_url)
            monitor.stop()
            counts = json.loads(stats.read_text())
            with session_scope(db_url) as s:
                r = s.get(Run, run_id)
                assert r is not None
                result, status = r.result or {}, r.status.value
                sizes = {a.name: int(a.size_bytes) for a in s.query(Artifact)
                         .filter(Artifact.run_id == run_id)}
                keys = _keys(s, run_id)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert status == "succeeded", (status, result)
    return {"run_id": run_id, "config": config, "steps": int(result["steps"]),
            "epochs": epochs, "sql": counts, "result_seconds": result["seconds"],
            "worker_pg_connections": conns.peak,
            "pg": {k: after[k] - before[k] for k in after},
            "redis_idle": dict(monitor.window(i0, i1)), "idle_s": i1 - i0,
            "redis_run": dict(monitor.window(t_submit, t_done + 1)),
            "artifact_sizes": sizes, "keys": keys, "t_submit": t_submit, "t_done": t_done}


def _keys(session: Any, run_id: int) -> dict[str, int]:
    from sqlalchemy import text

    return {k: int(n) for k, n in session.execute(text(
        "SELECT key, COUNT(*) FROM metrics WHERE run_id = :r GROUP BY key"), {"r": run_id})}


def summarize_real(r: dict[str, Any]) -> dict[str, Any]:
    """Per run, per step and per epoch from the counted statements."""
    stmts, commits = r["sql"]["statements"], r["sql"]["commits"]
    steps, epochs = r["steps"], r["epochs"]
    step_keys = sorted(k for k, n in r["keys"].items() if n == steps)
    epoch_keys = sorted(k for k, n in r["keys"].items() if n == epochs)
    task_points = [(t, n) for t, role, cat, n in stmts
                   if role in ("task", "recorder") and cat == "INSERT metrics"]
    by_cat = Counter(f"{role}: {cat}" for _, role, cat, _ in stmts)
    by_role_commits = Counter(role for _, role in commits)
    ckpt = r["artifact_sizes"].get(CHECKPOINT) or r["artifact_sizes"][MODEL]
    counted_txn = len(commits)
    return {
        "steps": steps, "epochs": epochs, "steps_per_epoch": steps // epochs,
        "cpu_train_s": float(r["result_seconds"]),
        "cpu_steps_per_s": steps / float(r["result_seconds"]),
        "worker_pg_connections": r["worker_pg_connections"],
        "pg_transactions_per_counted_commit": r["pg"]["xact_commit"] / max(len(commits), 1),
        "submit_to_finish_s": r["t_done"] - r["t_submit"],
        "step_keys": step_keys, "epoch_keys": epoch_keys,
        "points_per_step": len(step_keys), "points_per_epoch": len(epoch_keys),
        "points_total": sum(n for _, n in task_points),
        "statements": len(stmts), "commits": counted_txn,
        "statements_by_kind": dict(by_cat.most_common()),
        "commits_by_thread": dict(by_role_commits),
        "pg_xact_commit": r["pg"]["xact_commit"], "pg_xact_rollback": r["pg"]["xact_rollback"],
        "pg_tup_inserted": r["pg"]["tup_inserted"], "pg_tup_updated": r["pg"]["tup_updated"],
        "checkpoint_bytes": ckpt, "model_bytes": r["artifact_sizes"].get(MODEL, 0),
        "broker_run_commands": sum(r["redis_run"].values()),
        "broker_run_by_command": r["redis_run"],
        "broker_publishes": sum(n for c, n in r["redis_run"].items() if c in ("LPUSH", "RPUSH")),
        "broker_idle_per_s": sum(r["redis_idle"].values()) / r["idle_s"],
        "broker_idle_by_command": r["redis_idle"],
    }


def paper_checkpoint_bytes(measured_bytes: int, width: int) -> float:
    """The checkpoint at the paper's width: the measured one scaled by parameter count."""
    from ml.models import build_backbone

    small = sum(p.numel() for p in build_backbone("resnet18", num_classes=10,
                                                  width=width).parameters())
    paper = sum(p.numel() for p in build_backbone("resnet18", num_classes=10,
                                                  width=PAPER_WIDTH).parameters())
    return measured_bytes * paper / small


# ---------------------------------------------------------------- (a) at GPU pace ----

def _running_run(db_url: str, name: str) -> int:
    from core.lifecycle import start_run
    from core.store.db import session_scope
    from core.store.models import User
    from core.store.runs import create_run

    with session_scope(db_url) as s:
        owner = s.query(User).order_by(User.id).first()
        run = create_run(s, owner=owner, kind="train", name=name, config={})
        run_id = int(run.id)
    with session_scope(db_url) as s:
        assert start_run(s, run_id, worker="bench")
    return run_id


def emulate_gpu_worker(db_url: str, keys: list[str], epoch_keys: list[str], steps_per_s: float,
                       seconds: float, checkpoint_bytes: int) -> dict[str, Any]:
    """The worker's recorder, heartbeat and system-metrics threads driven at GPU pace: a
    step every 1/steps_per_s s (should_stop and progress each step, the metrics sent in
    the training loop's 25-step syncs), an epoch's test metrics and checkpoint every
    CIFAR-10 epoch. Counts its SQL."""
    from core.settings import get_settings
    from core.store.db import engine_for
    from ml.train.joint import _SYNC_EVERY
    from worker.observe import system_metrics
    from worker.recorder import SqlRecorder
    from worker.tasks import heartbeat

    settings = get_settings()
    run_id = _running_run(db_url, "scale: emulated GPU worker")
    rec = SqlRecorder(db_url=db_url, artifact_root=settings.artifacts, run_id=run_id)
    engine_for(db_url).dispose()  # the connections it holds after are the worker's
    blob = os.urandom(1 << 20) * max(1, checkpoint_bytes >> 20)
    counter = SqlCounter()
    counter.install()
    total = CIFAR_STEPS_PER_EPOCH * 40
    pending: list[int] = []
    checkpoints = 0
    t0 = time.perf_counter()
    try:
        with heartbeat(rec.backend, run_id, settings.heartbeat_s), \
                system_metrics(rec.backend, run_id, settings.system_metrics_s):
            step = 0
            while True:
                due = t0 + step / steps_per_s
                if due - t0 >= seconds:
                    break
                time.sleep(max(0.0, due - time.perf_counter()))
                rec.should_stop()
                pending.append(step)
                if len(pending) >= _SYNC_EVERY:
                    for s in pending:
                        rec.log_metrics({k: 0.5 for k in keys}, s)
                    pending.clear()
                step += 1
                rec.progress(step / total, "epoch 1/40")
                if step % CIFAR_STEPS_PER_EPOCH == 0:
                    for s in pending:
                        rec.log_metrics({k: 0.5 for k in keys}, s)
                    pending.clear()
                    rec.log_metrics({k: 0.5 for k in epoch_keys}, step - 1)
                    rec.save_artifact(CHECKPOINT, blob, "application/octet-stream")
                    checkpoints += 1
            elapsed = time.perf_counter() - t0
    finally:
        counter.remove()
    pool = engine_for(db_url).pool
    held = pool.checkedin() + pool.checkedout()  # type: ignore[attr-defined]
    got = counter.dump()
    by_cat = Counter(f"{role}: {cat}" for _, role, cat, _ in got["statements"])
    points = sum(n for _, role, cat, n in got["statements"] if cat == "INSERT metrics")
    flushes = sum(1 for _, role, cat, _ in got["statements"]
                  if role in ("task", "recorder") and cat == "INSERT metrics")
    return {"run_id": run_id, "steps_per_s": step / elapsed, "seconds": elapsed,
            "txn_per_s": len(got["commits"]) / elapsed,
            "statements_per_s": len(got["statements"]) / elapsed,
            "points_per_s": points / elapsed, "flushes_per_s": flushes / elapsed,
            "points_per_flush": points / max(flushes, 1),
            "checkpoints": checkpoints, "pg_connections": held,
            "per_s_by_kind": {k: v / elapsed for k, v in by_cat.most_common()},
            "commits_per_s_by_thread": {k: v / elapsed for k, v in
                                        Counter(r for _, r in got["commits"]).items()}}


# ---------------------------------------------------------------- (b) PostgreSQL ceiling

def pg_writer(db_url: str, run_id: int, keys: list[str], points_per_cycle: int,
              start_at: float, seconds: float, beat_every: int, system_every: int,
              out: Path) -> None:
    """``--pg-writer``: one emulated worker-second after another, back to back: a flush of
    its points with the progress (2 transactions), a cancellation check, and a beat and a
    system-metrics sample at their share of cycles."""
    from core.store.db import session_scope
    from core.store.metrics import insert_points
    from core.store.runs import beat
    from worker.recorder import SqlRecorder

    rec = SqlRecorder(db_url=db_url, artifact_root=Path(tempfile.gettempdir()), run_id=run_id)
    per_step = max(1, len(keys))
    steps = max(1, points_per_cycle // per_step)
    step, cycles = 0, 0
    rec.should_stop()  # connected before the start
    time.sleep(max(0.0, start_at - time.time()))
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        now = time.time()
        rec._buffer = [(k, s, 0.5, now) for s in range(step, step + steps) for k in keys]
        rec._progress = (0.5, "epoch 1/40")
        rec.flush()
        rec._last_check = 0.0
        rec.should_stop()
        if cycles % beat_every == 0:
            with session_scope(db_url) as s:
                beat(s, run_id)
        if cycles % system_every == 0:
            with session_scope(db_url) as s:
                insert_points(s, run_id, [(f"system/{k}", cycles, 1.0, now)
                                          for k in ("cpu", "rss", "gpu", "gpu_mem")])
        step += steps
        cycles += 1
    out.write_text(json.dumps({"cycles": cycles, "points": cycles * steps * per_step}))


def pg_ceiling(db_url: str, keys: list[str], points_per_cycle: int, writers: int,
               seconds: float, heartbeat_s: float, system_s: float) -> dict[str, Any]:
    runs = [_running_run(db_url, f"scale: writer {i}") for i in range(writers)]
    tmp = Path(tempfile.mkdtemp(prefix="neuroreg-scale-pg-"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start_at = time.time() + 8.0  # after every writer's imports
    procs = [subprocess.Popen([sys.executable, __file__, "--pg-writer", db_url, str(r),
                               ",".join(keys), str(points_per_cycle), str(start_at),
                               str(seconds),
                               str(max(1, round(heartbeat_s))),
                               str(max(1, round(system_s))), str(tmp / f"{r}.json")],
                              env=env) for r in runs]
    cpu = Cpu(postgres=postgres_procs, writers=lambda: [psutil.Process(p.pid) for p in procs],
              bench=lambda: [psutil.Process()])
    time.sleep(max(0.0, start_at - 1.0 - time.time()))
    before = pg_stats(db_url)
    time.sleep(max(0.0, start_at - time.time()))
    cpu.start()
    time.sleep(seconds)
    used = cpu.stop()
    for p in procs:
        p.wait()
    time.sleep(1.5)  # the writers' backends are gone: their statistics are in
    after = pg_stats(db_url)
    done = [json.loads((tmp / f"{r}.json").read_text()) for r in runs]
    shutil.rmtree(tmp, ignore_errors=True)
    cycles = sum(d["cycles"] for d in done)
    return {"writers": writers, "cycles_per_s": cycles / seconds,
            "points_per_s": sum(d["points"] for d in done) / seconds,
            "pg_commits_per_s": (after["xact_commit"] - before["xact_commit"]) / seconds,
            "cycles_per_pg_core_s": cycles / seconds / max(used["postgres_cores"], 1e-9),
            **used}


# ---------------------------------------------------------------- (b, c) the API ------

async def closed_loop(url: str, token: str, runs: list[int], kind: str, seconds: float,
                      servers: list[psutil.Process] | None = None) -> dict[str, Any]:
    """One client per run, each on a connection of its own opened one after another (as
    scripts and dashboards start), sending ``kind`` requests back to back for ``seconds``
    (a batch to its own run, under the key ``kind``)."""
    done, errors, kinds, lat = 0, 0, Counter[str](), []
    acked: Counter[int] = Counter()
    headers = {"Authorization": f"Bearer {token}"}
    https = [httpx.AsyncClient(base_url=url, headers=headers, timeout=60,
                               limits=httpx.Limits(max_connections=1)) for _ in runs]
    split: list[int] = []
    try:
        for http in https:  # connect, one at a time
            (await http.get("/api/health")).raise_for_status()
        if servers and len(servers) > 1:  # the connections each server process took
            port = int(url.rsplit(":", 1)[1])
            split = sorted(sum(1 for c in p.net_connections(kind="tcp")
                               if c.laddr.port == port and c.raddr) for p in servers)
        end = time.perf_counter() + seconds

        async def client(http: httpx.AsyncClient, run_id: int) -> None:
            nonlocal done, errors
            k = 0
            while time.perf_counter() < end:
                if kind.startswith("batch"):
                    n = int(kind[5:])
                    body = {"points": [{"key": kind, "step": k * n + j, "value": 1.0}
                                       for j in range(n)]}
                    call = http.post(f"/api/runs/{run_id}/metrics", json=body)
                elif kind == "status":
                    call = http.get(f"/api/runs/{run_id}")
                else:
                    call = http.get("/api/health")
                t = time.perf_counter()
                try:
                    res = await call
                    ok = res.status_code == 200
                    if ok and kind.startswith("batch"):
                        acked[run_id] += res.json()["accepted"]
                    if not ok:
                        kinds[f"HTTP {res.status_code}"] += 1
                except httpx.HTTPError as exc:
                    ok = False
                    kinds[type(exc).__name__] += 1
                lat.append(time.perf_counter() - t)
                done, errors = done + ok, errors + (not ok)
                k += 1

        t0 = time.perf_counter()
        await asyncio.gather(*[client(h, r) for h, r in zip(https, runs, strict=True)])
        elapsed = time.perf_counter() - t0
    finally:
        for http in https:
            await http.aclose()
    points = int(kind[5:]) if kind.startswith("batch") else 0
    lat.sort()
    return {"requests_per_s": done / elapsed, "points_per_s": done * points / elapsed,
            "errors": errors, "error_kinds": dict(kinds), "acked": dict(acked),
            "connections_per_process": split,
            "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
            "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))] if lat else float("nan")}


API_KINDS = ("batch1000", "batch100", "status", "health")


def server_processes(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """uvicorn's server processes: the one process, or the spawned ones of --workers."""
    parent = psutil.Process(proc.pid)
    kids = [c for c in parent.children() if any("spawn_main" in a for a in c.cmdline())]
    return kids or [parent]


def api_ceiling(name: str, database_url: str | None, workers: int, kinds: tuple[str, ...],
                seconds: float) -> dict[str, Any]:
    """Each request kind back to back from CLIENTS clients against ``neuroreg api
    --workers N``; then every acknowledged point is checked to be stored once."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"neuroreg-scale-{name}-"))
    out: dict[str, Any] = {}
    auth = {"Authorization": "Bearer "}
    try:
        with api(data_dir, database_url, workers) as (url, token, proc):
            auth = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=url, headers=auth, timeout=60) as http:
                runs = [http.post("/api/runs", json={"kind": "external",
                                                     "name": f"scale client {i}"}).json()["id"]
                        for i in range(CLIENTS)]
            asyncio.run(closed_loop(url, token, runs, "status", 1.0))  # warm up
            servers = server_processes(proc)
            out["server_processes"] = len(servers)
            acked: Counter[tuple[int, str]] = Counter()
            for kind in kinds:
                cpu = Cpu(api=lambda: servers, postgres=postgres_procs,
                          bench=lambda: [psutil.Process()])
                per = {p.pid: sum(p.cpu_times()[:2]) for p in servers}
                cpu.start()
                with PeakConnections(lambda: servers) as conns:
                    res = asyncio.run(closed_loop(url, token, runs, kind, seconds, servers))
                res.update(cpu.stop())
                res["pg_connections_peak"] = conns.peak
                res["process_cpu_s"] = [round(sum(p.cpu_times()[:2]) - per[p.pid], 2)
                                        for p in servers]
                for run_id, n in res.pop("acked").items():
                    acked[(run_id, kind)] += n
                out[kind] = res
            stored: Counter[tuple[int, str]] = Counter()
            with httpx.Client(base_url=url, headers=auth, timeout=60) as http:
                for r in runs:
                    for k in http.get(f"/api/runs/{r}/metrics").json():
                        stored[(r, k["key"])] = int(k["count"])
            out["acknowledged_points"] = sum(acked.values())
            out["lost"] = sum(max(n - stored[k], 0) for k, n in acked.items())
            out["stored_unacknowledged"] = sum(max(n - acked[k], 0) for k, n in stored.items())
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return out


# ---------------------------------------------------------------- (d) the table ------

def plan(real: dict[str, Any], gpu: dict[str, Any], pg: dict[str, Any], redis: dict[str, float],
         apis: dict[str, dict[str, Any]], pg_conf: dict[str, str], steps_per_s: float,
         ckpt_bytes: float) -> dict[str, Any]:
    """Workers served per resource at the emulated GPU pace; the smallest of the worker
    path's (PostgreSQL's connections and writes, Redis) saturates first."""
    run_s = 40 * CIFAR_STEPS_PER_EPOCH / steps_per_s  # the paper's 40 epochs
    broker_per_s = real["broker_idle_per_s"] + real["broker_run_commands"] / run_s
    per_txn = real["pg_transactions_per_counted_commit"]
    rows: dict[str, dict[str, Any]] = {}
    api_conns = max(v["pg_connections_peak"] for k, v in apis["postgresql_1"].items()
                    if isinstance(v, dict) and "pg_connections_peak" in v)
    free = int(pg_conf["max_connections"]) - int(pg_conf["superuser_reserved_connections"]) \
        - api_conns
    held = max(real["worker_pg_connections"], gpu["pg_connections"], 1)
    rows["postgresql_connections"] = {
        "ceiling": f"max_connections {pg_conf['max_connections']} - "
                   f"{pg_conf['superuser_reserved_connections']} reserved - {api_conns} "
                   f"of one loaded API process = {free}",
        "per_worker": f"{held} connection(s) held, as measured; up to {WRITING_THREADS} "
                      f"(one per writing thread: {free // WRITING_THREADS} workers)",
        "workers": free / held, "workers_worst": free / WRITING_THREADS}
    rows["postgresql_writes"] = {
        "ceiling": f"{pg['cycles_per_s']:.0f} worker-s/s ({pg['points_per_s']:.0f} points/s, "
                   f"{pg['pg_commits_per_s']:.0f} PG txn/s; PG {pg['postgres_cores']:.2f} "
                   "cores)",
        "per_worker": f"{gpu['points_per_s']:.0f} points/s, {gpu['txn_per_s']:.1f} sessions/s "
                      f"= {gpu['txn_per_s'] * per_txn:.1f} PG txn/s",
        "workers": pg["cycles_per_s"]}
    if redis:
        ceiling = min(redis.values())
        rows["redis_broker"] = {
            "ceiling": f"{ceiling:.0f} commands/s (redis-benchmark, slower of LPUSH/RPOP)",
            "per_worker": f"{broker_per_s:.2f} commands/s", "workers": ceiling / broker_per_s}
    # a training script logging through the API as the worker logs: a second's points in
    # one batch (1,000-point batches) and one status poll, per second
    points = gpu["points_per_s"]
    for name, a in apis.items():
        big = a["batch1000"]
        batches = max(1.0, points / 1000)
        # both kinds of request take the same processes: their costs add
        cost = batches / big["requests_per_s"] + 1.0 / a["status"]["requests_per_s"]
        rows[f"api_{name}"] = {
            "ceiling": f"{big['points_per_s']:.0f} points/s in 1,000-point batches, "
                       f"{a['status']['requests_per_s']:.0f} status polls/s",
            "per_worker": f"{batches:.1f} batch + 1 poll per s (a script via the API)",
            "workers": 1.0 / cost}
    ckpt_mb_s = ckpt_bytes / (CIFAR_STEPS_PER_EPOCH / steps_per_s) / 1e6
    backend = {k: v for k, v in rows.items() if not k.startswith("api_")}
    order = sorted(backend, key=lambda k: backend[k]["workers"])
    return {"rows": rows, "first": order[0], "then": order[1], "api_pg_connections": api_conns,
            "broker_per_worker_s": broker_per_s, "checkpoint_mb_per_s": ckpt_mb_s,
            "run_s": run_s}


# ---------------------------------------------------------------- (e) API vs database --

# the per-step and per-epoch keys section (a)'s train run logs (a neural-model target with a
# learned γ per tap, ResNet18's 5 taps), measured there; used when (e) runs alone
STEP_KEYS = ["acc", *(f"gamma/{i}" for i in range(5)), "loss", "lr", "sim_loss", "task_loss"]
EPOCH_KEYS = ["sim_r", *(f"sim_r/{i}" for i in range(5)), "test_acc", "test_loss"]
LOG_LINES_PER_S = 2.0


class TimedBackend:
    """A :class:`worker.backend.Backend` that times every call by action and counts the
    points and log lines the store acknowledged (the call returned)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: dict[str, list[float]] = {}
        self.failed: Counter[str] = Counter()
        self.acked_points = 0
        self.acked_lines = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                out = attr(*args, **kw)
            except BaseException:
                with self._lock:
                    self.failed[name] += 1
                raise
            dt = time.perf_counter() - t
            with self._lock:
                self.calls.setdefault(name, []).append(dt)
                if name in ("points", "sync"):  # a flush's points go by sync
                    self.acked_points += len(args[1])
                elif name == "append_lines":
                    self.acked_lines += len(args[1])
            return out

        return call


def _timed_recorder(backend: Any, run_id: int) -> Any:
    """The worker's own ``SqlRecorder`` (its timer thread, its buffering), each flush
    timed: (wall start, seconds, age of its oldest point when it returned, by the timer
    thread, ok)."""
    from worker.recorder import SqlRecorder

    class TimedRecorder(SqlRecorder):
        cycles: list[tuple[float, float, float | None, bool, bool]]

        def flush(self) -> None:
            with self._lock:
                oldest = self._buffer[0][3] if self._buffer else None
            start, t = time.time(), time.perf_counter()
            timer = threading.current_thread().name.startswith("recorder-")
            try:
                super().flush()
            except BaseException:
                self.cycles.append((start, time.perf_counter() - t, None, timer, False))
                raise
            self.cycles.append((start, time.perf_counter() - t,
                                None if oldest is None else time.time() - oldest, timer, True))

    rec = TimedRecorder(backend=backend, run_id=run_id)
    rec.cycles = []
    return rec


def _emulated_worker(backend: TimedBackend, run_id: int, spec: dict[str, Any], start: float,
                     out: dict[str, Any]) -> None:
    """One GPU worker's store traffic through ``backend``, from the worker's own code: its
    recorder (points and progress flushed each second, a cancellation check per second),
    heartbeat and system-metrics threads and log sink, driven as section (a) drives them
    (a step every 1/G s, metrics handed over at the 25-step syncs, an epoch's metrics and
    optionally a checkpoint every CIFAR-10 epoch) plus a few log lines a second. The
    training thread wakes once per sync and takes its 25 steps' calls then."""
    from ml.train.joint import _SYNC_EVERY
    from worker.capture import LogSink
    from worker.observe import system_metrics
    from worker.tasks import heartbeat

    G, keys, seconds = spec["steps_per_s"], spec["keys"], spec["seconds"]
    rec = _timed_recorder(backend, run_id)
    sink = LogSink(backend, run_id, max_bytes=spec["log_max_bytes"])
    rec.also_flush(sink.flush)
    blob = os.urandom(spec["checkpoint_bytes"]) if spec["checkpoint_bytes"] else b""
    total = CIFAR_STEPS_PER_EPOCH * 40
    step, lines, late, epochs = 0, 0, 0.0, 0
    out.update(run_id=run_id, cycles=rec.cycles, error=None)
    try:
        with heartbeat(backend, run_id, spec["heartbeat_s"]), \
                system_metrics(backend, run_id, spec["system_metrics_s"]):
            time.sleep(max(0.0, start - time.time()))
            t0 = time.perf_counter()
            while True:
                due = t0 + (step + _SYNC_EVERY) / G
                if due - t0 > seconds:
                    break
                time.sleep(max(0.0, due - time.perf_counter()))
                late = max(late, time.perf_counter() - due)
                epoch = step // CIFAR_STEPS_PER_EPOCH + 1
                for s in range(step, step + _SYNC_EVERY):
                    rec.should_stop()
                    rec.progress((s + 1) / total, f"epoch {epoch}/40")
                for s in range(step, step + _SYNC_EVERY):
                    rec.log_metrics({k: 0.5 for k in keys}, s)
                step += _SYNC_EVERY
                if step // CIFAR_STEPS_PER_EPOCH >= epochs + 1:  # an epoch ended
                    epochs += 1
                    rec.log_metrics({k: 0.5 for k in spec["epoch_keys"]}, step - 1)
                    if blob:
                        rec.save_artifact(CHECKPOINT, blob, "application/octet-stream")
                elapsed = time.perf_counter() - t0
                while lines < elapsed * spec["log_lines_per_s"]:
                    sink.add("stdout", f"epoch {epoch}/40 step {step} loss 0.5000 acc 0.5000")
                    lines += 1
            out["elapsed"] = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 — reported in the table
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        try:
            rec.close()
            sink.close()
        except Exception as exc:  # noqa: BLE001
            out["error"] = out["error"] or f"close: {type(exc).__name__}: {exc}"
    out.update(steps=step, late_s=late, lines=lines)


class _Warnings(logging.Handler):
    """Counts the worker code's warnings (a failed flush, a retried call) instead of
    printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        self.first: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.name] += 1
        self.first.setdefault(record.name, record.getMessage()[:200])


def remote_gen(spec_path: Path) -> None:
    """``--remote-gen SPEC``: a load generator holding several emulated workers, each a
    thread with a backend of its own (``remote``: a ``Remote`` with its own connection
    pool; ``direct``: a ``Direct`` with an engine and pool of its own, as a worker process
    has), which claims its run, says it is ready and starts at the parent's go."""
    # what the emulated workers import, before the clock starts (a worker process has
    # imported it all before its first run)
    import ml.train.joint  # noqa: F401
    import neuroreg.system  # noqa: F401
    import worker.capture  # noqa: F401
    import worker.observe  # noqa: F401
    import worker.tasks  # noqa: F401
    from core.settings import Settings
    from worker.backend import Direct, Remote

    spec = json.loads(spec_path.read_text())
    warnings = _Warnings()
    logging.getLogger().addHandler(warnings)
    logging.getLogger().setLevel(logging.WARNING)
    backends = []
    for run_id in spec["runs"]:
        if spec["mode"] == "remote":
            inner: Any = Remote(spec["api_url"], spec["token"], retry_s=60.0,
                                cache=Path(spec["tmp"]) / f"cache-{run_id}")
        else:
            url = make_url(spec["db_url"]).update_query_dict(
                {"application_name": f"neuroreg-bench-{run_id}"})
            inner = Direct(Settings(database_url=url.render_as_string(hide_password=False),
                                    artifact_dir=Path(spec["artifacts"])))
        backend = TimedBackend(inner)
        got = backend.claim(run_id, f"bench-{os.getpid()}-{run_id}")
        assert got is not None and got.kind == "train", got
        backend.status(run_id)  # connected
        backends.append(backend)
    Path(spec["ready"]).write_text("ready")
    go = Path(spec["go"])
    while not go.exists():
        time.sleep(0.05)
    go_at = float(go.read_text())
    outs: list[dict[str, Any]] = [{} for _ in backends]
    threads = [threading.Thread(target=_emulated_worker, daemon=True, name=f"emulated-{r}",
                                args=(b, r, spec, go_at + spec["offsets"][i], outs[i]))
               for i, (b, r) in enumerate(zip(backends, spec["runs"], strict=True))]
    me = psutil.Process()
    cpu0 = {t.id: t.user_time + t.system_time for t in me.threads()}
    named: dict[int, str] = {}
    stop = threading.Event()

    last: dict[int, float] = {}

    def names() -> None:  # CPU by thread role (the worker code names its threads)
        while not stop.wait(0.25):
            for t in threading.enumerate():
                if t.native_id is not None:
                    named[t.native_id] = re.sub(r"[-_]?\d+$", "", t.name)
            with contextlib.suppress(psutil.Error):
                for t in me.threads():
                    last[t.id] = t.user_time + t.system_time
    watcher = threading.Thread(target=names, daemon=True)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=spec["seconds"] + 240)
    stop.set()
    watcher.join()
    for t in me.threads():
        last[t.id] = t.user_time + t.system_time
    by_role: Counter[str] = Counter()
    for tid, seconds in last.items():
        by_role[named.get(tid, "other")] += seconds - cpu0.get(tid, 0.0)
    for b, o in zip(backends, outs, strict=True):
        o.update(acked_points=b.acked_points, acked_lines=b.acked_lines,
                 failed=dict(b.failed), calls={k: sorted(v) for k, v in b.calls.items()},
                 alive=any(t.is_alive() for t in threads))
    Path(spec["out"]).write_text(json.dumps({"workers": outs, "warnings": dict(warnings.counts),
                                             "cpu_s_by_thread": dict(by_role),
                                             "warning_samples": warnings.first}))
    os._exit(0)  # threads that did not end (a store that never answered) end here


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))]


class GeneratorFailed(RuntimeError):
    """A load generator could not claim its runs (e.g. PostgreSQL refused a connection)."""


def _failed_point(mode: str, n: int, seconds: float, error: str) -> dict[str, Any]:
    nan = float("nan")
    return {"mode": mode, "workers": n, "seconds": seconds, "errors": [error],
            "warnings": {}, "kept_up": False, "lost": 0, "stored_unacknowledged": 0,
            **{k: nan for k in ("flush_p50_ms", "flush_p95_ms", "flushes_on_time",
                                "max_behind_s", "steps_held", "points_stored_per_s",
                                "points_per_s_target", "api_cores", "postgres_cores",
                                "load_cores", "machine_busy_pct", "other_cores")}}


def remote_point(mode: str, n: int, *, api_url: str, token: str, db_url: str,
                 artifacts: Path, servers: list[psutil.Process], owner_id: int,
                 spec_base: dict[str, Any], seconds: float) -> dict[str, Any]:
    """``n`` emulated workers through ``mode`` (remote: the API with a worker token;
    direct: PostgreSQL), each on a run of its own, for ``seconds``; then their flushes,
    their steps and the points PostgreSQL holds."""
    from sqlalchemy import text

    from core.store.db import session_scope
    from core.store.models import User
    from core.store.runs import create_run

    with session_scope(db_url) as s:
        owner = s.get(User, owner_id)
        runs = [int(create_run(s, owner=owner, kind="train", name=f"scale e {mode} {n} {i}",
                               config={}).id) for i in range(n)]
    gens = min(n, 4)
    tmp = Path(tempfile.mkdtemp(prefix=f"neuroreg-scale-e-{mode}-"))
    go = tmp / "go"
    procs, outs = [], []
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for g in range(gens):
        mine = runs[g::gens]
        spec = dict(spec_base, mode=mode, api_url=api_url, token=token, db_url=db_url,
                    artifacts=str(artifacts), runs=mine, tmp=str(tmp), seconds=seconds,
                    ready=str(tmp / f"ready-{g}"), go=str(go), out=str(tmp / f"out-{g}.json"),
                    # workers are not in step: each starts at its own point of a second
                    offsets=[runs.index(r) / n for r in mine])
        (tmp / f"spec-{g}.json").write_text(json.dumps(spec))
        outs.append(tmp / f"out-{g}.json")
        with (tmp / f"gen-{g}.log").open("wb") as log:
            procs.append(subprocess.Popen([sys.executable, __file__, "--remote-gen",
                                           str(tmp / f"spec-{g}.json")], env=env,
                                          stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))
    gen_procs = [psutil.Process(p.pid) for p in procs]
    try:
        deadline = time.monotonic() + 180
        while not all((tmp / f"ready-{g}").exists() for g in range(gens)):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                tails = [(tmp / f"gen-{g}.log").read_text(errors="replace").strip()
                         .splitlines()[-1:] for g in range(gens)]
                raise GeneratorFailed(f"load generators did not start: "
                                      f"{sorted({t[0] for t in tails if t})}")
            time.sleep(0.1)
        cpu = Cpu(api=lambda: servers, postgres=postgres_procs, load=lambda: gen_procs)
        go_at = time.time() + 0.5
        go.write_text(repr(go_at))
        time.sleep(max(0.0, go_at - time.time()))
        cpu.start()
        with PeakConnections(lambda: gen_procs) as gen_conns, \
                PeakConnections(lambda: servers) as api_conns:
            time.sleep(seconds + 1.0)
        used = cpu.stop()
        used["pg_connections_workers"] = gen_conns.peak
        used["pg_connections_api"] = api_conns.peak
        for p in procs:
            try:
                p.wait(timeout=seconds + 300)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        results = [json.loads(o.read_text()) for o in outs if o.exists()]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    workers = [w for r in results for w in r["workers"]]
    warnings: Counter[str] = Counter()
    samples: dict[str, str] = {}
    load_cpu: Counter[str] = Counter()
    for r in results:
        warnings.update(r["warnings"])
        load_cpu.update(r["cpu_s_by_thread"])
        samples.update(r["warning_samples"])
    with session_scope(db_url) as s:
        stored = {int(r): int(c) for r, c in s.execute(text(
            "SELECT run_id, COUNT(*) FROM metrics WHERE run_id = ANY(:r) GROUP BY run_id"),
            {"r": runs})}
        lines = {int(r): int(c) for r, c in s.execute(text(
            "SELECT run_id, COUNT(*) FROM run_logs WHERE run_id = ANY(:r) GROUP BY run_id"),
            {"r": runs})}
    timer = [c for w in workers for c in w["cycles"] if c[3]]
    lat = [c[1] for c in timer if c[4]]
    ages = [c[2] for c in timer if c[4] and c[2] is not None]
    interval = 1.0
    acked = sum(w["acked_points"] for w in workers)
    stored_n = sum(stored.get(r, 0) for r in runs)
    lost = sum(max(0, w["acked_points"] - stored.get(w["run_id"], 0)) for w in workers)
    extra = sum(max(0, stored.get(w["run_id"], 0) - w["acked_points"]) for w in workers)
    lines_acked = sum(w["acked_lines"] for w in workers)
    lines_lost = sum(max(0, w["acked_lines"] - lines.get(w["run_id"], 0)) for w in workers)
    elapsed = [w.get("elapsed", seconds) for w in workers]
    steps_due = n * spec_base["steps_per_s"] * seconds
    status_lat = [x for w in workers for x in w["calls"].get("status", [])]
    errors = [w["error"] for w in workers if w.get("error")]
    failed_calls = sum(sum(w["failed"].values()) for w in workers)
    p95 = _pct(lat, 0.95)
    max_behind = max((a - interval for a in ages), default=float("nan"))
    steps_held = sum(w["steps"] for w in workers) / steps_due if steps_due else 0.0
    kept = (len(workers) == n and not errors and failed_calls == 0 and lost == 0
            and bool(lat) and p95 < interval and max_behind <= 1.0 and steps_held >= 0.95
            and lines_lost == 0)
    return {
        "mode": mode, "workers": n, "generators": gens, "seconds": seconds,
        "flushes": len(timer), "flush_p50_ms": 1000 * _pct(lat, 0.5),
        "flush_p95_ms": 1000 * p95, "flush_max_ms": 1000 * max(lat, default=float("nan")),
        "flushes_on_time": sum(1 for x in lat if x <= interval) / max(len(timer), 1),
        "max_behind_s": max_behind,
        "status_p95_ms": 1000 * _pct(status_lat, 0.95),
        "steps_held": steps_held, "train_loop_late_max_s": max(
            (w.get("late_s", 0.0) for w in workers), default=0.0),
        "points_acked": acked, "points_stored": stored_n,
        "points_stored_per_s": stored_n / max(statistics.mean(elapsed) if elapsed else seconds,
                                              1e-9),
        "points_per_s_target": n * spec_base["steps_per_s"] * len(spec_base["keys"]),
        "lost": lost, "stored_unacknowledged": extra,
        "log_lines_acked": lines_acked, "log_lines_lost": lines_lost,
        "failed_calls": failed_calls, "errors": errors[:3],
        "workers_with_errors": len(errors), "warnings": dict(warnings),
        "warning_samples": samples,
        "calls_per_worker_s": {k: sum(len(w["calls"].get(k, [])) for w in workers)
                               / max(n * seconds, 1e-9)
                               for k in sorted({k for w in workers for k in w["calls"]})},
        "load_cpu_s_by_thread": {k: round(v, 2) for k, v in load_cpu.most_common()},
        "kept_up": kept, **used}


def remote_vs_direct(G: float, keys: list[str], epoch_keys: list[str], ns: list[int],
                     seconds: float, checkpoint_bytes: int) -> dict[str, Any]:
    """(e): one ``neuroreg api`` process on a fresh PostgreSQL database; N emulated GPU
    workers through it with a worker token and N straight on the database, N rising, a
    series stopping once it falls behind."""
    from core.settings import Settings
    from core.store.db import session_scope
    from core.store.models import User
    from core.store.users import issue_token

    defaults = Settings()
    spec_base = {"steps_per_s": G, "keys": keys, "epoch_keys": epoch_keys,
                 "checkpoint_bytes": checkpoint_bytes, "log_lines_per_s": LOG_LINES_PER_S,
                 "heartbeat_s": defaults.heartbeat_s,
                 "system_metrics_s": defaults.system_metrics_s,
                 "log_max_bytes": defaults.log_max_bytes}
    rows: list[dict[str, Any]] = []
    data_dir = Path(tempfile.mkdtemp(prefix="neuroreg-scale-e-"))
    try:
        with pg_database("remote") as db_url, api(data_dir, db_url, 1) as (url, _, proc):
            servers = server_processes(proc)
            with session_scope(db_url) as s:
                admin = s.query(User).order_by(User.id).first()
                assert admin is not None
                owner_id = int(admin.id)
                token = issue_token(s, user=admin, name="scale bench", scope="worker")
            going = {"remote": True, "direct": True}
            for n in ns:
                for mode in ("remote", "direct"):
                    if not going[mode]:
                        continue
                    where = "over the API" if mode == "remote" else "on the database"
                    print(f"(e) {n} workers {where} ...", flush=True)
                    try:
                        row = remote_point(mode, n, api_url=url, token=token, db_url=db_url,
                                           artifacts=data_dir / "artifacts", servers=servers,
                                           owner_id=owner_id, spec_base=spec_base,
                                           seconds=seconds)
                    except GeneratorFailed as exc:
                        row = _failed_point(mode, n, seconds, str(exc))
                    rows.append(row)
                    going[mode] = row["kept_up"]
                if not any(going.values()):
                    break
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    served: dict[str, int] = {}
    bounded: dict[str, bool] = {}
    for mode in ("remote", "direct"):
        mine = [r for r in rows if r["mode"] == mode]
        ok = [r["workers"] for r in mine if r["kept_up"]]
        served[mode] = max(ok, default=0)
        bounded[mode] = any(not r["kept_up"] for r in mine)  # else only a lower bound
    ratio = served["remote"] / served["direct"] if served["direct"] else float("nan")
    return {"rows": rows, "served": served, "served_is_ceiling": bounded,
            "ratio_remote_to_direct": ratio, "steps_per_s": G, "keys_per_step": len(keys),
            "checkpoint_bytes": checkpoint_bytes, "seconds_per_point": seconds,
            "cores": psutil.cpu_count()}


def report_remote(e: dict[str, Any]) -> None:
    print(f"\n(e) workers one API process serves over the API (worker token) vs workers on "
          f"the database, {e['steps_per_s']:g} steps/s each, {e['keys_per_step']} points per "
          f"step, {e['seconds_per_point']:g} s per point; load generators, the API process and "
          f"PostgreSQL share this machine's {e['cores']} cores")
    print(f"  {'N':>3} {'mode':<7} {'p50 ms':>7} {'p95 ms':>7} {'on time':>7} {'behind s':>8} "
          f"{'steps':>6} {'points/s':>9} {'target':>7} {'acked=stored':>12} {'API cores':>9} "
          f"{'PG cores':>8} {'load cores':>10} {'busy %':>6} {'others':>6} {'PG conns':>8}  "
          "kept up?")
    for r in e["rows"]:
        same = "yes" if r["lost"] == 0 and r["stored_unacknowledged"] == 0 else \
            f"lost {r['lost']}/+{r['stored_unacknowledged']}"
        conns = r.get("pg_connections_workers", 0) + r.get("pg_connections_api", 0)
        print(f"  {r['workers']:>3} {r['mode']:<7} {r['flush_p50_ms']:>7.0f} "
              f"{r['flush_p95_ms']:>7.0f} {100 * r['flushes_on_time']:>6.0f}% "
              f"{r['max_behind_s']:>8.2f} {100 * r['steps_held']:>5.0f}% "
              f"{r['points_stored_per_s']:>9.0f} {r['points_per_s_target']:>7.0f} "
              f"{same:>12} {r['api_cores']:>9.2f} {r['postgres_cores']:>8.2f} "
              f"{r['load_cores']:>10.2f} {r['machine_busy_pct']:>6.0f} "
              f"{r['other_cores']:>6.2f} {conns:>8}  {'yes' if r['kept_up'] else 'NO'}"
              + (f"  errors in {r.get('workers_with_errors', 1)} workers, e.g. "
                 f"{r['errors'][0][:110]!r}" if r["errors"] else "")
              + (f"  warnings {r['warnings']}" if r["warnings"] else ""))
    s, b = e["served"], e["served_is_ceiling"]
    fmt = {m: f"{s[m]}" + ("" if b[m] else "+") for m in s}
    print(f"  served (p95 flush < 1 s, no flush more than 1 s behind, >= 95% of steps held, "
          f"every acknowledged point stored once): over the API {fmt['remote']}, on the "
          f"database {fmt['direct']}; ratio {e['ratio_remote_to_direct']:.2f} "
          "('+': every N tried kept up, a lower bound). 'API cores' is ~0 for direct "
          "workers (the API process idles); 'load cores' is the emulated workers' own "
          "processes, which compete for the same cores; 'PG conns' is the peak held to "
          "PostgreSQL by the workers (direct) or the API process (remote)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short run (about 2 minutes)")
    ap.add_argument("--gpu-steps-per-s", type=float, default=100.0,
                    help="the GPU worker's training steps per second assumed (default 100)")
    ap.add_argument("--only", choices=("all", "scale", "remote-vs-direct"), default="all",
                    help="all sections (default); 'scale': (a)-(d); 'remote-vs-direct': (e)")
    ap.add_argument("--remote-workers", type=lambda v: [int(x) for x in v.split(",")],
                    help="(e)'s worker counts, e.g. 1,2,4 (default 1,2,4,8,16,32,64; quick "
                         "1,4,16,32)")
    ap.add_argument("--remote-seconds", type=float,
                    help="(e)'s seconds per worker count (default 20; quick 8)")
    ap.add_argument("--remote-checkpoint-mb", type=float, default=0.0,
                    help="(e): a checkpoint of this size per emulated CIFAR-10 epoch "
                         "(default 0: none; the paper's width is about 45 MB)")
    ap.add_argument("--worker-child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--pg-writer", nargs=9, help=argparse.SUPPRESS)
    ap.add_argument("--remote-gen", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.remote_gen:
        remote_gen(Path(args.remote_gen))
        return
    if args.worker_child:
        worker_child(Path(args.worker_child[0]), Path(args.worker_child[1]))
        return
    if args.pg_writer:
        db, run, keys, pts, start_at, secs, beat_every, sys_every, out = args.pg_writer
        pg_writer(db, int(run), keys.split(","), int(pts), float(start_at), float(secs),
                  int(beat_every), int(sys_every), Path(out))
        return
    quick = args.quick
    G = args.gpu_steps_per_s
    epochs, window = (1, 2.0) if quick else (3, 6.0)
    emulate_s = 8.0 if quick else CIFAR_STEPS_PER_EPOCH / G + 4.0
    writers = (4,) if quick else (4, 8)
    pg_conf = pg_settings()
    print(f"this machine: {psutil.cpu_count()} cores; PostgreSQL {pg_conf}; the load "
          "generators, workers and servers all share these cores (and so does whatever else "
          "runs here: 'busy %' is the whole machine's)", flush=True)
    ns = args.remote_workers or ([1, 4, 16, 32] if quick else [1, 2, 4, 8, 16, 32, 64])
    e_seconds = args.remote_seconds or (8.0 if quick else 20.0)
    e_ckpt = int(args.remote_checkpoint_mb * 1e6)
    if args.only == "remote-vs-direct":
        e = remote_vs_direct(G, STEP_KEYS, EPOCH_KEYS, ns, e_seconds, e_ckpt)
        redis_flush(REDIS)
        report_remote(e)
        print(json.dumps({"bench": "scale", "quick": quick, "cores": psutil.cpu_count(),
                          "gpu_steps_per_s_assumed": G, "postgresql": pg_conf,
                          "remote_vs_direct": e}, default=float))
        return

    with pg_database("worker") as db_url:
        print(f"(a) one real train run ({epochs} epochs, CPU) through a Celery worker on "
              "PostgreSQL + Redis ...", flush=True)
        real = summarize_real(real_run(db_url, epochs, idle_s=3.0 if quick else 6.0))
        ckpt = paper_checkpoint_bytes(real["checkpoint_bytes"], 8)
        emu_dir = Path(tempfile.mkdtemp(prefix="neuroreg-scale-emu-"))
        with settings_for(emu_dir, db_url):
            print(f"(a) the recorder at {G:g} GPU steps/s for {emulate_s:.0f} s ...",
                  flush=True)
            gpu = emulate_gpu_worker(db_url, real["step_keys"], real["epoch_keys"], G,
                                     emulate_s, int(ckpt))
            from core.settings import get_settings

            settings = get_settings()
            pts = round(gpu["points_per_s"])
            pgs = []
            for w in writers:
                print(f"(b) PostgreSQL: {w} writers, back-to-back worker-seconds ...",
                      flush=True)
                pgs.append(pg_ceiling(db_url, real["step_keys"], pts, w, window + 2.0,
                                      settings.heartbeat_s, settings.system_metrics_s))
            pg = max(pgs, key=lambda p: p["cycles_per_s"])
        shutil.rmtree(emu_dir, ignore_errors=True)
    redis_flush(REDIS)
    print("(b) Redis: redis-benchmark ...", flush=True)
    redis = redis_ceiling(REDIS, 20_000 if quick else 100_000)
    redis_flush(REDIS)

    apis: dict[str, dict[str, Any]] = {}
    kinds = API_KINDS
    print("(b) one API process on SQLite ...", flush=True)
    apis["sqlite_1"] = api_ceiling("sqlite", None, 1, kinds, window)
    with pg_database("api") as url:
        print("(b) one API process on PostgreSQL ...", flush=True)
        apis["postgresql_1"] = api_ceiling("pg1", url, 1, kinds, window)
    with pg_database("api2") as url:
        print("(c) two API processes (--workers 2) on PostgreSQL ...", flush=True)
        apis["postgresql_2"] = api_ceiling("pg2", url, 2, kinds, window)
    redis_flush(REDIS)

    e = None
    if args.only == "all":
        e = remote_vs_direct(G, real["step_keys"], real["epoch_keys"], ns, e_seconds, e_ckpt)
        redis_flush(REDIS)
    table = plan(real, gpu, pg, redis, apis, pg_conf, G, ckpt)
    report(real, gpu, pgs, redis, apis, table, G, ckpt)
    if e is not None:
        report_remote(e)
    print(json.dumps({
        "bench": "scale", "quick": quick, "cores": psutil.cpu_count(),
        "gpu_steps_per_s_assumed": G,
        "real_run": {k: v for k, v in real.items() if k not in ("statements_by_kind",)},
        "real_run_statements_by_kind": real["statements_by_kind"],
        "gpu_worker": gpu, "checkpoint_bytes_paper_width": round(ckpt),
        "postgresql_ceiling": pgs, "redis_ceiling": redis, "api": apis,
        "workers_served": {k: round(v["workers"], 1) for k, v in table["rows"].items()},
        "saturates_first": table["first"], "saturates_next": table["then"],
        "postgresql": pg_conf, "api_pg_connections_peak": table["api_pg_connections"],
        "broker_commands_per_worker_s": round(table["broker_per_worker_s"], 3),
        "checkpoint_mb_per_worker_s": round(table["checkpoint_mb_per_s"], 2),
        **({"remote_vs_direct": e} if e is not None else {})}, default=float))


def report(real: dict[str, Any], gpu: dict[str, Any], pgs: list[dict[str, Any]],
           redis: dict[str, float], apis: dict[str, dict[str, Any]], table: dict[str, Any],
           G: float, ckpt: float) -> None:
    print("\n(a) one real run: ResNet18 width 8, batch 64, neural-model target (learned γ), "
          f"{real['epochs']} epochs on this CPU through a Celery worker (PostgreSQL + Redis)")
    print(f"  {real['steps']} steps at {real['cpu_steps_per_s']:.2f} steps/s (its training "
          f"time; {real['submit_to_finish_s']:.0f} s submit to finish); "
          f"{real['points_per_step']} points per step ({', '.join(real['step_keys'])}), "
          f"{real['points_per_epoch']} per epoch")
    print(f"  SQL: {real['statements']} statements, {real['commits']} commits counted in the "
          f"worker; PostgreSQL saw {real['pg_xact_commit']} commits "
          f"({real['pg_transactions_per_counted_commit']:.1f} per counted one: the pool's "
          f"pre-ping is a transaction of its own) and {real['pg_xact_rollback']} rollbacks, "
          f"{real['pg_tup_inserted']} rows inserted; the worker held up to "
          f"{real['worker_pg_connections']} connections")
    for k, n in list(real["statements_by_kind"].items())[:10]:
        print(f"    {n:>6}  {k}")
    print(f"  broker: {real['broker_run_commands']} Redis commands for the run "
          f"({real['broker_publishes']} published), an idle worker "
          f"{real['broker_idle_per_s']:.2f} commands/s {real['broker_idle_by_command']}")
    print(f"  checkpoint {real['checkpoint_bytes'] / 1e6:.2f} MB at width 8; "
          f"{ckpt / 1e6:.0f} MB at the paper's width 64")
    print(f"\n(a) one GPU worker, emulated: the recorder at {G:g} steps/s (assumed), "
          f"{real['points_per_step']} points per step, 25-step syncs, "
          f"{CIFAR_STEPS_PER_EPOCH}-step epochs")
    print(f"  {gpu['steps_per_s']:.1f} steps/s held; {gpu['points_per_s']:.0f} points/s in "
          f"{gpu['flushes_per_s']:.2f} flushes/s ({gpu['points_per_flush']:.0f} points each); "
          f"{gpu['txn_per_s']:.2f} sessions (commits)/s, {gpu['statements_per_s']:.1f} "
          f"statements/s; {gpu['checkpoints']} checkpoint")
    for k, v in list(gpu["per_s_by_kind"].items())[:8]:
        print(f"    {v:>7.2f}/s  {k}")
    print("\n(b) PostgreSQL under the worker write path (writers repeat one emulated "
          "worker-second back to back; they share the cores with PostgreSQL)")
    print(f"  {'writers':>7} {'worker-s/s':>11} {'points/s':>9} {'PG txn/s':>9} "
          f"{'PG cores':>9} {'per PG core':>12} {'writer cores':>13} {'busy %':>7} "
          f"{'others':>7}")
    for p in pgs:
        print(f"  {p['writers']:>7} {p['cycles_per_s']:>11.0f} {p['points_per_s']:>9.0f} "
              f"{p['pg_commits_per_s']:>9.0f} {p['postgres_cores']:>9.2f} "
              f"{p['cycles_per_pg_core_s']:>12.0f} {p['writers_cores']:>13.2f} "
              f"{p['machine_busy_pct']:>7.0f} {p['other_cores']:>7.2f}")
    if redis:
        print(f"  Redis: {', '.join(f'{k} {v:.0f}' for k, v in redis.items())}")
    print(f"\n(b, c) the API, {CLIENTS} clients back to back (asyncio httpx in one process "
          "on the same cores)")
    print(f"  {'server':<16} {'request':<10} {'req/s':>7} {'points/s':>9} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'err':>4} {'API cores':>9} {'PG cores':>9} {'bench cores':>11} "
          f"{'busy %':>7} {'others':>7} {'PG conns':>8}")
    for name, a in apis.items():
        for kind in API_KINDS:
            r = a[kind]
            print(f"  {name:<16} {kind:<10} {r['requests_per_s']:>7.0f} "
                  f"{r['points_per_s']:>9.0f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} "
                  f"{r['errors']:>4} {r['api_cores']:>9.2f} {r['postgres_cores']:>9.2f} "
                  f"{r['bench_cores']:>11.2f} {r['machine_busy_pct']:>7.0f} "
                  f"{r['other_cores']:>7.2f} "
                  f"{r['pg_connections_peak']:>8}"
                  + (f"  CPU s per process {r['process_cpu_s']}, connections "
                     f"{r['connections_per_process']}" if len(r["process_cpu_s"]) > 1 else ""))
        print(f"  {name:<16} {a['acknowledged_points']} points acknowledged: {a['lost']} lost, "
              f"{a['stored_unacknowledged']} stored without an acknowledgement")
    one, two = apis["postgresql_1"], apis["postgresql_2"]
    print(f"  two processes vs one on PostgreSQL: 1,000-point batches "
          f"{two['batch1000']['requests_per_s'] / one['batch1000']['requests_per_s']:.2f}x, "
          f"status {two['status']['requests_per_s'] / one['status']['requests_per_s']:.2f}x")
    print(f"\n(d) GPU workers one API + PostgreSQL + Redis serves here, at {G:g} steps/s each")
    for k, r in table["rows"].items():
        print(f"  {k:<24} {r['workers']:>7.0f} workers   ceiling {r['ceiling']}")
        print(f"  {'':<24} {'':>15}   per worker {r['per_worker']}")
    print(f"  Celery/SLURM workers write to the database directly (the api_* rows are "
          f"training scripts logging through the API instead): {table['first']} saturates "
          f"first, then {table['then']}; checkpoints add "
          f"{table['checkpoint_mb_per_s']:.1f} MB/s per worker to the shared artifact store "
          "(not measured here)")


if __name__ == "__main__":
    main()
