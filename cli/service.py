"""Running the service: ``neuroreg up`` (API, worker and the first-start demo in one
process tree), ``neuroreg api`` and ``neuroreg worker``."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any

from core.settings import Settings, owner_only, private_dir, private_file
from ml import presets
from neuroreg.settings import forget_server, record_server, servers_file

log = logging.getLogger("cli")

DEMO_NAME = "demo: small CNN on digits32"
DEMO_CONFIG: dict[str, Any] = {
    "dataset": "digits32",
    "backbone": "small_cnn",
    "width": 24,
    "epochs": 20,
    "lr": 0.02,
    "seed": 0,
}


# the paper in miniature (ml.presets: what bench/reproduce.py measures), chained on first
# start: a simulated similarity run, then a study of None vs Neural (model) × 3 seeds that
# trains toward it and evaluates every model
DEMO_SIMILARITY_NAME = "demo: simulated mouse V1, small"
DEMO_SIMILARITY: dict[str, Any] = presets.SIMILARITY
DEMO_STUDY_NAME = "demo: None vs Neural (model), 3 seeds"
DEMO_STUDY: dict[str, Any] = {
    "conditions": ["none", "neural-model"],
    "seeds": presets.SEEDS,
    "alphas": [presets.ABLATION_ALPHA],
    "train": dict(presets.TRAIN),
    "evaluate": dict(presets.EVALUATE),
    "note": presets.NOTE,
}


def _env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process this process's settings."""
    env = dict(os.environ)
    for name, value in settings.model_dump(mode="json").items():
        if value not in (None, ""):  # lists (webhook_backoff_s) as JSON, as they are read
            env[f"NEUROREG_{name.upper()}"] = (json.dumps(value) if isinstance(value, list | dict)
                                               else str(value))
    return env


def worker_command(queues: str, concurrency: int, pool: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.app",
        "worker",
        "-Q",
        queues,
        "-c",
        str(concurrency),
        "--pool",
        pool,
        "-l",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]


def _private_files() -> None:
    """What this process and its children (the worker, its pool) create is the service
    user's alone (0600 files, 0700 folders): the store makes its own files private, this
    covers the rest (checkpoints a library writes, SLURM's logs)."""
    os.umask(0o077)


def _admin_token(settings: Settings) -> str:
    """Create the first admin on first start; its token is kept (mode 600) for the CLI."""
    from core.store.db import session_scope
    from core.store.users import ensure_admin

    with session_scope(settings.db_url) as s:
        token = ensure_admin(s)
    if token is not None:
        private_dir(settings.token_file.parent)
        private_file(settings.token_file)
        settings.token_file.write_text(token + "\n")
    if settings.token_file.exists():  # one an older version left readable
        owner_only(settings.token_file)
    return settings.token_file.read_text().strip() if settings.token_file.exists() else ""


def _submit_demo(settings: Settings, app: Any) -> int | None:
    """On first start (no runs yet): the small train run and the demo similarity run (the
    study follows it: :func:`_demo_study`). Returns the train run's id."""
    from core.kinds import KINDS, stored_config
    from core.store.db import session_scope
    from core.store.models import Run, User
    from core.submit import submit_run

    with session_scope(settings.db_url) as s:
        if s.query(Run.id).first() is not None:
            return None
        admin = s.query(User).order_by(User.id).first()
        assert admin is not None
        runs = []
        for kind, name, config in (("train", DEMO_NAME, DEMO_CONFIG),
                                   ("similarity", DEMO_SIMILARITY_NAME, DEMO_SIMILARITY)):
            cfg = KINDS[kind].config_type(**config)  # validated like any request
            runs.append(submit_run(s, app.state.celery, owner=admin, kind=kind, name=name,
                                   config=stored_config(kind, cfg)))
        return runs[0].id


def _demo_study(settings: Settings, app: Any) -> int | None:
    """Submit the demo study once the demo similarity run has succeeded (checked again on
    every start, so a restart in between still gets it). Returns its id once submitted;
    None while there is nothing (more) to do."""
    from sqlalchemy import select

    from core.inputs import check_inputs
    from core.kinds import KINDS
    from core.store.db import session_scope
    from core.store.models import Run, RunStatus
    from core.submit import submit_run

    with session_scope(settings.db_url) as s:
        named = {r.name: r for r in s.execute(select(Run).where(
            Run.name.in_([DEMO_SIMILARITY_NAME, DEMO_STUDY_NAME]))).scalars()}
        sim = named.get(DEMO_SIMILARITY_NAME)
        if DEMO_STUDY_NAME in named or sim is None or sim.status is not RunStatus.succeeded:
            return None
        cfg = KINDS["study"].config_type(**{**DEMO_STUDY, "target_run": sim.id})
        reads = check_inputs(s, settings, kind="study", config=cfg)
        run = submit_run(s, app.state.celery, owner=sim.owner, kind="study",
                         name=DEMO_STUDY_NAME, config=dataclasses.asdict(cfg),
                         input_run_id=reads)
        return run.id


