"""The ``neuroreg`` command line: run the service, submit runs, list them."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from ml import presets
from server.settings import Settings, get_settings

log = logging.getLogger(__name__)

DEMO_NAME = "demo: small CNN on digits32"
DEMO_CONFIG: dict[str, Any] = {
    "dataset": "digits32",
    "backbone": "small_cnn",
    "width": 24,
    "epochs": 20,
    "lr": 0.02,
    "seed": 0,
}


# the paper in miniature (ml.presets: what bench/reproduce.py measures), chained on first
# start: a simulated similarity run, then a study of None vs Neural (model) × 3 seeds that
# trains toward it and evaluates every model
DEMO_SIMILARITY_NAME = "demo: simulated mouse V1, small"
DEMO_SIMILARITY: dict[str, Any] = presets.SIMILARITY
DEMO_STUDY_NAME = "demo: None vs Neural (model), 3 seeds"
DEMO_STUDY: dict[str, Any] = {
    "conditions": ["none", "neural-model"],
    "seeds": presets.SEEDS,
    "alphas": [presets.ABLATION_ALPHA],
    "train": dict(presets.TRAIN),
    "evaluate": dict(presets.EVALUATE),
    "note": presets.NOTE,
}


def _env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process this process's settings."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value not in (None, ""):
            env[f"NEUROREG_{name.upper()}"] = str(value)
    return env


def worker_command(queues: str, concurrency: int, pool: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.app",
        "worker",
        "-Q",
        queues,
        "-c",
        str(concurrency),
        "--pool",
        pool,
        "-l",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]


def _admin_token(settings: Settings) -> str:
    """Create the first admin on first start; its token is kept (mode 600) for the CLI."""
    from server.store.db import session_scope
    from server.store.users import ensure_admin

    with session_scope(settings.db_url) as s:
        token = ensure_admin(s)
    if token is not None:
        settings.token_file.parent.mkdir(parents=True, exist_ok=True)
        settings.token_file.touch(mode=0o600)
        settings.token_file.write_text(token + "\n")
    return settings.token_file.read_text().strip() if settings.token_file.exists() else ""


def _submit_demo(settings: Settings, app: Any) -> int | None:
    """On first start (no runs yet): the small train run and the demo similarity run (the
    study follows it: :func:`_demo_study`). Returns the train run's id."""
    from server.kinds import KINDS
    from server.services import submit_run
    from server.store.db import session_scope
    from server.store.models import Run, User

    with session_scope(settings.db_url) as s:
        if s.query(Run.id).first() is not None:
            return None
        admin = s.query(User).order_by(User.id).first()
        assert admin is not None
        runs = []
        for kind, name, config in (("train", DEMO_NAME, DEMO_CONFIG),
                                   ("similarity", DEMO_SIMILARITY_NAME, DEMO_SIMILARITY)):
            cfg = KINDS[kind].config_type(**config)  # validated like any request
            runs.append(submit_run(s, app.state.celery, owner=admin, kind=kind, name=name,
                                   config=dataclasses.asdict(cfg)))
        return runs[0].id


def _demo_study(settings: Settings, app: Any) -> int | None:
    """Submit the demo study once the demo similarity run has succeeded (checked again on
    every start, so a restart in between still gets it). Returns its id once submitted;
    None while there is nothing (more) to do."""
    from sqlalchemy import select

    from server.inputs import check_inputs
    from server.kinds import KINDS
    from server.services import submit_run
    from server.store.db import session_scope
    from server.store.models import Run, RunStatus

    with session_scope(settings.db_url) as s:
        named = {r.name: r for r in s.execute(select(Run).where(
            Run.name.in_([DEMO_SIMILARITY_NAME, DEMO_STUDY_NAME]))).scalars()}
        sim = named.get(DEMO_SIMILARITY_NAME)
        if DEMO_STUDY_NAME in named or sim is None or sim.status is not RunStatus.succeeded:
            return None
        cfg = KINDS["study"].config_type(**{**DEMO_STUDY, "target_run": sim.id})
        reads = check_inputs(s, settings, kind="study", config=cfg)
        run = submit_run(s, app.state.celery, owner=sim.owner, kind="study",
                         name=DEMO_STUDY_NAME, config=dataclasses.asdict(cfg),
                         input_run_id=reads)
        return run.id


