"""How long the CLI takes to answer, beside what Python and one HTTP request take.

Starts the real API (`neuroreg api` in a subprocess, SQLite in a temporary data
directory, 20 external runs in it), then times each command as a user runs it, as a
fresh process, N times (median and min, after one untimed run):

    python -c pass                                   the interpreter alone
    python -c "import httpx; httpx.get(.../health)"  the interpreter and one round trip:
                                                     the baseline (pass + round trip)
    neuroreg --help
    neuroreg runs                                    a page of runs from the live server

and prints a table with each command's multiple of the baseline (the goal of issue 34:
--help and runs within 2×), then one JSON line. ``--old REV`` also times
``python -m server.cli --help`` and ``runs`` of an older commit (checked out with
``git worktree add`` in a temporary folder, removed after), e.g. ``--old 9b104dd``, the
last one before the CLI's move out of server/:

    python bench/cli_startup.py [--n 7] [--old 9b104dd]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_api(data_dir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """``neuroreg api`` on a free port; yields its URL and the environment a user of this
    machine has (NEUROREG_DATA_DIR and NEUROREG_PORT: the CLI finds the admin token)."""
    port = free_port()
    env = dict(os.environ, NEUROREG_DATA_DIR=str(data_dir), NEUROREG_PORT=str(port))
    env.pop("NEUROREG_API_URL", None)
    env.pop("NEUROREG_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "cli", "api"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:  # a separate process: polling is how a client finds it up
            try:
                if httpx.get(f"{url}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the API did not start")
            time.sleep(0.2)
        yield url, env
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def fill(url: str, data_dir: Path, runs: int) -> None:
    from neuroreg.client import Client

    token = (data_dir / "admin-token").read_text().strip()
    with Client(url, token, offline=False, spool_dir=data_dir / "spool") as nr:
        for i in range(runs):
            run = nr.create_external(f"bench run {i}", params={"lr": 0.1, "seed": i})
            nr.log_batch(run["id"], {"loss": 1.0 / (i + 1), "acc": 0.5}, step=0)
            nr.finish(run["id"])


def timed(argv: list[str], env: dict[str, str], n: int, cwd: Path = ROOT) -> list[float]:
    """Wall seconds of ``argv`` as a fresh process, ``n`` times after one untimed run."""
    out = []
    for k in range(n + 1):
        t0 = time.perf_counter()
        res = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {res.returncode}: {res.stderr[-500:]}")
        if k:
            out.append(elapsed)
    return out


@contextmanager
def old_tree(rev: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="cli-old-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(folder), rev], cwd=ROOT,
                   check=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT,
                       check=True)
        shutil.rmtree(folder.parent, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=7, help="timed runs of each command (default 7)")
    ap.add_argument("--runs", type=int, default=20, help="runs stored on the server")
    ap.add_argument("--old", metavar="REV", help="also time python -m server.cli of REV")
    args = ap.parse_args()
    neuroreg = Path(sys.executable).with_name("neuroreg")
    cli = [str(neuroreg)] if neuroreg.exists() else [sys.executable, "-m", "cli"]
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, live_api(Path(tmp) / "data") as (url, env):
        fill(url, Path(tmp) / "data", args.runs)
        probe = f"import httpx; httpx.get({url + '/api/health'!r}).raise_for_status()"
        rows["python -c pass"] = timed([sys.executable, "-c", "pass"], env, args.n)
        rows["python + one round trip (httpx)"] = timed([sys.executable, "-c", probe], env,
                                                        args.n)
        rows["neuroreg --help"] = timed([*cli, "--help"], env, args.n)
        rows["neuroreg runs"] = timed([*cli, "runs"], env, args.n)
        if args.old:
            with old_tree(args.old) as old:
                old_env = dict(env, PYTHONPATH=str(old))
                for what in ("--help", "runs"):
                    rows[f"{args.old}: neuroreg {what}"] = timed(
                        [sys.executable, "-m", "server.cli", what], old_env, args.n, cwd=old)
    median = {k: statistics.median(v) for k, v in rows.items()}
    base = median["python + one round trip (httpx)"]
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}; median of {args.n} fresh processes each")
    print(f"{'command':<36}{'median s':>10}{'min s':>9}{'× baseline':>12}")
    for name, times in rows.items():
        ratio = "baseline" if name.startswith("python + one") else f"{median[name] / base:.2f}×"
        print(f"{name:<36}{median[name]:>10.3f}{min(times):>9.3f}{ratio:>12}")
    ratios = {"help": median["neuroreg --help"] / base, "runs": median["neuroreg runs"] / base}
    print(f"goal (--help and runs within 2× of the baseline): "
          f"{'met' if max(ratios.values()) <= 2 else 'NOT met'}")
    print(json.dumps({"bench": "cli_startup", "n": args.n, "cpus": os.cpu_count(),
                      "median_s": {k: round(v, 4) for k, v in median.items()},
                      "ratio_help": round(ratios["help"], 3),
                      "ratio_runs": round(ratios["runs"], 3),
                      "goal_met": max(ratios.values()) <= 2}))


if __name__ == "__main__":
    main()
