"""``neuroreg sync [DIR]``: upload what offline clients spooled (:mod:`neuroreg.spool`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from neuroreg import spool
from server.cli.commands import UsageError, client
from server.settings import Settings


def add_parser(sub: Any) -> None:
    sy = sub.add_parser("sync", help="upload the runs offline clients spooled "
                        "(Client(offline=True) on a compute node without network)")
    sy.add_argument("dir", nargs="?", type=Path,
                    help="the spool (default NEUROREG_SPOOL_DIR, else <data_dir>/spool)")
    sy.add_argument("--clean", action="store_true",
                    help="then delete the folders whose every event is on the server")
    sy.add_argument("--json", action="store_true", help="one JSON object per run folder")
    sy.set_defaults(func=cmd_sync)


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    """Each run folder's line (what it sent), then each problem (a corrupt or truncated
    line, a refusal) on stderr; exit 1 when there was any, after syncing the rest."""
    root = (args.dir or settings.spool).resolve()
    if not root.is_dir():
        raise UsageError(f"{root}: no such spool folder (pass DIR, or set NEUROREG_SPOOL_DIR)")
    with client(settings) as nr:
        reports = nr.sync(root)
    removed = spool.clean(reports) if args.clean else []
    for r in reports:
        if args.json:
            print(json.dumps({**dataclasses.asdict(r), "folder": str(r.folder),
                              "removed": r.folder in removed}))
        else:
            print(r.describe() + (" (folder removed)" if r.folder in removed else ""))
        for problem in r.problems:
            print(f"problem: {problem}", file=sys.stderr)
    if not args.json:
        sent = sum(r.points for r in reports), sum(r.lines for r in reports)
        print(f"{len(reports)} run folder(s) in {root}: {sent[0]:,} points and {sent[1]:,} "
              f"log lines sent to {settings.url}", file=sys.stderr)
    return 1 if any(r.problems for r in reports) else 0
