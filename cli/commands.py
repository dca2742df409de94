"""The commands that talk to a server, all through :class:`neuroreg.client.Client`:
``submit``, ``runs``, ``recordings``, ``gamma``, ``robustness``, ``frontier``."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from cli._terminal import say
from neuroreg.client import Client, NeuroregError
from neuroreg.settings import ClientSettings


def client(settings: ClientSettings) -> Client:
    """A client for ``settings``' server with its token (``api_token()``), online
    whatever ``NEUROREG_OFFLINE`` says (that is for scripts' clients)."""
    return Client(settings.url, settings.api_token(), offline=False,
                  spool_dir=settings.spool)


class UsageError(Exception):
    """Something the user gave that cannot work, said in one line (the CLI exits 1)."""


def load_run_file(path: Path) -> dict[str, Any]:
    """A run file: YAML or JSON with ``kind``, ``name`` and ``config``."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{path}{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping with kind, name and config")
    return data


SET_VALUES = ("the value is a number (7, 0.5, 1e-3), true, false or null as written, "
              "a [list] or {mapping} in YAML's brackets, a 'quoted' string as YAML reads "
              "it; anything else is the text as given (--set name=\"a: b\" is a string)")
_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?")
_WORDS = {"true": True, "false": False, "null": None, "~": None}


def set_value(key: str, raw: str) -> Any:
    """The value of ``--set key=raw`` (:data:`SET_VALUES`): typed only when it is
    written as a number, a boolean, null, a bracketed list or mapping or a quoted string,
    so that text YAML would turn into something else (``a: b`` a mapping, ``no`` a
    boolean, ``2026-01-01`` a date, ``1:30`` 90) stays the text given."""
    text = raw.strip()
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    if text.lower() in _WORDS:
        return _WORDS[text.lower()]
    if text[:1] in ("[", "{", "'", '"'):
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise UsageError(f"--set {key}={raw}: not valid YAML: {problem} (quote the whole "
                             "value to give it as text: --set 'key=\"...\"')") from None
        expected = {"[": list, "{": dict}.get(text[0], str)
        if isinstance(value, expected):
            return value
        raise UsageError(f"--set {key}={raw}: YAML reads it as {type(value).__name__}, "
                         f"not the {expected.__name__} its first character promises")
    return raw


def apply_sets(body: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    """``--set config.train_run=7`` overrides: a dotted path into the run file (a path
    without ``config.`` or ``name``/``kind`` is taken inside ``config``), the value
    typed by :func:`set_value` (``7`` an int, ``[l2, linf]`` a list, ``a: b`` a string)."""
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {item!r}: write it as key=value, e.g. "
                             "--set config.epochs=2")
        path = key.split(".")
        if path[0] not in ("config", "name", "kind"):
            path = ["config", *path]
        value = set_value(key, raw)
        node = body
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UsageError(f"--set {key}: {part} is not a mapping in the run file")
            node = child
        node[path[-1]] = value
    return body


def resolve_references(body: dict[str, Any], nr: Any) -> dict[str, Any]:
    """A run file may name the runs it reads by more than an id, so that it runs as
    written on any server: ``latest`` (the newest succeeded run of the kind the field
    takes) or a run's name (the newest succeeded run of that kind so named). Which
    fields name runs, and of which kind, the server says (``GET /api/kinds``)."""
    config = body.get("config")
    if not isinstance(config, dict):
        return body
    reads: dict[str, str] = next(
        (k["reads"] for k in nr.kinds() if k["name"] == body.get("kind")), {})
    for dotted, kind in reads.items():
        path = tuple(dotted.split("."))
        node: Any = config
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or not isinstance(node.get(path[-1]), str):
            continue
        ref = node[path[-1]]
        runs = nr.runs(kind=kind, status="succeeded")
        found = runs if ref == "latest" else [r for r in runs if r["name"] == ref]
        field = ".".join(path)
        if not found:
            raise UsageError(
                f"config.{field}: no succeeded {kind} run"
                + ("" if ref == "latest" else f" named {ref!r}")
                + f" on this server; submit one first, or give a run id "
                  f"(--set {field}=<id>; `neuroreg runs --kind {kind}` lists them)")
        node[path[-1]] = max(r["id"] for r in found)
    return body


def cmd_submit(args: argparse.Namespace, settings: ClientSettings) -> int:
    body = apply_sets(load_run_file(Path(args.config)), args.set or [])
    if args.project:
        body["project"] = args.project
    with client(settings) as nr:
        body = resolve_references(body, nr)
        if args.check:
            checked = nr.check(body)
            print(f"# {args.config}: a valid {checked['kind']} run"
                  + (f" reading run {checked['input_run_id']}" if checked["input_run_id"] else "")
                  + " (nothing was submitted); as the server would run it, every default "
                  "filled in:")
            resolved = {k: checked[k] for k in ("kind", "name")}
            for k in ("parent_id", "input_run_id", "project"):
                if body.get(k) is not None or (k == "input_run_id" and checked[k] is not None):
                    resolved[k] = checked[k] if k == "input_run_id" else body[k]
            say(yaml.safe_dump({**resolved, "config": checked["config"]}, sort_keys=False,
                               allow_unicode=True, default_flow_style=None,
                               width=88).rstrip())  # lists of values on one line
            return 0
        run = nr.create(body)
        say(f"submitted run {run['id']}: {settings.url}/runs/{run['id']}"
            + (f" (project {run['project']})" if body.get("project") is not None else ""))
        if args.wait:
            run = nr.wait(run["id"], poll=1.0)
            if run["error"]:
                say(run["error"], file=sys.stderr)
            return 0 if run["status"] == "succeeded" else 1
    return 0


def cmd_runs(args: argparse.Namespace, settings: ClientSettings) -> int:
    params = {k: v for k, v in vars(args).items() if k in ("kind", "status", "owner", "sort")
              and v}
    if args.query:
        params["q"] = args.query
    if args.desc:
        params["desc"] = "true"
    with client(settings) as nr:
        if args.project:
            name = nr.project(args.project)["name"] if args.project.isdigit() else args.project
            params["q"] = project_query(name, args.query)
        page = nr.runs_page(limit=args.limit, **params)
    if args.json:
        print(json.dumps(page, indent=2))
        return 0
    print(
        f"{'id':>5}  {'status':<10} {'kind':<10} {'owner':<10} {'project':<10} "
        f"{'progress':>8}  {'loss':>7} {'acc':>6}  name"
    )
    for r in page["items"]:
        m = r["last_metrics"]
        loss = f"{m['loss']:.3f}" if "loss" in m else "-"
        acc = f"{m['acc']:.3f}" if "acc" in m else "-"
        say(f"{r['id']:>5}  {r['status']:<10} {r['kind']:<10} {r['owner']:<10} "
            f"{r.get('project', '-'):<10} {r['progress'] * 100:>7.0f}%  {loss:>7} {acc:>6}  "
            f"{r['name']}")
    print(f"({len(page['items'])} of {page['total']})")
    return 0


def project_query(name: str, query: str | None = None) -> str:
    """``runs --project NAME`` as a query, ``project = "NAME"``, and with ``-q`` both (the
    user's query first, so the positions a 422 names in it move by one)."""
    literal = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"({query}) and project = {literal}" if query else f"project = {literal}"


IMPORT_OPTIONS = ("responses", "intervals", "template", "image_column",
                  "allow_missing_behavior", "behavior_gaps", "response_offset",
                  "response_window", "frame_fit")


def print_inspection(files: list[dict[str, Any]]) -> None:
    """``neuroreg recordings inspect``'s report, one block per file."""
    for f in files:
        print(f"{f['path']} ({f['format']})")
        if f["format"] == "nwb":
            print(f"  responses       {f['responses']}  ({f['neurons']} ROIs; candidates: "
                  f"{', '.join(f['responses_found'])})")
            if f["negative_responses"]:
                print("                  negative somewhere (dF/F): the predictor fits it with "
                      "a Gaussian loss (predictor.loss: auto)")
            print(f"  presentations   {f['presentations']}: {f['presentations_total']}")
            for what, key in (("blank (frame < 0)", "blank_dropped"),
                              ("outside train/validation/test", "tier_dropped"),
                              ("a gap in behaviour", "gap_dropped")):
                if f[key]:
                    print(f"    dropped {f[key]:>5}  {what}")
            if f["gap_filled"]:
                print(f"    filled  {f['gap_filled']:>5}  behaviour interpolated across a gap")
            print(f"  stimuli         {f['template']}")
            for quantity, where in f["behavior"].items():
                print(f"  {quantity:<16}{where or 'missing (zeros)'}")
        else:
            print(f"  scan {f['scan']}: {f['neurons']} neurons"
                  + ("; negative responses (dF/F)" if f["negative_responses"] else ""))
        tiers = ", ".join(f"{t} {n}" for t, n in f["tiers"].items())
        r = f["repeats"]
        times = f"{r['min']}×" if r["min"] == r["max"] else f"{r['min']}–{r['max']}×"
        print(f"  → {f['trials']} trials of {f['images']} images ({tiers}); "
              f"{r['oracle_images']} oracle images repeated {times}")


def cmd_recordings(args: argparse.Namespace, settings: ClientSettings) -> int:
    if args.action == "inspect":
        return _inspect(args, settings)
    with client(settings) as nr:
        page = nr.recordings()
    print(f"recordings in {page['root']} (name them as config.recording):")
    for item in page["items"]:
        print(f"  {item['name']:<40} {item['kind']:<6} {item['bytes'] / 1e6:>10.1f} MB")
    if not page["items"]:
        print("  (none yet: copy a Sensorium folder, .nwb or .npz file there)")
    return 0


def _group_header(row: dict[str, Any], what: str) -> None:
    """One condition of a summary table: target, α, the model, runs and seeds."""
    print(f"\n{row['target']}  α={row['alpha']:g}  {what}  "
          f"({row['n']} run{'s' * (row['n'] != 1)}, seeds {row['seeds']})")


def _print_table(table: dict[str, Any], runs: str, row: Callable[[dict[str, Any]], None]
                 ) -> None:
    """A summary over runs (``/api/summaries/…``): each group as ``row`` prints it, or
    that there is none, then the runs it skipped."""
    if not table["rows"]:
        print(f"no finished {runs} runs among these")
    for r in table["rows"]:
        row(r)
    if table["skipped"]:
        print(f"\nskipped (not succeeded {runs} runs): {table['skipped']}")
    if table.get("no_gamma"):
        print(f"\nno γ (not regularized: target none or α = 0): {table['no_gamma']}")


def _gamma_row(row: dict[str, Any]) -> None:
    setting = " ".join(filter(None, [
        row["backbone"], f"w{row['width']}" if row.get("width") else "",
        f"on {row['dataset']}" if row.get("dataset") else "",
        f"· study {row['study']}" if row.get("study") else ""]))
    _group_header(row, setting)
    print("  " + "".join(f"{'γ' + str(layer):<12}" for layer in row["layers"]))
    print("  " + "".join(f"{f'{m:.2f} ± {s:.2f}':<12}" for m, s in
                         zip(row["gamma_mean"], row["gamma_sem"], strict=True)))


def _robustness_row(row: dict[str, Any]) -> None:
    _group_header(row, f"{row['backbone']} on {row['dataset']}")
    noise = row["noise"]
    if noise:
        print("  σ         " + "".join(f"{s:<14g}" for s in noise["sigmas"]))
        print("  accuracy  " + "".join(f"{f'{m:.3f} ± {e:.3f}':<14}"
                                       for m, e in zip(noise["mean"], noise["sem"],
                                                       strict=True)))
    for norm, m in row["medians"].items():
        print(f"  median {norm:<5} {m['mean']:.4g} ± {m['sem']:.2g}  (n={m['n']})")
    for norm, aa in (row.get("autoattack") or {}).items():
        custom = " (custom: reduced steps/queries)" if "custom" in aa["versions"] else ""
        print(f"  AutoAttack {norm:<5} " + ", ".join(
            f"ε {label}: {m:.3f} ± {s:.2g}" for label, m, s in
            zip(aa["eps_labels"], aa["mean"], aa["sem"], strict=True))
            + f"  (n={aa['n']}){custom}")
    cor = row["measures"].get("corruption_accuracy")
    if cor:
        print(f"  corruption accuracy {_mean_sem(cor)}  (n={cor['n']})")
    if row.get("mce"):
        print(f"  mCE vs None {_mean_sem(row['mce'])}  ({row['mce']['n']} paired seeds)")


def _summary(nr: Client, table: dict[str, Any], kind: str,
             row: Callable[[dict[str, Any]], None]) -> int:
    """Print a summary over runs; a run the user named that does not exist, or is of
    another kind, is an error line on stderr each (the server lists it among the skipped)
    and makes the status 1."""
    wrong: dict[int, str] = {}
    for run_id in table["skipped"]:
        try:
            run = nr.run(run_id)
        except NeuroregError as exc:
            if exc.status != 404:
                raise
            wrong[run_id] = f"error {exc}"
            continue
        if run["kind"] != kind:
            wrong[run_id] = f"error: run {run_id} is a {run['kind']} run, not a {kind} run"
    _print_table({**table, "skipped": [i for i in table["skipped"] if i not in wrong]},
                 kind, row)
    for line in wrong.values():
        say(line, file=sys.stderr)
    return 1 if wrong else 0


def cmd_gamma(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        return _summary(nr, nr.gamma(args.runs), "train", _gamma_row)


def cmd_robustness(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        return _summary(nr, nr.robustness(args.runs), "evaluate", _robustness_row)


_POINT_COLUMNS = (("clean_accuracy", "clean acc"), ("noise_accuracy", "noise acc σ>0"),
                  ("noise_accuracy_highest", "acc highest σ"), ("median_l2", "median L2"),
                  ("median_linf", "median L∞"), ("autoattack_linf", "AutoAttack L∞"),
                  ("autoattack_l2", "AutoAttack L2"), ("corruption_accuracy", "corruption acc"))


def _num(v: float, spec: str) -> str:
    """``v`` in ``spec``; float residue (|v| < 1e-12, a SEM of equal values) reads as 0."""
    return f"{0.0 if abs(v) < 1e-12 else v:{spec}}"


def _mean_sem(m: dict[str, Any] | None) -> str:
    return "–" if m is None else f"{_num(m['mean'], '.4g')} ± {_num(m['sem'], '.2g')}"


def _p(p: float | None) -> str:
    return "–" if p is None else f"{p:.3g}"


def print_frontier(data: dict[str, Any]) -> None:
    """The frontier's points (None first), then each condition against None at matched
    clean accuracy, one row per measure."""
    tol = data["tolerance"]
    print(f"accuracy–robustness frontier: mean ± SEM over seeds per (condition, α); "
          f"None's clean accuracy {data['none_clean_accuracy']:.4g}")
    # the columns some point has: AutoAttack and corruptions only where they were measured
    columns = [(n, t) for n, t in _POINT_COLUMNS if any(n in p["measures"]
                                                        for p in data["points"])]
    print(f"{'condition':<16}{'α':>6}{'n':>4}  " + "".join(f"{title:<20}" for _, title in columns))
    for p in sorted(data["points"], key=lambda p: p["condition"] != "none"):
        print(f"{p['condition']:<16}{p['alpha']:>6g}{p['n']:>4}  " + "".join(
            f"{_mean_sem(p['measures'].get(name)):<20}" for name, _ in columns))
    print(f"\neach condition vs None at the α of closest clean accuracy (within ±{tol:g}), "
          "paired by seed; difference = condition − None")
    print(f"{'condition':<16}{'matched α':>10}{'clean gap':>11}  {'measure':<34}{'pairs':>5}  "
          f"{'difference ± SEM':<22}{'95 % interval':<24}{'verdict':<12}{'t-test p':>10}"
          f"{'Wilcoxon p':>12}")
    labels = {k: v["label"] for k, v in data["measures"].items()}
    fewest = None
    for row in data["matched"]:
        if not row["matched"]:
            tried = ", ".join(f"{a:g}" for a in row["alphas_tried"])
            print(f"{row['condition']:<16}{'–':>10}{'–':>11}  no α within ±{tol:g} (closest "
                  f"α={row['alpha']:g}, gap {row['clean_gap']:+.3f}; tried α = {tried})")
            continue
        head = f"{row['condition']:<16}{row['alpha']:>10g}{row['clean_gap']:>+11.3f}  "
        for k, (name, t) in enumerate(row["tests"].items()):
            diff = "–" if t["mean_difference"] is None else "".join([
                f"{'+' if t['mean_difference'] >= 0 else ''}{_num(t['mean_difference'], '.4g')}",
                "" if t["sem_difference"] is None else f" ± {_num(t['sem_difference'], '.2g')}"])
            ci = ("–" if t["ci_low"] is None else
                  f"[{_num(t['ci_low'], '+.3g')}, {_num(t['ci_high'], '+.3g')}]")
            print((head if k == 0 else " " * len(head)) + f"{labels.get(name, name):<34}"
                  f"{t['pairs']:>5}  {diff:<22}{ci:<24}{t['verdict']:<12}"
                  f"{_p(t['t_test_p']):>10}{_p(t['wilcoxon_p']):>12}")
            fewest = t["pairs"] if fewest is None else min(fewest, t["pairs"])
    if not data["matched"]:
        print("(no condition besides None)")
    better = [v["label"] for v in data["measures"].values() if v["higher_is_better"]]
    print("\nhigher is better for every measure." if len(better) == len(data["measures"])
          else "\nhigher is better for: " + ", ".join(better) + "; lower for the rest.")
    print("verdict: higher or lower only when the 95 % interval excludes 0, else unresolved "
          "(these seeds cannot tell).")
    if fewest:
        print(f"with n pairs the two-sided Wilcoxon p cannot go below 2/2^n "
              f"({2 / 2 ** fewest:.3g} for n = {fewest}).")


def cmd_frontier(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        data = nr.frontier(args.study, tolerance=args.tolerance)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_frontier(data)
    return 0


def _pct(v: float | None, custom: bool = False) -> str:
    return "–" if v is None else f"{100 * v:.1f}{'*' if custom else ''}"


_LEFT = ("text", "network", "soundness")  # kinds of leaderboard column whose cells align left


def _leaderboard_cell(col: dict[str, Any], r: dict[str, Any]) -> str:
    """How the terminal shows row ``r``'s value of a leaderboard column (the server's
    ``layout`` entry ``col``): by its kind, as the page does."""
    kind, v = col["kind"], r.get(col["key"])
    if kind == "alpha":
        return "–" if v is None or r.get("target") == "none" else f"{v:g}"
    if v is None:
        return "–"
    if kind == "number":
        return f"{v:.{3 if col['digits'] is None else col['digits']}f}"
    if kind == "pct":
        return _pct(v)
    if kind == "autoattack":
        return _pct(v, r.get(f"{col['key']}_version") == "custom")
    if kind == "corruptions":
        return _pct(v) + (" ᵖ" if r.get("corruptions_source") == "published" else "")
    if kind == "network":
        return f"{v} · {r.get('dataset')}"
    if kind == "study":
        return f"#{v}"
    if kind == "soundness":
        return "suspect " + ",".join(r.get("soundness_suspect") or []) if v == "suspect" \
            else str(v)
    return str(v)  # run, text


def _reduced(col: dict[str, Any], r: dict[str, Any], cols: list[dict[str, Any]]) -> int | None:
    """The samples row ``r``'s value of ``col`` is over, when fewer than the most any
    shown number of the row is over (AutoAttack on 10 samples beside a clean accuracy on
    the whole test split); None otherwise."""
    counts = [r.get(c["count"]) for c in cols if c.get("count") and r.get(c["key"]) is not None]
    n = r.get(col["count"]) if col.get("count") and r.get(col["key"]) is not None else None
    most = max((c for c in counts if c is not None), default=None)
    return n if n is not None and most is not None and n < most else None


def cmd_leaderboard(args: argparse.Namespace, settings: ClientSettings) -> int:
    params = {k: getattr(args, k) for k in ("sort", "order", "eps_linf", "eps_l2", "dataset",
                                            "target", "owner", "study")
              if getattr(args, k) is not None}
    with client(settings) as nr:
        page = nr.leaderboard_page(**params, limit=args.limit)
    if args.json:
        print(json.dumps(page, indent=2))
        return 0
    # the columns and their headers are the server's (ε as RobustBench writes it: 8/255)
    cols = [c for c in page["layout"] if c["cli"]]

    def cell(c: dict[str, Any], r: dict[str, Any]) -> str:
        n = _reduced(c, r, cols)
        return _leaderboard_cell(c, r) + ("" if n is None else f" n={n}")

    rows = [[cell(c, r) for c in cols] for r in page["items"]]
    widths = [max([len(c["header"]), *(len(row[k]) for row in rows)])
              for k, c in enumerate(cols)]

    def line(cells: list[str]) -> str:
        return "  ".join(f"{v:<{w}}" if c["kind"] in _LEFT else f"{v:>{w}}"
                         for v, w, c in zip(cells, widths, cols, strict=True)).rstrip()

    say(line([c["header"] for c in cols]))
    for row in rows:
        say(line(row))
    if not page["items"]:
        print("no succeeded evaluations among these")
    if any(r.get(f"{c['key']}_version") == "custom" and r.get(c["key"]) is not None
           for r in page["items"] for c in cols if c["kind"] == "autoattack"):
        print("* a reduced (custom) AutoAttack: fewer steps or queries than the standard "
              "version; not comparable with RobustBench's numbers")
    if any(r.get("corruptions_source") == "published" and r.get(c["key"]) is not None
           for r in page["items"] for c in cols if c["kind"] == "corruptions"):
        print("ᵖ on the published CIFAR-C files; otherwise generated here with CIFAR-10-C's "
              "parameters")
    if any(r.get("soundness") == "suspect" for r in page["items"]):
        print("suspect: the attacks' soundness check warned (a robustness number that may be "
              "the attacks' failure, e.g. a masked gradient); `neuroreg record ID` says why")
    if any(_reduced(c, r, cols) is not None for r in page["items"] for c in cols):
        print("n=…: how many samples a number is over, where fewer than the row's most "
              "(--json has every count)")
    best = "highest" if page["order"] == "desc" else "lowest"
    print(f"({len(page['items'])} of {page['total']} evaluations; by {page['sort']}, {best} "
          "first; accuracies in %; – : not measured, or at another ε)")
    return 0


def cmd_record(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        if args.out == "-":
            print(json.dumps(nr.record(args.run), indent=1))
        else:
            print(f"saved {nr.record(args.run, dest=args.out)}")
    return 0


def _inspect(args: argparse.Namespace, settings: ClientSettings) -> int:
    from pathlib import Path

    if not args.path:
        raise UsageError("recordings inspect: name a file or folder (PATH)")
    options = {k: getattr(args, k) for k in IMPORT_OPTIONS if getattr(args, k) is not None}
    local = Path(args.path)
    if local.exists():  # a file on this machine, before it is copied to the server
        from ml.neural.io.inspect import inspect_recording
        from ml.neural.io.options import ImportOptions
        from ml.neural.scan import RecordingError

        try:
            files = inspect_recording(local, ImportOptions(**options))
        except (RecordingError, ValueError) as exc:  # the importer's own message
            raise UsageError(str(exc)) from None
    else:
        with client(settings) as nr:
            files = nr.inspect_recording(args.path, **options)["files"]
    if args.json:
        print(json.dumps(files, indent=2))
    else:
        print_inspection(files)
    return 0
