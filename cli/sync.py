"""``neuroreg sync [DIR]``: upload what offline clients spooled (:mod:`neuroreg.sync`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from cli.commands import UsageError, client
from neuroreg import sync as spool_sync
from neuroreg.settings import ClientSettings
from neuroreg.sync import _count


def add_parser(sub: Any) -> None:
    sy = sub.add_parser("sync", help="upload the runs offline clients spooled "
                        "(Client(offline=True) on a compute node without network)")
    sy.add_argument("dir", nargs="?", type=Path,
                    help="the spool (default NEUROREG_SPOOL_DIR, else <data_dir>/spool)")
    sy.add_argument("--clean", action="store_true",
                    help="then delete the folders the server holds whole (checked with it)")
    sy.add_argument("--json", action="store_true", help="one JSON object per run folder")
    sy.set_defaults(func=cmd_sync)


def cmd_sync(args: argparse.Namespace, settings: ClientSettings) -> int:
    """Each run folder's line (what it sent; with --clean, removed or why kept), then each
    problem (a corrupt or skipped line, a write the server did not take) on stderr; exit 1
    when there was any, after syncing the rest."""
    root = (args.dir or settings.spool).resolve()
    if not root.is_dir():
        raise UsageError(f"{root}: no such spool folder (pass DIR, or set NEUROREG_SPOOL_DIR)")
    with client(settings) as nr:
        reports = nr.sync(root)
        removed = spool_sync.clean(nr, reports) if args.clean else []
    for r in reports:
        if args.json:
            print(json.dumps({**dataclasses.asdict(r), "folder": str(r.folder),
                              "removed": r.folder in removed}))
        else:
            print(r.describe() + _cleaned(r, removed) if args.clean else r.describe())
        for problem in r.problems:
            print(f"problem: {problem}", file=sys.stderr)
        if r.problems_left_out:
            print(f"problem: {r.folder / spool_sync.EVENTS}: {r.problems_left_out:,} more "
                  "problems like these", file=sys.stderr)
    if not args.json:
        print(_summary(reports, root, settings.url), file=sys.stderr)
    return 1 if any(r.problems for r in reports) else 0


def _cleaned(r: spool_sync.RunSync, removed: list[Path]) -> str:
    return " (folder removed)" if r.folder in removed else f" (folder kept: {r.kept})"


def _summary(reports: list[spool_sync.RunSync], root: Path, url: str) -> str:
    sent = [_count(sum(getattr(r, n) for r in reports), what) for n, what in
            (("points", "point"), ("lines", "log line"), ("artifacts", "artifact"))]
    line = (f"{len(reports)} run folder(s) in {root}: {sent[0]}, {sent[1]} and {sent[2]} "
            f"sent to {url}")
    pending = sum(r.pending for r in reports)
    if pending:
        line += (f"; {pending} folder(s) NOT wholly synced (the problems above): the rest "
                 "waits for the next sync")
    return line