def _follow_demo(settings: Settings, app: Any, stop: threading.Event) -> None:
    """While `neuroreg up` runs: wait for the demo similarity run to finish, then submit
    the study (if it succeeded and there is none yet)."""
    from core.store.db import session_scope
    from core.store.models import Run

    while not stop.wait(5.0):
        try:
            with session_scope(settings.db_url) as s:
                sim = s.query(Run).filter(Run.name == DEMO_SIMILARITY_NAME).first()
                waiting = sim is not None and not sim.status.finished
            if not waiting:
                _demo_study(settings, app)
                return
        except Exception:  # noqa: BLE001 — the demo must never take the service down
            log.warning("demo study not submitted", exc_info=True)
            return


class _Stop(BaseException):
    """SIGTERM or SIGHUP reached ``neuroreg up``."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop(signum)


def _stop_worker(worker: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM to the worker's process group (its pool processes too), SIGKILL to what
    is left after ``grace`` seconds; a task cut short is redelivered and resumes."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)  # pool processes the main one left behind
    worker.wait()


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    """The API, a worker and the demo. SIGINT (Ctrl-C), SIGTERM and SIGHUP all stop
    every process it started: uvicorn shuts down gracefully, then re-raises the signal
    under the handler it found, which here unwinds to the cleanup instead of killing
    this process on the spot."""
    import uvicorn

    from server.app import create_app

    _private_files()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    token = _admin_token(settings)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_stop)
    # its own process group: the signals reach it from us, once, and killpg finds its pool
    worker = subprocess.Popen(worker_command("gpu,cpu", args.concurrency, "prefork"),
                              env=_env(settings), start_new_session=True)
    stop = threading.Event()
    try:
        demo = None if args.no_demo else _submit_demo(settings, app)
        if not args.no_demo:  # the demo study follows its similarity run
            threading.Thread(target=_follow_demo, args=(settings, app, stop),
                             daemon=True).start()
        print(f"\n  neuroreg is starting on {settings.url}\n", flush=True)
        print(f"  data directory : {settings.data_dir}")
        print(f"  admin token    : {token}")
        print(f"  open           : {settings.url}/#token={token}")
        if demo is not None:
            print(f"  demo run       : {settings.url}/runs/{demo} (training now)")
            print(f"  demo study     : a similarity run, then None vs Neural (model) × 3 "
                  f"seeds, seed by seed, each model trained and attacked (the first pair "
                  f"in 5–10 minutes on 2 idle CPU cores, all six in about a quarter of an "
                  f"hour): {settings.url}/")
        print("  stop with Ctrl-C\n", flush=True)
        with _recorded(settings):
            uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    except (_Stop, KeyboardInterrupt):
        pass
    finally:
        stop.set()
        _stop_worker(worker)
    return 0


def _record(settings: Settings) -> None:
    """Note in the user's state file that this process serves ``settings.url`` from its
    data directory, so that a client on this machine naming neither a token nor a data
    directory finds its admin token (:mod:`neuroreg.settings`). Never fatal."""
    try:
        record_server(settings.url, settings.data_dir, os.getpid())
    except OSError as exc:
        log.warning("not recorded in %s (%s): a client needs NEUROREG_DATA_DIR or "
                    "NEUROREG_TOKEN to find this server's admin token", servers_file(), exc)


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    """The API in one process, or ``--workers N`` uvicorn processes sharing one listening
    socket (the kernel hands each connection to one of them). Each process runs its own
    reaper and webhook dispatcher: both move a row only by a conditional UPDATE (the run
    still running with a stale beat; the delivery still pending and due), so one process
    wins each and nothing is requeued or sent twice."""
    import uvicorn

    _private_files()
    workers = getattr(args, "workers", 1)
    if workers > 1:
        from core.store.db import migrate

        migrate(settings.db_url)  # once, here: the processes then find the schema at head
        _admin_token(settings)
        os.environ.update(_env(settings))  # what each process's get_settings() reads
        with _recorded(settings):
            uvicorn.run("server.app:create_app", factory=True, workers=workers,
                        host=settings.host, port=settings.port, log_level="info")
        return 0
    from server.app import create_app

    app = create_app(settings)
    _admin_token(settings)
    with _recorded(settings):
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    return 0


@contextlib.contextmanager
def _recorded(settings: Settings) -> Any:
    """:func:`_record` while the block runs."""
    _record(settings)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            forget_server(settings.url, os.getpid())


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from core.store.db import migrate

    _private_files()
    if settings.worker_token:  # over the API: no database here (worker/backend.py)
        from core.work import worker_token_problem

        problem, token = worker_token_problem(settings.url, settings.worker_token)
        if problem:
            print(f"neuroreg worker: {problem}", file=sys.stderr)
            return 2
        print(f"worker over the API at {settings.url}, as worker token {token['token']!r} "
              f"of {token['user']}; no database here", file=sys.stderr)
    else:
        migrate(settings.db_url)
    cmd = worker_command(args.queues, args.concurrency, args.pool)
    os.execvpe(cmd[0], cmd, _env(settings))
    return 0  # not reached
