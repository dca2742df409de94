"""``neuroreg slurm up|status|down``: workers as SLURM jobs (core/slurm.py)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from cli.commands import UsageError

if TYPE_CHECKING:  # the service's settings: imported when the command runs
    from core.settings import Settings


def add_parser(sub: Any) -> None:
    """The ``slurm`` command and its actions on the CLI's subparsers."""
    sl = sub.add_parser("slurm", help="run workers as SLURM jobs (submitit): up, status, down")
    sl.set_defaults(service=True)  # the service's settings: its database, broker, SLURM
    actions = sl.add_subparsers(dest="action", required=True, help="up, status or down")
    up = actions.add_parser(
        "up", help="submit workers as SLURM jobs, each a `neuroreg worker` on the gpu queue "
        "pointed at this configuration's database, broker and artifact store")
    up.add_argument("--workers", type=int, help="jobs to submit (NEUROREG_SLURM_WORKERS; 1)")
    up.add_argument("--gpus-per-worker", type=int,
                    help="GPUs each job asks for (NEUROREG_SLURM_GPUS_PER_WORKER; 1)")
    up.add_argument("--partition", help="the partition (NEUROREG_SLURM_PARTITION)")
    up.add_argument("--time", help="each job's time limit, Slurm's format: 4:00:00, 90, "
                    "1-12:00:00 (NEUROREG_SLURM_TIME; 4:00:00)")
    up.add_argument("--account", help="the account to charge (NEUROREG_SLURM_ACCOUNT)")
    up.add_argument("--qos", help="quality of service (NEUROREG_SLURM_QOS)")
    up.add_argument("--cpus-per-worker", type=int,
                    help="CPUs per job (NEUROREG_SLURM_CPUS_PER_WORKER)")
    up.add_argument("--mem", help="memory per job, e.g. 32G (NEUROREG_SLURM_MEM)")
    up.add_argument("--array", action="store_true", default=None,
                    help="submit the workers as one job array (NEUROREG_SLURM_ARRAY)")
    up.add_argument("--signal-delay", type=int, dest="signal_delay_s",
                    help="seconds before a time limit or preemption the job is told to "
                    "stop (NEUROREG_SLURM_SIGNAL_DELAY_S; 120)")
    up.add_argument("--setup", action="append",
                    help="a shell line the job runs before the worker, e.g. 'module load "
                    "cuda' (repeatable; NEUROREG_SLURM_SETUP)")
    up.add_argument("--sbatch", action="append", metavar="OPTION=VALUE",
                    help="any other sbatch option, e.g. --sbatch constraint=a100 (repeatable)")
    up.set_defaults(func=cmd_up)
    st = actions.add_parser("status", help="the submitted jobs, their state and their runs")
    st.add_argument("--json", action="store_true", help="as JSON")
    st.set_defaults(func=cmd_status)
    down = actions.add_parser("down", help="cancel every submitted worker job (their runs "
                              "go back to the queue and resume from their checkpoints)")
    down.set_defaults(func=cmd_down)


def _pick(flag: Any, setting: Any) -> Any:
    """The flag when given, else the setting."""
    return setting if flag is None else flag


def _options(args: argparse.Namespace, settings: Settings) -> Any:
    from core.slurm import SlurmError, SlurmOptions, parse_time

    extra = {}
    for item in args.sbatch or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--sbatch {item!r}: write OPTION=VALUE, e.g. constraint=a100")
        extra[key.strip().lstrip("-")] = value
    try:
        options = SlurmOptions(
            workers=_pick(args.workers, settings.slurm_workers),
            gpus_per_worker=_pick(args.gpus_per_worker, settings.slurm_gpus_per_worker),
            partition=_pick(args.partition, settings.slurm_partition),
            time_min=parse_time(_pick(args.time, settings.slurm_time)),
            account=_pick(args.account, settings.slurm_account),
            qos=_pick(args.qos, settings.slurm_qos),
            cpus_per_worker=_pick(args.cpus_per_worker, settings.slurm_cpus_per_worker),
            mem=_pick(args.mem, settings.slurm_mem),
            array=_pick(args.array, settings.slurm_array),
            signal_delay_s=_pick(args.signal_delay_s, settings.slurm_signal_delay_s),
            setup=tuple(_pick(args.setup, list(settings.slurm_setup))),
            extra=extra)
    except SlurmError as exc:
        raise UsageError(str(exc)) from None
    if options.workers < 1 or options.gpus_per_worker < 0:
        raise UsageError("--workers is at least 1 and --gpus-per-worker at least 0")
    return options


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from core.slurm import SlurmError, submit_workers
    from core.store.db import migrate

    options = _options(args, settings)
    folder = settings.slurm_folder
    folder.mkdir(parents=True, exist_ok=True)
    try:
        jobs = submit_workers(settings, options, folder)
    except SlurmError as exc:
        raise UsageError(str(exc)) from None
    if not settings.worker_token:  # (over the API, the server migrated its own)
        migrate(settings.db_url)  # the workers find the schema they expect
    print(f"submitted {len(jobs)} worker job{'s' * (len(jobs) != 1)}"
          f"{' (one array)' if options.array else ''}: {' '.join(j['job_id'] for j in jobs)}")
    print(f"  {options.gpus_per_worker} GPU(s) each, time limit {options.time_min} min"
          f"{', partition ' + options.partition if options.partition else ''}; logs in {folder}")
    print("  `neuroreg slurm status` lists them with their runs; `neuroreg slurm down` "
          "cancels them")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from core.slurm import SlurmError, job_status
    from core.store.db import session_scope

    try:
        with session_scope(settings.db_url) as s:
            jobs = job_status(s, settings.slurm_folder)
    except SlurmError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(jobs, indent=1))
        return 0
    if not jobs:
        print(f"no worker jobs submitted from {settings.slurm_folder} "
              "(`neuroreg slurm up` submits them)")
        return 0
    print(f"{'job':>12}  {'state':<11}{'time':>10}{'limit':>11}  where / runs")
    for j in jobs:
        runs = ", ".join(f"#{r['id']} {r['kind']} {r['name'] or ''} "
                         f"{round(100 * r['progress'])}%".replace("  ", " ")
                         for r in j["runs"]) or "idle"
        print(f"{j['job_id']:>12}  {j['state']:<11}{j['time']:>10}{j['limit']:>11}  "
              f"{j['where']}: {runs}" if j["where"] else
              f"{j['job_id']:>12}  {j['state']:<11}{j['time']:>10}{j['limit']:>11}  {runs}")
    return 0


def cmd_down(args: argparse.Namespace, settings: Settings) -> int:
    from core.slurm import SlurmError, cancel_jobs

    try:
        cancelled = cancel_jobs(settings.slurm_folder)
    except SlurmError as exc:
        raise UsageError(str(exc)) from None
    print(f"cancelled {len(cancelled)} job(s): {' '.join(cancelled)}" if cancelled
          else "no worker job was still queued or running")
    return 0
