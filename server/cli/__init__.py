"""The ``neuroreg`` command line: run the service, submit runs, list them.

One module per concept: :mod:`server.cli.service` runs the service (``up``, ``api``,
``worker``), :mod:`server.cli.commands` talks to a server through
:class:`neuroreg.client.Client`, :mod:`server.cli.datasets` lists and downloads CIFAR. A
refused request prints the server's reason on one line (``error 422: config.epochs: …``)
and exits 1, an unreachable server says which URL; never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import httpx

from neuroreg.client import NeuroregError
from server.cli.commands import (
    cmd_frontier,
    cmd_gamma,
    cmd_recordings,
    cmd_robustness,
    cmd_runs,
    cmd_submit,
    load_run_file,
    print_frontier,
)
from server.cli.datasets import cmd_datasets
from server.cli.service import (
    DEMO_CONFIG,
    DEMO_SIMILARITY_NAME,
    DEMO_STUDY_NAME,
    _admin_token,
    _demo_study,
    _env,
    _submit_demo,
    cmd_api,
    cmd_up,
    cmd_worker,
    worker_command,
)
from server.settings import get_settings

__all__ = ["DEMO_CONFIG", "DEMO_SIMILARITY_NAME", "DEMO_STUDY_NAME", "_admin_token",
           "_demo_study", "_env", "_submit_demo", "build_parser", "cmd_datasets",
           "cmd_frontier", "load_run_file", "main", "print_frontier", "worker_command"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neuroreg",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", help="override NEUROREG_DATA_DIR")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="API, dashboard and a worker in one process tree")
    up.add_argument("--no-demo", action="store_true", help="don't submit the first-start demo")
    up.add_argument("--concurrency", type=int, default=1)
    up.set_defaults(func=cmd_up)
    sub.add_parser("api", help="the API and dashboard only").set_defaults(func=cmd_api)
    w = sub.add_parser("worker", help="a Celery worker")
    w.add_argument("--queues", default="gpu,cpu")
    w.add_argument("--concurrency", type=int, default=1)
    w.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"])
    w.set_defaults(func=cmd_worker)
    s = sub.add_parser("submit", help="submit a run described in a YAML or JSON file")
    s.add_argument("config")
    s.add_argument("--wait", action="store_true", help="show progress until it finishes")
    s.set_defaults(func=cmd_submit)
    r = sub.add_parser("runs", help="list runs")
    r.add_argument("--kind")
    r.add_argument("--status")
    r.add_argument("--owner")
    r.add_argument("--limit", type=int, default=20)
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_runs)
    sub.add_parser(
        "recordings", help="recordings on the server that similarity runs can read"
    ).set_defaults(func=cmd_recordings)
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
    d = sub.add_parser("datasets", help="list or download the CIFAR archives train runs read")
    d.add_argument("action", choices=["list", "download"], nargs="?", default="list")
    d.add_argument("names", nargs="*", help="cifar10 and/or cifar100 (default: both)")
    d.set_defaults(func=cmd_datasets)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.data_dir:
        os.environ["NEUROREG_DATA_DIR"] = str(Path(args.data_dir).resolve())
        get_settings.cache_clear()
    settings = get_settings()
    try:
        return int(args.func(args, settings) or 0)
    except NeuroregError as exc:  # the server's reason, one line
        print(f"error {exc}", file=sys.stderr)
        return 1
    except httpx.TransportError as exc:
        print(f"error: cannot reach the neuroreg server at {settings.url} ({exc}); is it "
              "running? (NEUROREG_API_URL)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
