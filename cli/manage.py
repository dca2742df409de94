"""Managing runs from the terminal: ``show``, ``cancel``, ``tag``, ``rename`` and ``rm``,
all through :class:`neuroreg.client.Client` (the API's GET, cancel, PATCH and DELETE of
``/api/runs/{id}``).

A command given several runs does each it can and says, one line each on stderr, which
it could not and why (``error 404: run 9999 does not exist``); its exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from cli._terminal import say
from cli.commands import UsageError, client
from neuroreg.client import Client, NeuroregError
from neuroreg.settings import ClientSettings

# what the API takes as a tag (server.schemas.TagName): checked here too, so that a
# KEY=VALUE is refused naming the tag instead of "tags.0: String should match pattern"
TAG = re.compile(r"^[A-Za-z0-9_.:/+\-]{1,64}$")
SHOWN_RUNS = 50  # a study's runs and a run's readers listed by `show` (the rest counted)


def add_parser(sub: Any) -> None:
    sh = sub.add_parser("show", help="one run's whole picture: status, config, its study, "
                        "runs and evaluations, latest metrics, artifacts")
    sh.add_argument("run", type=int, help="run id")
    sh.add_argument("--json", action="store_true",
                    help="everything as one JSON object (run, parent, children, read_by, "
                    "metrics, artifacts)")
    sh.set_defaults(func=cmd_show)
    ca = sub.add_parser("cancel", help="cancel queued or running runs (a study: with its "
                        "unfinished runs)")
    ca.add_argument("runs", nargs="+", type=int, metavar="ID", help="run ids")
    ca.set_defaults(func=cmd_cancel)
    tg = sub.add_parser("tag", help="add or remove a run's tags; without any, list them")
    tg.add_argument("run", type=int, help="run id")
    tg.add_argument("tags", nargs="*", metavar="TAG",
                    help="tags to add: up to 64 letters, digits and _ . : / + - each "
                    "(a key and value as key:value, e.g. fig4 or lr:0.1)")
    tg.add_argument("--rm", action="extend", nargs="+", default=[], metavar="TAG",
                    help="tags to remove: every word after --rm (so the tags to add come "
                    "first); one the run lacks is an error")
    tg.set_defaults(func=cmd_tag)
    rn = sub.add_parser("rename", help="give a run a new name")
    rn.add_argument("run", type=int, help="run id")
    rn.add_argument("name", help="the new name (up to 200 characters; quote spaces)")
    rn.set_defaults(func=cmd_rename)
    rm = sub.add_parser("rm", help="delete finished runs with their metrics, logs and "
                        "artifacts")
    rm.add_argument("runs", nargs="+", type=int, metavar="ID", help="run ids")
    rm.add_argument("-y", "--yes", action="store_true",
                    help="delete without asking (needed when stdin is not a terminal)")
    rm.set_defaults(func=cmd_rm)


def _failed(exc: NeuroregError) -> None:
    """One line on stderr for a run the command could not do, as ``main`` says errors."""
    say(f"error {exc}", file=sys.stderr)


def _each(ids: list[int], do: Callable[[int], bool]) -> int:
    """``do`` for every run (in order, each once); 1 if any failed or was refused."""
    ok = True
    for run_id in dict.fromkeys(ids):
        try:
            ok = do(run_id) and ok
        except NeuroregError as exc:
            _failed(exc)
            ok = False
    return 0 if ok else 1


def _label(run: Mapping[str, Any]) -> str:
    return f"run {run['id']} ({run['kind']}, {run['status']}) {json.dumps(run['name'])}"


# show ---------------------------------------------------------------------------------

def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _flat(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """A config as (dotted key, value) pairs: nested mappings are walked, lists kept."""
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            yield from _flat(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, value


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return v if isinstance(v, str) and v else json.dumps(v, ensure_ascii=False)


def gather(nr: Client, run_id: int) -> dict[str, Any]:
    """What ``show`` prints: the run, its parent study, the run it reads, its own runs
    (a study's), the runs that read it (an evaluation its model), its metrics (key, count,
    last step and value) and artifacts."""
    run = nr.run(run_id)
    parent = nr.run(run["parent_id"]) if run["parent_id"] is not None else None
    reads = nr.run(run["input_run_id"]) if run["input_run_id"] is not None else None
    children = nr.runs_page(parent_id=run_id, order="oldest", limit=500)
    readers = nr.runs_page(q=f"input = {run_id}", order="oldest", limit=500)
    return {"run": run, "parent": parent, "reads": reads,
            "children": children["items"], "children_total": children["total"],
            "read_by": readers["items"], "read_by_total": readers["total"],
            "metrics": nr.metric_summaries(run_id), "artifacts": nr.artifacts(run_id)}


def _run_rows(title: str, runs: list[dict[str, Any]], total: int, more: str) -> None:
    by_status: dict[str, int] = {}
    for r in runs:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    counts = ", ".join(f"{n} {s}" for s, n in by_status.items())
    print(f"\n{title} ({total}{': ' + counts if total == len(runs) and counts else ''})")
    for r in runs[:SHOWN_RUNS]:
        say(f"  {r['id']:>6}  {r['kind']:<10} {r['status']:<10} {r['progress'] * 100:>4.0f}%  "
            f"{r['name']}")
    if total > SHOWN_RUNS:
        print(f"  … {total - SHOWN_RUNS} more: {more}")


def print_show(data: dict[str, Any], url: str) -> None:
    run = data["run"]
    say(f"run {run['id']}  {run['name'] or '(no name)'}")
    fields: list[tuple[str, str]] = [("kind", run["kind"])]
    status = run["status"]
    if status in ("queued", "running") or run["progress"] < 1:
        status += f" ({run['progress'] * 100:.0f}%)"
    if run["message"]:
        status += f" · {run['message']}"
    fields += [("status", status), ("owner", run["owner"]), ("project", run["project"]),
               ("tags", ", ".join(run["tags"]) or "(none)")]
    created, started, finished = (_time(run[k]) for k in
                                  ("created_at", "started_at", "finished_at"))
    assert created is not None
    times = f"created {created:%Y-%m-%d %H:%M:%S} UTC"
    if started is not None:
        times += f" · started {started:%H:%M:%S}"
    if finished is not None:
        times += f" · finished {finished:%H:%M:%S}"
        if started is not None:
            times += f" ({_duration((finished - started).total_seconds())})"
    fields.append(("time", times))
    if data["parent"] is not None:
        p = data["parent"]
        fields.append(("study" if p["kind"] == "study" else "parent",
                       f"run {p['id']} {p['name']} ({p['kind']}, {p['status']})"))
    if data["reads"] is not None:
        r = data["reads"]
        fields.append(("reads", f"run {r['id']} {r['name']} ({r['kind']}, {r['status']})"))
    if run["error"]:
        fields.append(("error", run["error"]))
    fields.append(("page", f"{url}/runs/{run['id']}"))
    for key, text in fields:
        say(f"  {key:<8} {text}")
    config = list(_flat(run["config"]))
    if config and config != [("", {})]:
        width = max(len(k) for k, _ in config)
        print("\nconfig")
        for key, value in config:
            say(f"  {key:<{width}}  {_value(value)}")
    if data["children_total"]:
        _run_rows("runs of this study", data["children"], data["children_total"],
                  f"neuroreg runs -q 'parent = {run['id']}'")
    if data["read_by_total"]:
        evals = all(r["kind"] == "evaluate" for r in data["read_by"])
        _run_rows("evaluations of this model" if evals else "runs that read this one",
                  data["read_by"], data["read_by_total"],
                  f"neuroreg runs -q 'input = {run['id']}'")
    result = [(k, v) for k, v in (run["result"] or {}).items()
              if isinstance(v, int | float | str | bool) or v is None]
    if result:
        width = max(len(k) for k, _ in result)
        print("\nresult" + (" (scalars; --json has the rest)"
                            if len(result) < len(run["result"]) else ""))
        for key, value in result:
            say(f"  {key:<{width}}  {_value(value)}")
    metrics = data["metrics"]
    yet = "" if run["status"] in ("succeeded", "failed", "cancelled") else " yet"
    print(f"\nmetrics ({len(metrics)} series)" if metrics else f"\nmetrics: none{yet}")
    if metrics:
        width = max(len(m["key"]) for m in metrics)
        for m in metrics:
            last = "–" if m["last_value"] is None else f"{m['last_value']:.6g}"
            say(f"  {m['key']:<{width}}  {last:>12}  at step {m['last_step']} "
                f"({m['count']} point{'s' * (m['count'] != 1)})")
    arts = data["artifacts"]
    print(f"\nartifacts ({len(arts)})" if arts else f"\nartifacts: none{yet}")
    if arts:
        width = max(len(a["name"]) for a in arts)
        for a in arts:
            say(f"  {a['name']:<{width}}  {_size(a['size_bytes']):>9}  {a['media_type']}")


def cmd_show(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        data = gather(nr, args.run)
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print_show(data, settings.url)
    return 0


# cancel, tag, rename, rm --------------------------------------------------------------

def cmd_cancel(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        def cancel(run_id: int) -> bool:
            run = nr.run(run_id)
            if run["status"] in ("succeeded", "failed", "cancelled"):
                say(f"error: {_label(run)} has already finished; nothing to cancel",
                    file=sys.stderr)
                return False
            nr.cancel(run_id)
            how = "dequeued" if run["status"] == "queued" else "stops at its next check"
            extra = " with its unfinished runs" if run["kind"] == "study" else ""
            say(f"cancelled {_label(run)}{extra}: {how}")
            return True

        return _each(args.runs, cancel)


def cmd_tag(args: argparse.Namespace, settings: ClientSettings) -> int:
    for tag in [*args.tags, *args.rm]:
        if not TAG.match(tag):
            hint = f" (write {tag.replace('=', ':', 1)})" if "=" in tag else ""
            raise UsageError(f"tag {tag!r}: a tag is 1 to 64 letters, digits and _ . : / + -"
                             f"{hint}")
    with client(settings) as nr:
        run = nr.run(args.run)
        tags = list(run["tags"])
        missing = [t for t in args.rm if t not in tags]
        if missing:
            raise UsageError(f"run {args.run} has no tag {', '.join(map(repr, missing))} "
                             f"(its tags: {', '.join(tags) or 'none'})")
        if args.tags or args.rm:
            new = [t for t in dict.fromkeys([*tags, *args.tags]) if t not in args.rm]
            tags = nr.update(args.run, tags=new)["tags"]
    say(f"run {args.run} tags: {', '.join(tags) or '(none)'}")
    return 0


def cmd_rename(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        old = nr.run(args.run)["name"]
        new = nr.update(args.run, name=args.name)["name"]
    say(f"run {args.run} renamed: {json.dumps(old)} → {json.dumps(new)}")
    return 0


def _confirm(question: str) -> bool:
    print(question + " [y/N] ", end="", flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def cmd_rm(args: argparse.Namespace, settings: ClientSettings) -> int:
    if not args.yes and not sys.stdin.isatty():
        raise UsageError("rm: stdin is not a terminal to ask on; pass --yes to delete "
                         f"run{'s' * (len(args.runs) > 1)} {' '.join(map(str, args.runs))}")
    with client(settings) as nr:
        runs: list[dict[str, Any]] = []
        ok = True
        for run_id in dict.fromkeys(args.runs):
            try:
                runs.append(nr.run(run_id))
            except NeuroregError as exc:
                _failed(exc)
                ok = False
        doomed = [r for r in runs if r["status"] in ("succeeded", "failed", "cancelled")]
        for r in runs:
            if r not in doomed:  # what DELETE refuses (409), said before asking
                say(f"error: {_label(r)} has not finished; cancel it first "
                    f"(neuroreg cancel {r['id']}), then delete it", file=sys.stderr)
                ok = False
        if not doomed:
            return 1
        if not args.yes:
            for r in doomed:
                say(f"  {_label(r)}")
            kids = [r["id"] for r in doomed if r["kind"] == "study"]
            note = (" (a study's own runs stay, without their study: study "
                    f"{', '.join(map(str, kids))})" if kids else "")
            what = "this run" if len(doomed) == 1 else f"these {len(doomed)} runs"
            if not _confirm(f"delete {what} with their metrics, logs and artifacts{note}?"):
                print("nothing deleted")
                return 1

        def delete(run_id: int) -> bool:
            nr.delete(run_id)
            print(f"deleted run {run_id}")
            return True

        # newest first: what reads a run is made after it (its inputs must exist), so a run
        # and what reads it go together; alone, the server refuses it, naming the reader
        newest_first = sorted((r["id"] for r in doomed), reverse=True)
        return _each(newest_first, delete) or (0 if ok else 1)
