"""``neuroreg export`` and ``neuroreg import`` (:mod:`neuroreg.transfer`,
:mod:`neuroreg.transfer_mlflow`)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cli.commands import UsageError, client
from neuroreg.settings import ClientSettings
from neuroreg.transfer import (
    MANIFEST,
    RunImported,
    SourceRun,
    TransferError,
    export,
    import_runs,
    read_export,
    select_runs,
)


def add_parser(sub: Any) -> None:
    ex = sub.add_parser("export", help="write runs, with every run they name, into a folder "
                        "in neuroreg's open layout (JSON, CSV and the artifacts' files)")
    ex.add_argument("runs", nargs="*", type=int, help="run ids")
    ex.add_argument("-q", "--query", help="and the runs this query matches, e.g. "
                    "'tag = \"fig4\"'")
    ex.add_argument("--study", type=int, help="and this study with all its runs")
    ex.add_argument("-o", "--out", required=True, type=Path,
                    help="the folder to write (new or empty)")
    ex.add_argument("--no-artifacts", action="store_true",
                    help="leave the artifacts' files out (checkpoints can be large)")
    ex.set_defaults(func=cmd_export)
    im = sub.add_parser("import", help="copy runs into neuroreg from an export folder, or "
                        "from MLflow (`neuroreg import mlflow --from URI`); again: updates "
                        "them, stores nothing twice")
    im.add_argument("source", nargs="?", choices=["export", "mlflow"], default="export",
                    help="export (default): a folder `neuroreg export` wrote; mlflow: an "
                    "MLflow tracking server or mlruns/ folder")
    im.add_argument("--from", dest="src", required=True,
                    help="the export folder; for mlflow an http(s):// tracking URI or an "
                    "mlruns/ folder")
    im.add_argument("--experiment", action="append", default=[],
                    help="mlflow: only this experiment (name or id; repeatable)")
    im.add_argument("--deleted", action="store_true",
                    help="mlflow: deleted runs too (tagged mlflow:deleted)")
    im.add_argument("--repeated-steps", choices=["last", "sequence"], default="last",
                    help="mlflow: a metric with several values at one step (logged "
                    "without step=): keep the latest (default), or give each point its "
                    "place in the series as its step")
    im.add_argument("--dry-run", action="store_true",
                    help="read and check the whole source, say what would be imported, "
                    "store nothing")
    im.set_defaults(func=cmd_import)


def cmd_export(args: argparse.Namespace, settings: ClientSettings) -> int:
    if not (args.runs or args.query or args.study):
        raise UsageError("name runs to export: ids, --query or --study")
    with client(settings) as nr:
        try:
            runs = select_runs(nr, args.runs, query=args.query, study=args.study)
            manifest = export(nr, runs, args.out, artifacts=not args.no_artifacts,
                              selection={"runs": args.runs, "query": args.query,
                                         "study": args.study},
                              progress=lambda line: print(line, file=sys.stderr))
        except TransferError as exc:
            raise UsageError(str(exc)) from None
    n = manifest["runs"]
    print(f"{len(n)} runs ({sum(r['points'] for r in n):,} points, "
          f"{sum(r['lines'] for r in n):,} log lines, {sum(r['artifacts'] for r in n)} "
          f"artifacts) written to {args.out}; `neuroreg import --from {args.out}` reads "
          "them back")
    return 0


def cmd_import(args: argparse.Namespace, settings: ClientSettings) -> int:
    runs: Iterable[SourceRun]
    with client(settings) as nr, tempfile.TemporaryDirectory(prefix="neuroreg-import-") as tmp, \
            contextlib.ExitStack() as stack:
        try:
            if args.source == "export":
                if args.experiment or args.deleted:
                    raise UsageError("--experiment and --deleted are for `import mlflow`")
                if not (Path(args.src) / MANIFEST).is_file():
                    raise UsageError(f"--from: {args.src}: no {MANIFEST} (a folder `neuroreg "
                                     "export` wrote; for MLflow: `neuroreg import mlflow "
                                     "--from URI`)")
                runs = read_export(Path(args.src))
                _may_import(nr, runs)
            else:
                from neuroreg.transfer_mlflow import open_source, read_all

                source = open_source(args.src)
                stack.callback(source.close)
                runs = read_all(source, nr, args.experiment, deleted=args.deleted,
                                repeated_steps=args.repeated_steps, workdir=Path(tmp))
            if args.dry_run:
                runs = list(runs)
                for r in runs:
                    print(f"{r.origin}: {r.record['kind']} run {r.record.get('name')!r} "
                          f"({r.record['status']}), key {r.record['key']}, "
                          f"{len(r.artifacts)} artifacts")
                    for note in r.notes:
                        print(f"  note: {note}")
                print(f"{len(runs)} runs would be imported; nothing was stored",
                      file=sys.stderr)
                return 0
            reports = import_runs(nr, runs, progress=_say)
        except TransferError as exc:
            raise UsageError(str(exc)) from None
    created = sum(r.created for r in reports)
    print(f"{len(reports)} runs imported into {settings.url}: {created} new, "
          f"{len(reports) - created} updated", file=sys.stderr)
    return 0


def _may_import(nr: Any, runs: list[SourceRun]) -> None:
    """Refuse before writing anything when the caller may not import some of ``runs``:
    a run a worker runs (train, similarity, evaluate, study) needs an admin."""
    if nr.me()["role"] == "admin":
        return
    worker_kinds = {k["name"] for k in nr.kinds() if k.get("queue")}
    theirs = [f"{r.origin} ({r.record['kind']})" for r in runs
              if r.record["kind"] in worker_kinds]
    if theirs:
        raise UsageError(f"{len(theirs)} of these runs are of kinds a worker runs, which only "
                         f"an admin may import (their artifacts become what workers read): "
                         f"{', '.join(theirs[:5])}{' …' if len(theirs) > 5 else ''}; "
                         "nothing was imported")


def _say(r: RunImported) -> None:
    print(r.describe())
    for note in r.notes:
        print(f"  note: {note}")
