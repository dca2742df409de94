"""``neuroreg logs RUN [--follow]``: a run's log lines (through the client)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cli._terminal import say
from cli.commands import client
from neuroreg.settings import ClientSettings


def add_parser(sub: Any) -> None:
    lg = sub.add_parser("logs", help="a run's captured stdout, stderr and logging lines")
    lg.add_argument("run", type=int, help="run id")
    lg.add_argument("-f", "--follow", action="store_true",
                    help="keep printing new lines until the run finishes")
    lg.add_argument("--streams", action="store_true",
                    help="start each line with its stream (stdout, stderr, log, client)")
    lg.set_defaults(func=cmd_logs)


def _print(line: dict[str, Any], streams: bool) -> None:
    text = f"{line['stream']:<7} {line['line']}" if streams else line["line"]
    # stderr lines to stderr, so `neuroreg logs 7 > out.txt` keeps the job's stdout apart
    say(text, file=sys.stderr if line["stream"] == "stderr" else sys.stdout, flush=True)


def cmd_logs(args: argparse.Namespace, settings: ClientSettings) -> int:
    printed = 0
    with client(settings) as nr:
        if args.follow:
            for line in nr.follow_logs(args.run):
                _print(line, args.streams)
                printed += 1
            page = nr.last_logs
        else:
            after = -1
            while True:
                page = nr.logs(args.run, after=after, limit=5000)
                for line in page["lines"]:
                    _print(line, args.streams)
                printed += len(page["lines"])
                if len(page["lines"]) < 5000:
                    break
                after = page["next_after"]
        if page.get("dropped"):
            say(page["dropped"]["line"], file=sys.stderr)
        if not printed and not page.get("dropped"):  # say why nothing came, on stderr
            print(f"run {args.run} {page['status']}: "
                  + ("no lines yet" if page["running"] else "this run wrote no log lines"),
                  file=sys.stderr)
        elif args.follow:
            print(f"run {args.run} {page['status']}", file=sys.stderr)
    return 0
