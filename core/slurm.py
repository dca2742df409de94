"""Workers as SLURM jobs (``neuroreg slurm up|status|down``), through submitit.

Each job is an ordinary ``neuroreg worker`` on the ``gpu`` queue, pointed at the team's
database, broker and artifact store — whatever a worker on any other machine is. What a
cluster adds is an end: a job reaches its time limit, is preempted, or is requeued
(``scontrol requeue``). Then:

1. Slurm signals the job — USR2 ``signal_delay_s`` before a time limit or a preemption
   (submitit's ``--signal``), SIGTERM on a requeue or cancel;
2. the worker shuts down warm: its running task stops at the next step (the recorder's
   :func:`ml.recorder.Recorder.should_stop`), the run goes back to ``queued`` with a new
   queue message (:func:`worker.tasks.execute`), and nothing else is taken;
3. submitit requeues the job (a requeue by Slurm itself needs nothing more), and the run
   resumes from its last checkpoint in whichever worker takes it — another job, or this
   one once it starts again.

Metric points are keyed by (run, key, step), so the steps a resumed run trains again are
stored once. Jobs are tracked in ``<folder>/jobs.json`` (the folder must be on a file
system the compute nodes share, as submitit's own logs are).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.settings import Settings

JOB_NAME = "neuroreg-worker"
# the settings a worker needs, passed to each job as they are where `slurm up` runs
WORKER_ENV = ("NEUROREG_DATABASE_URL", "NEUROREG_BROKER_URL", "NEUROREG_ARTIFACT_DIR",
              "NEUROREG_DATASETS_DIR", "NEUROREG_RECORDINGS_DIR", "NEUROREG_MODELS_DIR",
              "NEUROREG_DATA_DIR", "NEUROREG_HEARTBEAT_S", "NEUROREG_STALE_AFTER_S",
              "NEUROREG_MAX_ATTEMPTS", "NEUROREG_LOG_MAX_BYTES", "NEUROREG_SYSTEM_METRICS_S")


class SlurmError(RuntimeError):
    """What stops ``neuroreg slurm``, in words a user acts on."""


def parse_time(text: str) -> int:
    """A Slurm time limit in minutes: ``minutes``, ``minutes:seconds``,
    ``hours:minutes:seconds``, ``days-hours``, ``days-hours:minutes`` or
    ``days-hours:minutes:seconds`` (seconds round up)."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise SlurmError(f"--time {text!r}: not a Slurm time (4:00:00, 90, 1-12:00:00)")
    days, a, b, c = (int(g) if g is not None else None for g in m.groups())
    assert a is not None
    if days is not None:  # days-hours[:minutes[:seconds]]
        seconds = ((days * 24 + a) * 60 + (b or 0)) * 60 + (c or 0)
    elif c is not None:   # hours:minutes:seconds
        seconds = (a * 60 + (b or 0)) * 60 + c
    elif b is not None:   # minutes:seconds
        seconds = a * 60 + b
    else:                 # minutes
        seconds = a * 60
    if seconds <= 0:
        raise SlurmError(f"--time {text!r}: a time limit must be positive")
    return -(-seconds // 60)


@dataclass(frozen=True)
class SlurmOptions:
    """What ``slurm up`` asks of the cluster (flags, else ``NEUROREG_SLURM_*``)."""

    workers: int = 1
    gpus_per_worker: int = 1
    partition: str | None = None
    time_min: int = 240
    account: str | None = None
    qos: str | None = None
    cpus_per_worker: int | None = None
    mem: str | None = None
    array: bool = False
    signal_delay_s: int = 120
    setup: tuple[str, ...] = ()           # shell lines before the worker starts
    extra: Mapping[str, str] = field(default_factory=dict)  # any other sbatch option


def check_reachable(settings: Settings, folder: Path) -> list[str]:
    """What a worker on a compute node could not reach: the database, the broker, the
    artifact store or the job folder — or, for workers over the API
    (``NEUROREG_WORKER_TOKEN``), the server and the token instead of the first and third.
    Empty when all are there."""
    problems = []
    if settings.worker_token:
        from core.work import worker_token_problem

        problem, _ = worker_token_problem(settings.url, settings.worker_token)
        problems += [problem] if problem else []
    elif settings.db_url.startswith("sqlite"):
        problems.append(f"database: {settings.db_url} is this machine's SQLite file; a "
                        "compute node needs the team's database (NEUROREG_DATABASE_URL="
                        "postgresql+psycopg://…)")
    else:
        try:
            from sqlalchemy import create_engine, text

            engine = create_engine(settings.db_url, connect_args={"connect_timeout": 5})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
        except Exception as exc:  # noqa: BLE001 — reported, whatever the driver raises
            problems.append(f"database: cannot connect to {_safe(settings.db_url)} "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
    if settings.broker.startswith("filesystem"):
        problems.append("broker: the embedded filesystem queue is this machine's; a "
                        "compute node needs the team's broker (NEUROREG_BROKER_URL="
                        "redis://…)")
    else:
        try:
            from kombu import Connection

            with Connection(settings.broker, connect_timeout=5) as conn:  # type: ignore[no-untyped-call]
                conn.ensure_connection(max_retries=1, timeout=5)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"broker: cannot connect to {_safe(settings.broker)} "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
    shared = [] if settings.worker_token else [("artifact store", settings.artifacts)]
    for what, path in (*shared, ("job folder", folder)):
        problem = _writable(path)
        if problem:
            problems.append(f"{what}: {path} {problem}")
    if not shutil.which("sbatch"):
        problems.append("sbatch: not on PATH (run this where Slurm's commands are)")
    return problems


def _writable(path: Path) -> str | None:
    if not path.is_dir():
        return ("does not exist (create it on a file system the compute nodes mount, or "
                "point the setting at one)")
    probe = path / f".neuroreg-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"is not writable ({exc.strerror})"
    return None


def _safe(url: str) -> str:
    """A URL without its password."""
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment each job's worker gets: the worker settings as they are here,
    resolved (a relative artifact folder means nothing on a compute node)."""
    env = {k: os.environ[k] for k in WORKER_ENV if k in os.environ}
    if settings.worker_token:  # over the API: no database URL, no shared artifact folder
        env = {k: v for k, v in env.items()
               if k not in ("NEUROREG_DATABASE_URL", "NEUROREG_ARTIFACT_DIR")}
        env.update({"NEUROREG_API_URL": settings.url,
                    "NEUROREG_WORKER_TOKEN": settings.worker_token,
                    "NEUROREG_BROKER_URL": settings.broker,
                    "NEUROREG_DATASETS_DIR": str(settings.datasets),
                    "NEUROREG_REQUEUE_ON_SHUTDOWN": "true"})
        return env
    env.update({"NEUROREG_DATABASE_URL": settings.db_url,
                "NEUROREG_BROKER_URL": settings.broker,
                "NEUROREG_ARTIFACT_DIR": str(settings.artifacts),
                "NEUROREG_DATASETS_DIR": str(settings.datasets),
                "NEUROREG_RECORDINGS_DIR": str(settings.recordings),
                "NEUROREG_MODELS_DIR": str(settings.models),
                "NEUROREG_REQUEUE_ON_SHUTDOWN": "true"})
    return env


class SlurmWorker:
    """The job's callable: a ``neuroreg worker`` process that shuts down warm when the job
    is signalled, then asks submitit to requeue the job (its ``checkpoint``)."""

    def __init__(self, env: Mapping[str, str], queues: str = "gpu", grace_s: float = 100):
        self.env, self.queues, self.grace_s = dict(env), queues, grace_s
        self._proc: subprocess.Popen[bytes] | None = None

    def __getstate__(self) -> dict[str, Any]:  # pickled into the requeued job: no process
        return {"env": self.env, "queues": self.queues, "grace_s": self.grace_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._proc = None

    def __call__(self) -> int:
        env = {**os.environ, **self.env}
        cmd = [sys.executable, "-m", "cli", "worker", "--queues", self.queues,
               "--concurrency", "1", "--pool", "solo"]
        self._proc = subprocess.Popen(cmd, env=env)
        # a requeue or cancel (SIGTERM to every process of the job): the worker gets its
        # own and shuts down warm; this process waits for it (submitit would only log it)
        signal.signal(signal.SIGTERM, lambda *_: self._stop(wait=False))
        rc = self._proc.wait()
        return rc

    def _stop(self, *, wait: bool) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # warm: the task stops at its next step
        if not wait:
            return
        try:
            proc.wait(timeout=self.grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit on USR2 (time limit or preemption ahead): stop the worker
        warm, then requeue this job with the same callable."""
        import submitit

        self._stop(wait=True)
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _jobs_file(folder: Path) -> Path:
    return folder / "jobs.json"


def recorded_jobs(folder: Path) -> list[dict[str, Any]]:
    path = _jobs_file(folder)
    if not path.exists():
        return []
    try:
        return list(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise SlurmError(f"{path}: unreadable ({exc}); delete it to start afresh") from exc


def _record(folder: Path, jobs: list[dict[str, Any]]) -> None:
    path = _jobs_file(folder)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(jobs, indent=1))
    tmp.replace(path)


def submit_workers(settings: Settings, options: SlurmOptions, folder: Path
                   ) -> list[dict[str, Any]]:
    """Check every part a worker needs is reachable, then submit ``options.workers``
    jobs (one array when ``options.array``). Returns the jobs submitted.

    Raises:
        SlurmError: naming each part that is missing; nothing was submitted.
    """
    problems = check_reachable(settings, folder)
    if problems:
        raise SlurmError("nothing submitted:\n  " + "\n  ".join(problems))
    import submitit

    executor = submitit.SlurmExecutor(folder=str(folder / "%j"), max_num_timeout=1000)
    params: dict[str, Any] = {
        "job_name": JOB_NAME, "time": options.time_min, "nodes": 1, "ntasks_per_node": 1,
        "signal_delay_s": options.signal_delay_s, "stderr_to_stdout": True,
        "additional_parameters": {"requeue": True, **dict(options.extra)}}
    if options.gpus_per_worker:
        params["gpus_per_node"] = options.gpus_per_worker
    for key, value in (("partition", options.partition), ("account", options.account),
                       ("qos", options.qos), ("cpus_per_task", options.cpus_per_worker),
                       ("mem", options.mem)):
        if value is not None:
            params[key] = value
    if options.setup:
        params["setup"] = list(options.setup)
    if options.array:
        params["array_parallelism"] = options.workers
    executor.update_parameters(**params)
    env = worker_env(settings)
    workers = [SlurmWorker(env, grace_s=max(10, options.signal_delay_s - 20))
               for _ in range(options.workers)]
    if options.array:
        with executor.batch():
            jobs = [executor.submit(w) for w in workers]
    else:
        jobs = [executor.submit(w) for w in workers]
    now = time.time()
    submitted = [{"job_id": str(j.job_id), "submitted_at": now, "options": asdict(options)}
                 for j in jobs]
    _record(folder, recorded_jobs(folder) + submitted)
    return submitted


def squeue(job_ids: list[str]) -> dict[str, dict[str, str]]:
    """Slurm's view of ``job_ids`` (those it still knows): state, reason, node, time."""
    if not job_ids:
        return {}
    out = subprocess.run(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i|%T|%R|%M|%l"],
                         capture_output=True, text=True, timeout=60, check=False)
    rows = {}
    for line in out.stdout.splitlines():
        jid, state, reason, used, limit = (line.split("|") + [""] * 5)[:5]
        rows[jid.strip()] = {"state": state, "where": reason, "time": used, "limit": limit}
    return rows


def job_status(session: Any, folder: Path) -> list[dict[str, Any]]:
    """Each recorded job with Slurm's state and the runs its worker is running (a run's
    ``worker`` names the job it runs in)."""
    from sqlalchemy import select

    from core.store.models import Run, RunStatus

    jobs = recorded_jobs(folder)
    states = squeue([j["job_id"] for j in jobs])
    running = session.execute(select(Run.id, Run.name, Run.kind, Run.progress, Run.worker)
                              .where(Run.status == RunStatus.running)).all()
    out = []
    for j in jobs:
        base = j["job_id"].split("_")[0]
        runs = [{"id": r.id, "name": r.name, "kind": r.kind, "progress": r.progress}
                for r in running
                if r.worker and re.search(rf"\bslurm:{re.escape(j['job_id'])}\b|"
                                          rf"\bslurm:{re.escape(base)}\b", r.worker)]
        state = states.get(j["job_id"], {"state": "ENDED", "where": "", "time": "", "limit": ""})
        out.append({**j, **state, "runs": runs})
    return out


def cancel_jobs(folder: Path) -> list[str]:
    """scancel every recorded job Slurm still knows; forget them all."""
    jobs = recorded_jobs(folder)
    alive = list(squeue([j["job_id"] for j in jobs]))
    if alive:
        subprocess.run(["scancel", *alive], check=True, timeout=60)
    _record(folder, [])
    return alive