def _follow_demo(settings: Settings, app: Any, stop: threading.Event) -> None:
    """While `neuroreg up` runs: wait for the demo similarity run to finish, then submit
    the study (if it succeeded and there is none yet)."""
    from server.store.db import session_scope
    from server.store.models import Run

    while not stop.wait(5.0):
        try:
            with session_scope(settings.db_url) as s:
                sim = s.query(Run).filter(Run.name == DEMO_SIMILARITY_NAME).first()
                waiting = sim is not None and not sim.status.finished
            if not waiting:
                _demo_study(settings, app)
                return
        except Exception:  # noqa: BLE001 — the demo must never take the service down
            log.warning("demo study not submitted", exc_info=True)
            return


class _Stop(BaseException):
    """SIGTERM or SIGHUP reached ``neuroreg up``."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop(signum)


def _stop_worker(worker: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM to the worker's process group (its pool processes too), SIGKILL to what
    is left after ``grace`` seconds; a task cut short is redelivered and resumes."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)  # pool processes the main one left behind
    worker.wait()


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    """The API, a worker and the demo. SIGINT (Ctrl-C), SIGTERM and SIGHUP all stop
    every process it started: uvicorn shuts down gracefully, then re-raises the signal
    under the handler it found, which here unwinds to the cleanup instead of killing
    this process on the spot."""
    import uvicorn

    from server.app import create_app

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    token = _admin_token(settings)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_stop)
    # its own process group: the signals reach it from us, once, and killpg finds its pool
    worker = subprocess.Popen(worker_command("gpu,cpu", args.concurrency, "prefork"),
                              env=_env(settings), start_new_session=True)
    stop = threading.Event()
    try:
        demo = None if args.no_demo else _submit_demo(settings, app)
        if not args.no_demo:  # the demo study follows its similarity run
            threading.Thread(target=_follow_demo, args=(settings, app, stop),
                             daemon=True).start()
        print(f"\n  neuroreg is starting on {settings.url}\n", flush=True)
        print(f"  data directory : {settings.data_dir}")
        print(f"  admin token    : {token}")
        print(f"  open           : {settings.url}/#token={token}")
        if demo is not None:
            print(f"  demo run       : {settings.url}/runs/{demo} (training now)")
            print(f"  demo study     : a similarity run, then None vs Neural (model) × 3 "
                  f"seeds, trained and attacked (minutes on a CPU): {settings.url}/")
        print("  stop with Ctrl-C\n", flush=True)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    except (_Stop, KeyboardInterrupt):
        pass
    finally:
        stop.set()
        _stop_worker(worker)
    return 0


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from server.app import create_app

    app = create_app(settings)
    _admin_token(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from server.store.db import migrate

    migrate(settings.db_url)
    cmd = worker_command(args.queues, args.concurrency, args.pool)
    os.execvpe(cmd[0], cmd, _env(settings))
    return 0  # not reached


def _client(settings: Settings) -> httpx.Client:
    token = settings.token
    if not token and settings.token_file.exists():
        token = settings.token_file.read_text().strip()
    if not token:
        raise SystemExit("no token: set NEUROREG_TOKEN (or run `neuroreg up` on this machine)")
    return httpx.Client(
        base_url=settings.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _check(res: httpx.Response) -> Any:
    if res.is_success:
        return res.json()
    try:
        detail = res.json().get("detail")
    except ValueError:
        detail = res.text
    if isinstance(detail, list):  # validation errors: name each field
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in detail)
    raise SystemExit(f"error {res.status_code}: {detail}")


def load_run_file(path: Path) -> dict[str, Any]:
    """A run file: YAML or JSON with ``kind``, ``name`` and ``config``."""
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: expected a mapping with kind, name and config")
    return data


def _bar(fraction: float, width: int = 30) -> str:
    filled = int(round(fraction * width))
    return "[" + "#" * filled + "." * (width - filled) + f"] {fraction * 100:5.1f}%"


def wait_for(client: httpx.Client, run_id: int, *, poll: float = 1.0) -> dict[str, Any]:
    """Show a progress line until the run finishes; returns the final run."""
    tty = sys.stderr.isatty()
    last = ""
    while True:
        run = _check(client.get(f"/api/runs/{run_id}"))
        line = f"run {run_id} {run['status']:<9} {_bar(run['progress'])} {run['message']}"
        if tty:
            sys.stderr.write("\r" + line.ljust(len(last)))
        elif line != last:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
        last = line
        if run["status"] in ("succeeded", "failed", "cancelled"):
            if tty:
                sys.stderr.write("\n")
            return dict(run)
        time.sleep(poll)


def cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    body = load_run_file(Path(args.config))
    with _client(settings) as client:
        run = _check(client.post("/api/runs", json=body))
        print(f"submitted run {run['id']}: {settings.url}/runs/{run['id']}")
        if args.wait:
            run = wait_for(client, run["id"])
            if run["error"]:
                print(run["error"], file=sys.stderr)
            return 0 if run["status"] == "succeeded" else 1
    return 0


def cmd_runs(args: argparse.Namespace, settings: Settings) -> int:
    params = {k: v for k, v in vars(args).items() if k in ("kind", "status", "owner") and v}
    params["limit"] = args.limit
    with _client(settings) as client:
        page = _check(client.get("/api/runs", params=params))
    if args.json:
        print(json.dumps(page, indent=2))
        return 0
    print(
        f"{'id':>5}  {'status':<10} {'kind':<10} {'owner':<10} {'progress':>8}  "
        f"{'loss':>7} {'acc':>6}  name"
    )
    for r in page["items"]:
        m = r["last_metrics"]
        loss = f"{m['loss']:.3f}" if "loss" in m else "-"
        acc = f"{m['acc']:.3f}" if "acc" in m else "-"
        print(
            f"{r['id']:>5}  {r['status']:<10} {r['kind']:<10} {r['owner']:<10} "
            f"{r['progress'] * 100:>7.0f}%  {loss:>7} {acc:>6}  {r['name']}"
        )
    print(f"({len(page['items'])} of {page['total']})")
    return 0


def cmd_recordings(args: argparse.Namespace, settings: Settings) -> int:
    with _client(settings) as client:
        page = _check(client.get("/api/recordings"))
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


def cmd_gamma(args: argparse.Namespace, settings: Settings) -> int:
    with _client(settings) as client:
        table = _check(client.get("/api/summaries/gamma", params={"run_id": args.runs}))
    if not table["rows"]:
        print("no finished train runs with γ among these")
    for row in table["rows"]:
        _group_header(row, row["backbone"])
        print("  " + "".join(f"{'γ' + str(layer):<12}" for layer in row["layers"]))
        print("  " + "".join(f"{f'{m:.2f} ± {s:.2f}':<12}" for m, s in
                             zip(row["gamma_mean"], row["gamma_sem"], strict=True)))
    if table["skipped"]:
        print(f"\nskipped (not succeeded train runs): {table['skipped']}")
    return 0


def cmd_robustness(args: argparse.Namespace, settings: Settings) -> int:
    with _client(settings) as client:
        table = _check(client.get("/api/summaries/robustness", params={"run_id": args.runs}))
    if not table["rows"]:
        print("no finished evaluate runs among these")
    for row in table["rows"]:
        _group_header(row, f"{row['backbone']} on {row['dataset']}")
        noise = row["noise"]
        if noise:
            print("  σ         " + "".join(f"{s:<14g}" for s in noise["sigmas"]))
            print("  accuracy  " + "".join(f"{f'{m:.3f} ± {e:.3f}':<14}"
                                           for m, e in zip(noise["mean"], noise["sem"],
                                                           strict=True)))
        for norm, m in row["medians"].items():
            print(f"  median {norm:<5} {m['mean']:.4g} ± {m['sem']:.2g}  (n={m['n']})")
    if table["skipped"]:
        print(f"\nskipped (not succeeded evaluate runs): {table['skipped']}")
    return 0


_POINT_COLUMNS = (("clean_accuracy", "clean acc"), ("noise_accuracy", "noise acc σ>0"),
                  ("noise_accuracy_highest", "acc highest σ"), ("median_l2", "median L2"),
                  ("median_linf", "median L∞"))


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
    print(f"{'condition':<16}{'α':>6}{'n':>4}  " + "".join(
        f"{title:<20}" for _, title in _POINT_COLUMNS))
    for p in sorted(data["points"], key=lambda p: p["condition"] != "none"):
        print(f"{p['condition']:<16}{p['alpha']:>6g}{p['n']:>4}  " + "".join(
            f"{_mean_sem(p['measures'].get(name)):<20}" for name, _ in _POINT_COLUMNS))
    print(f"\neach condition vs None at the α of closest clean accuracy (within ±{tol:g}), "
          "paired by seed; difference = condition − None")
    print(f"{'condition':<16}{'matched α':>10}{'clean gap':>11}  {'measure':<34}{'pairs':>5}  "
          f"{'difference ± SEM':<22}{'t-test p':>10}{'Wilcoxon p':>12}")
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
            print((head if k == 0 else " " * len(head)) + f"{labels.get(name, name):<34}"
                  f"{t['pairs']:>5}  {diff:<22}{_p(t['t_test_p']):>10}{_p(t['wilcoxon_p']):>12}")
            fewest = t["pairs"] if fewest is None else min(fewest, t["pairs"])
    if not data["matched"]:
        print("(no condition besides None)")
    better = [v["label"] for v in data["measures"].values() if v["higher_is_better"]]
    print("\nhigher is better for every measure." if len(better) == len(data["measures"])
          else "\nhigher is better for: " + ", ".join(better) + "; lower for the rest.")
    if fewest:
        print(f"with n pairs the two-sided Wilcoxon p cannot go below 2/2^n "
              f"({2 / 2 ** fewest:.3g} for n = {fewest}).")


def cmd_frontier(args: argparse.Namespace, settings: Settings) -> int:
    with _client(settings) as client:
        data = _check(client.get(f"/api/studies/{args.study}/frontier",
                                 params={} if args.tolerance is None else
                                 {"tolerance": args.tolerance}))
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_frontier(data)
    return 0


def cmd_datasets(args: argparse.Namespace, settings: Settings) -> int:
    from ml.data.cifar import ARCHIVES, download, locate

    root = settings.datasets
    names = args.names or sorted(ARCHIVES)
    if unknown := sorted(set(names) - set(ARCHIVES)):
        print(f"error: unknown dataset {unknown}; known: {sorted(ARCHIVES)}", file=sys.stderr)
        return 2
    if args.action == "download":
        for name in names:
            try:
                print(f"{name}: {download(root, name)} (MD5 verified)")
            except (OSError, ValueError) as exc:  # URLError is an OSError
                print(f"error: could not download {name} into {root}: {exc}",
                      file=sys.stderr)
                return 1
        return 0
    print(f"datasets in {root} (train runs name them as config.dataset):")
    print("  digits32    built in (scikit-learn's digits at 32×32)")
    for name in ("cifar10", "cifar100"):
        where = locate(root, name)
        print(f"  {name:<10}  {where if where else 'missing: neuroreg datasets download ' + name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neuroreg", description=__doc__)
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
    return int(args.func(args, get_settings()) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
