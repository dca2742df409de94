"""``neuroreg report STUDY -o DIR``: the study as a folder that opens offline, drawn by the
server (the zip the study page's Report button downloads; docs/report.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cli.commands import UsageError, client
from neuroreg.settings import ClientSettings


def add_parser(sub: Any) -> None:
    r = sub.add_parser("report", help="a study as a folder that opens offline: every figure "
                       "(interactive, and as SVG, PDF and CSV), its tables, configs, "
                       "provenance and the commands that reproduce it")
    r.add_argument("study", type=int, help="the study's run id")
    r.add_argument("-o", "--out", type=Path,
                   help="the folder to write (default study-<id>-report); it must be new or "
                   "empty unless --force")
    r.add_argument("--force", action="store_true",
                   help="write into an -o folder that is not empty, replacing files of the "
                   "same names")
    r.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace, settings: ClientSettings) -> int:
    out: Path = args.out or Path(f"study-{args.study}-report")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: is a file, not a folder; pass another -o")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise UsageError(f"{out}: not empty; pass --force to write into it (files of the "
                         "same names are replaced), or another -o")
    with client(settings) as nr:
        index = nr.study_report(args.study, out, force=True)
    figures = json.loads((out / "manifest.json").read_text())["figures"]
    print(f"study {args.study}: {index} ({len(figures)} figures, each as SVG, PDF and CSV "
          "in figures/); open it in a browser, no server needed")
    return 0
