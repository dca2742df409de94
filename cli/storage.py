"""``neuroreg storage``: the lab's artifact retention policies, their dry run and applying
them; ``neuroreg lineage RUN``: what a run was built from and what was built from it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli._terminal import say
from cli.commands import client
from cli.manage import _size
from neuroreg.settings import ClientSettings

RULES = ("keep-last", "drop-finished", "expire-failed")
SHOWN = 20  # items a plan prints of each kind (--all: every one the server listed)


def add_parser(sub: Any) -> None:
    """The ``storage`` and ``lineage`` commands on the CLI's subparsers."""
    st = sub.add_parser("storage", help="artifact retention: policies, their dry run, "
                        "applying them (never deleting what another run reads)")
    actions = st.add_subparsers(dest="action", required=True,
                                help="policies, add, rm, plan or apply")
    ls = actions.add_parser("policies", help="the lab's retention policies")
    ls.add_argument("--json", action="store_true", help="the server's JSON as is")
    ls.set_defaults(func=cmd_policies)
    add = actions.add_parser("add", help="add a policy (admins); --dry-run shows what it "
                             "would delete and stores nothing")
    add.add_argument("name", help="the policy's name")
    add.add_argument("--rule", required=True, choices=RULES,
                     help="keep-last: all but the newest --keep per run; drop-finished: of "
                     "succeeded runs (--days after they finished, default 0); "
                     "expire-failed: of failed or cancelled runs, --days after they ended")
    add.add_argument("--pattern", required=True,
                     help="a glob over artifact names, * crossing folders: checkpoint.pt, "
                     "'ckpt/*.ckpt', '*'")
    add.add_argument("-q", "--query", default="",
                     help='the runs it covers, as `neuroreg runs -q` takes (default every '
                     'run): \'tag = "sweep-3"\'')
    add.add_argument("--keep", type=int, help="keep-last: how many to keep per run")
    add.add_argument("--days", type=float, help="the age in days (expire-failed; "
                     "drop-finished optionally)")
    add.add_argument("--dry-run", action="store_true",
                     help="print what it would delete and keep; store nothing")
    add.set_defaults(func=cmd_add)
    rm = actions.add_parser("rm", help="delete a policy (admins); what it deleted stays "
                            "deleted")
    rm.add_argument("id", type=int, help="the policy's id")
    rm.set_defaults(func=cmd_rm)
    plan = actions.add_parser("plan", help="the dry run: what applying every policy now "
                              "would delete and free, and what it keeps")
    plan.add_argument("--all", action="store_true", help=f"every item, not the first "
                      f"{SHOWN} of each list")
    plan.add_argument("--json", action="store_true", help="the server's JSON as is")
    plan.set_defaults(func=cmd_plan)
    ap = actions.add_parser("apply", help="apply every policy now (admins; the server also "
                            "does every NEUROREG_RETENTION_INTERVAL_S)")
    ap.add_argument("--json", action="store_true", help="the server's JSON as is")
    ap.set_defaults(func=cmd_apply)

    ln = sub.add_parser("lineage", help="what a run was built from and what was built "
                        "from it")
    ln.add_argument("run", type=int, help="a run id")
    ln.add_argument("--limit", type=int, default=200, help="the most runs shown (2–200)")
    ln.add_argument("--json", action="store_true", help="the server's JSON as is")
    ln.set_defaults(func=cmd_lineage)


def _policy(p: dict[str, Any]) -> str:
    how = (f"keep {p['keep']}" if p["rule"] == "keep-last" else
           f"after {p['days']:g} days" if p["days"] is not None else "at once")
    where = f" of runs where {p['query']}" if p["query"] else " of every run"
    return f"{p['id']:>4}  {p['name']}: {p['rule']} {p['pattern']!r} ({how}){where}"


def cmd_policies(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        policies = nr.retention_policies()
    if args.json:
        print(json.dumps(policies, indent=2))
    elif not policies:
        print("no retention policies: nothing is deleted; add one with "
              "`neuroreg storage add NAME --rule … --pattern …`")
    for p in [] if args.json else policies:
        say(_policy(p))
    return 0


def _item(i: dict[str, Any]) -> str:
    return f"  run {i['run_id']:>6} {i['name']}  {_size(i['size_bytes'])}  [{i['policy']}]"


def _print_plan(plan: dict[str, Any], *, everything: bool, done: bool) -> None:
    verb = "deleted" if done else "would delete"
    say(f"{verb} {plan['delete_count']} artifact{'s' * (plan['delete_count'] != 1)}, "
        f"{_size(plan['bytes_freed'])}")
    shown = plan["delete"] if everything else plan["delete"][:SHOWN]
    for i in shown:
        say(_item(i))
    if plan["delete_count"] > len(shown):
        print(f"  … and {plan['delete_count'] - len(shown)} more (--all, --json)")
    if plan["kept_count"]:
        say(f"kept {plan['kept_count']} that other runs read:")
        kept = plan["kept"] if everything else plan["kept"][:SHOWN]
        for i in kept:
            readers = ", ".join(f"{d['kind']} run {d['run_id']}" for d in i["dependants"])
            say(f"{_item(i)}  read by {readers}")
        if plan["kept_count"] > len(kept):
            print(f"  … and {plan['kept_count'] - len(kept)} more")


def cmd_add(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        got = nr.add_retention_policy(args.name, args.rule, args.pattern, query=args.query,
                                      keep=args.keep, days=args.days, preview=args.dry_run)
    if args.dry_run:
        _print_plan(got, everything=False, done=False)
        print("(dry run: nothing stored)")
    else:
        say(f"added policy {_policy(got).strip()}")
    return 0


def cmd_rm(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        nr.delete_retention_policy(args.id)
    print(f"deleted retention policy {args.id}")
    return 0


def _show(plan: dict[str, Any], args: argparse.Namespace, *, done: bool) -> int:
    if args.json:
        print(json.dumps(plan, indent=2))
    else:
        _print_plan(plan, everything=getattr(args, "all", False), done=done)
    return 0


def cmd_plan(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        return _show(nr.retention_plan(), args, done=False)


def cmd_apply(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        return _show(nr.apply_retention(), args, done=True)


def cmd_lineage(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        g = nr.lineage(args.run, limit=args.limit)
    if args.json:
        print(json.dumps(g, indent=2))
        return 0
    runs = {r["id"]: r for r in g["runs"]}

    def label(run_id: int) -> str:
        r = runs[run_id]
        return f"{r['kind']} run {r['id']} {r['name']!r} ({r['status']})"

    up = [e for e in g["edges"] if runs[e["target"]]["depth"] <= 0
          and runs[e["source"]]["depth"] < 0]
    down = [e for e in g["edges"] if runs[e["source"]]["depth"] >= 0
            and runs[e["target"]]["depth"] > 0]
    say(label(g["run_id"]))
    if not up and not down:
        print("  reads no other run's artifacts, and no run reads its own")
    for title, edges in (("built from", up), ("built from it", down)):
        if edges:
            print(f"{title}:")
        for e in sorted(edges, key=lambda e: (abs(runs[e["source"]]["depth"]),
                                              e["source"], e["target"])):
            what = (f"reads {', '.join(e['artifacts'])} of" if e["relation"] == "reads"
                    else "is part of")
            say(f"  {label(e['target'])} {what} {label(e['source'])}")
    if g["truncated"]:
        print(f"(more runs are connected than the {len(runs)} shown: --limit)")
    return 0
