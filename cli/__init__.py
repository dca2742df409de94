"""The ``neuroreg`` command line: run the service, submit runs, list them.

One module per concept: :mod:`cli.service` runs the service (``up``, ``api``,
``worker``), :mod:`cli.commands` talks to a server through
:class:`neuroreg.client.Client`, :mod:`cli.datasets` lists and downloads CIFAR. A
refused request prints the server's reason on one line (``error 422: config.epochs: …``)
and exits 1, an unreachable server says which URL; never a traceback.

A client command imports the Python client and nothing of the service: ``neuroreg --help``
and ``neuroreg runs`` start in the time Python and one request take (bench/cli_startup.py).
The service commands (``up``, ``api``, ``worker``, ``datasets``, ``slurm``) import core,
the server and ml when they run, and only they read the service's settings.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from cli import (
    alignment,
    logs,
    manage,
    projects,
    report,
    slurm,
    storage,
    sync,
    team,
    transfer,
    webhooks,
)
from cli._terminal import say
from cli.commands import (
    SET_VALUES,
    UsageError,
    cmd_frontier,
    cmd_gamma,
    cmd_leaderboard,
    cmd_record,
    cmd_recordings,
    cmd_robustness,
    cmd_runs,
    cmd_submit,
    load_run_file,
    print_frontier,
)
from cli.datasets import cmd_datasets
from neuroreg.client import NeuroregError
from neuroreg.settings import ClientSettings

__all__ = ["build_parser", "cmd_datasets", "cmd_frontier", "cmd_leaderboard",
           "load_run_file", "main", "print_frontier"]


def _service(name: str) -> Callable[[argparse.Namespace, Any], int]:
    """``cli.service``'s command ``name``, imported when it runs: it starts core, the
    server and ml, which a client command (or ``--help``) never waits for."""
    def run(args: argparse.Namespace, settings: Any) -> int:
        return int(getattr(importlib.import_module("cli.service"), name)(args, settings) or 0)
    return run


def _service_options(p: argparse.ArgumentParser) -> None:
    """``--port`` and ``--data-dir`` after a service command (``neuroreg up --port 8010``)."""
    p.add_argument("--port", type=int, default=argparse.SUPPRESS,
                   help="port the API listens on (NEUROREG_PORT; default 8000)")
    p.add_argument("--data-dir", default=argparse.SUPPRESS,
                   help="where the database, artifacts and broker live (NEUROREG_DATA_DIR)")


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value}: at least 1")
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuroreg", description="neuroreg: run the service, submit runs, read results.")
    parser.add_argument("--data-dir", help="override NEUROREG_DATA_DIR")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="API, dashboard and a worker in one process tree")
    up.add_argument("--no-demo", action="store_true", help="don't submit the first-start demo")
    up.add_argument("--concurrency", type=int, default=1,
                    help="runs the worker trains at once (default 1)")
    _service_options(up)
    up.set_defaults(func=_service("cmd_up"), service=True)
    api = sub.add_parser("api", help="the API and dashboard only")
    api.add_argument("--workers", type=_positive, default=1,
                     help="uvicorn processes sharing the port (default 1); each has "
                     "its own database pool, reaper and webhook dispatcher")
    _service_options(api)
    api.set_defaults(func=_service("cmd_api"), service=True)
    w = sub.add_parser("worker", help="a Celery worker")
    w.add_argument("--queues", default="gpu,cpu",
                   help="queues to take tasks from: gpu (train, similarity, evaluate), cpu "
                   "(studies, dashboard views); default both")
    w.add_argument("--concurrency", type=int, default=1,
                   help="tasks it runs at once (default 1)")
    w.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"],
                   help="Celery's execution pool (default prefork)")
    w.set_defaults(func=_service("cmd_worker"), service=True)
    s = sub.add_parser("submit", help="submit a run described in a YAML or JSON file")
    s.add_argument("config", help="the run file (kind, name, config), e.g. "
                   "examples/train-neural.yaml")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a field of the run file, e.g. --set epochs=2 or --set "
                   "config.train_run=7 (repeatable); " + SET_VALUES)
    s.add_argument("--project", help="the project it goes into, by name or id (default: "
                   "the run file's project, else its parent's, else your default one)")
    s.add_argument("--wait", action="store_true", help="show progress until it finishes")
    s.add_argument("--check", action="store_true",
                   help="only check the run file against the server and print it as the "
                   "server would run it (YAML, every default filled in); submit nothing")
    s.set_defaults(func=cmd_submit)
    r = sub.add_parser("runs", help="list runs")
    r.add_argument("--kind", help="only runs of this kind (train, similarity, evaluate, study, "
                   "external)")
    r.add_argument("--status", help="only runs in this status (queued, running, succeeded, "
                   "failed, cancelled)")
    r.add_argument("--owner", help="only this user's runs")
    r.add_argument("--project", help="only the runs of this project (a name, or an id); "
                   "with -q, both")
    r.add_argument("-q", "--query", help='a query: \'config.alpha >= 8 and '
                   'metrics.test_acc.last > 0.9 and (tag = "fig4" or tag = "fig6")\'')
    r.add_argument("--sort", help="a config or metric field to sort by (config.alpha, "
                   "metrics.test_acc.max), or id, name, kind, status, owner, project, parent, "
                   "created, started or finished")
    r.add_argument("--desc", action="store_true", help="with --sort: highest first")
    r.add_argument("--limit", type=int, default=20, help="how many, newest first (default 20)")
    r.add_argument("--json", action="store_true", help="the server's JSON page as is")
    r.set_defaults(func=cmd_runs)
    rec = sub.add_parser("recordings", help="recordings on the server that similarity runs "
                         "can read; `recordings inspect PATH`: what the importer takes")
    rec.add_argument("action", nargs="?", choices=["list", "inspect"], default="list",
                     help="list (default): what the server holds; inspect: what the importer "
                     "takes from PATH")
    rec.add_argument("path", nargs="?", help="inspect: a local file or folder, else a "
                     "recording's name on the server")
    rec.add_argument("--responses", help="the RoiResponseSeries, by path or name")
    rec.add_argument("--intervals", help="the presentation table or IndexSeries")
    rec.add_argument("--template", help="the stimulus template, when there are several")
    rec.add_argument("--image-column", help="the table's frame column")
    rec.add_argument("--allow-missing-behavior", action="store_true", default=None,
                     help="zeros for missing pupil/running series")
    rec.add_argument("--behavior-gaps", choices=["error", "fill", "drop"],
                     help="a presentation a behaviour series has no sample in")
    rec.add_argument("--response-offset", type=float, help="seconds from onset")
    rec.add_argument("--response-window", type=float, help="seconds")
    rec.add_argument("--frame-fit", choices=["refuse", "crop", "pad"],
                     help="frames that are not 9:16")
    rec.add_argument("--json", action="store_true", help="the report as JSON")
    rec.set_defaults(func=cmd_recordings)
    g = sub.add_parser("gamma", help="final γ per tapped layer, averaged over seeds (Table 1)")
    g.add_argument("runs", nargs="*", type=int, help="train run ids (default: all finished)")
    g.set_defaults(func=cmd_gamma)
    rb = sub.add_parser("robustness", help="noise accuracy and perturbation medians, "
                        "mean ± SEM over seeds per condition (Fig. 4, 5)")
    rb.add_argument("runs", nargs="*", type=int, help="evaluate run ids (default: all finished)")
    rb.set_defaults(func=cmd_robustness)
    fr = sub.add_parser("frontier", help="clean accuracy against robustness per condition "
                        "and α, and each condition vs None at matched clean accuracy")
    fr.add_argument("study", type=int, help="study run id")
    fr.add_argument("--tolerance", type=float, default=None,
                    help="largest clean-accuracy gap to None that counts as matched "
                    "(a fraction; default the server's, 0.02)")
    fr.add_argument("--json", action="store_true", help="the server's JSON as is")
    fr.set_defaults(func=cmd_frontier)
    lb = sub.add_parser("leaderboard", help="every evaluated model ranked RobustBench's way: "
                        "AutoAttack at one ε, corruptions, clean accuracy, medians")
    lb.add_argument("--sort", default="autoattack_linf",
                    help="the column to rank by: autoattack_linf (default), autoattack_l2, "
                    "clean_acc, corruptions_acc, median_l2, ...; the server names them all "
                    "when one is not a column")
    lb.add_argument("--order", choices=("desc", "asc"), default="desc",
                    help="desc (default): best first")
    lb.add_argument("--eps-linf", type=float, help="the L∞ ε the AutoAttack column ranks "
                    "(default the server's, 8/255)")
    lb.add_argument("--eps-l2", type=float, help="the L2 ε (default the server's, 0.5)")
    for name in ("dataset", "target", "owner"):
        lb.add_argument(f"--{name}", help=f"only models with this {name}")
    lb.add_argument("--study", type=int, help="only models trained by this study")
    lb.add_argument("--limit", type=int, default=50, help="how many rows (default 50)")
    lb.add_argument("--json", action="store_true", help="the server's JSON page as is")
    lb.set_defaults(func=cmd_leaderboard)
    rc = sub.add_parser("record", help="save the RobustBench-style record of an evaluate "
                        "run as JSON")
    rc.add_argument("run", type=int, help="evaluate run id")
    rc.add_argument("-o", "--out", default=".", help="a file, or a folder for "
                    "neuroreg-record-<id>.json (default: here); - prints it")
    rc.set_defaults(func=cmd_record)
    d = sub.add_parser("datasets", help="list or download the CIFAR archives train runs read")
    d.add_argument("action", choices=["list", "download"], nargs="?", default="list",
                   help="list what is there (default) or download the archives")
    d.add_argument("names", nargs="*", help="cifar10 and/or cifar100 (default: both)")
    d.set_defaults(func=cmd_datasets, service=True)
    webhooks.add_parser(sub)
    team.add_parser(sub)
    projects.add_parser(sub)
    logs.add_parser(sub)
    manage.add_parser(sub)
    slurm.add_parser(sub)
    sync.add_parser(sub)
    report.add_parser(sub)
    transfer.add_parser(sub)
    alignment.add_parser(sub)
    storage.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; every error is one line on stderr and exit status 1 (``--debug``:
    the traceback instead). Output cut short by its reader (``neuroreg runs | head -1``)
    ends the command quietly with status 141, as a Unix tool that SIGPIPE stops."""
    try:
        return _main(argv)
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """stdout's reader has gone: the rest of the output goes nowhere (so Python's flush
    at exit raises nothing), and the status is SIGPIPE's, 128 + 13."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 128 + signal.SIGPIPE


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ValueError as exc:  # a bad NEUROREG_* value: pydantic names the field
        print(f"error: settings: {_first_line(exc)}", file=sys.stderr)
        return 1
    try:
        code = int(args.func(args, settings) or 0)
        sys.stdout.flush()  # here, so that a reader gone shows before Python's exit
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:
        if args.debug:
            raise
        say(f"error{_explain(exc, settings)}", file=sys.stderr)  # it may quote a member
        if not isinstance(exc, NeuroregError | UsageError | httpx.TransportError):
            print("(run again with --debug for the traceback)", file=sys.stderr)
        return 1


def _settings(args: argparse.Namespace) -> Any:
    """A service command's :class:`core.settings.Settings`; a client command's
    :class:`neuroreg.settings.ClientSettings` (the same variables, without the service)."""
    changed = False
    for name, env in (("data_dir", "NEUROREG_DATA_DIR"), ("port", "NEUROREG_PORT")):
        value = getattr(args, name, None)
        if value is not None:
            os.environ[env] = str(Path(value).resolve()) if name == "data_dir" else str(value)
            changed = True
    if not getattr(args, "service", False):
        return ClientSettings.from_env()
    from core.settings import get_settings

    if changed:
        get_settings.cache_clear()
    return get_settings()


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:3]) if lines else type(exc).__name__


def _explain(exc: Exception, settings: Any) -> str:
    """What went wrong, after ``error``: the server's reason, the file, or the URL."""
    if isinstance(exc, NeuroregError):  # the server's reason, one line
        return f" {exc}"
    if isinstance(exc, UsageError):
        return f": {exc}"
    if isinstance(exc, httpx.TransportError):
        return (f": cannot reach the neuroreg server at {settings.url} "
                f"({type(exc).__name__}); is it running? Start it with `neuroreg up`, or "
                "point NEUROREG_API_URL (or NEUROREG_PORT) at it")
    if isinstance(exc, OSError) and exc.filename:
        return f": {exc.filename}: {exc.strerror or exc}"
    return f": {type(exc).__name__}: {_first_line(exc)}"


if __name__ == "__main__":
    raise SystemExit(main())
