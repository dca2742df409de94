"""The demo's timeline as a newcomer meets it: ``neuroreg up`` on a fresh data directory,
then the time of each thing the README promises, read from the API as the dashboard reads
it (every 5 s):

    api           /api/health answers
    first chart   the demo train run has its first metric point (the live charts)
    similarity    the demo similarity run (simulated V1) has succeeded
    study         the demo study is submitted
    first eval    the study's first evaluation has succeeded (Fig. 4/5 have a line)
    first pair    None and Neural (model) of one seed are both evaluated: the study's first
                  paired row (Table 1, the paired tests, the frontier have a pair)
    done          the study has finished

Prints a table of minutes since ``up`` started, then one JSON line. ``--until`` stops
early at one of the events (``first-pair`` is the issue-36 goal: about 20 minutes on an
idle 2-core machine); ``--timeout`` (minutes) bounds the whole run, and Ctrl-C stops it
early; either way it prints what it saw. Load from other work
on the machine lengthens every step: the script prints the load average at start and end.

    python bench/demo_timeline.py [--until first-pair|done] [--timeout 120]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ("api", "first chart", "similarity", "study", "first eval", "first pair", "done")
DEMO_TRAIN = "demo: small CNN on digits32"
DEMO_SIMILARITY = "demo: simulated mouse V1, small"
DEMO_STUDY = "demo: None vs Neural (model), 3 seeds"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _runs(http: httpx.Client) -> list[dict[str, Any]]:
    res = http.get("/api/runs", params={"limit": 500})
    res.raise_for_status()
    body = res.json()
    return list(body["items"])


def observe(http: httpx.Client, seen: dict[str, float], now: float) -> None:
    """Record the events that have happened by ``now`` and were not seen before."""
    runs = _runs(http)
    by_name = {r["name"]: r for r in runs}

    def mark(event: str) -> None:
        seen.setdefault(event, now)

    train = by_name.get(DEMO_TRAIN)
    if train is not None and "first chart" not in seen:
        keys = http.get(f"/api/runs/{train['id']}/metrics").json()
        if keys:
            mark("first chart")
    sim = by_name.get(DEMO_SIMILARITY)
    if sim is not None and sim["status"] == "succeeded":
        mark("similarity")
    study = by_name.get(DEMO_STUDY)
    if study is None:
        return
    mark("study")
    kids = [r for r in runs if r.get("parent_id") == study["id"]]
    done_evals = [r for r in kids if r["kind"] == "evaluate" and r["status"] == "succeeded"]
    if done_evals:
        mark("first eval")
    trains = {r["id"]: r for r in kids if r["kind"] == "train"}
    evaluated: dict[int, set[str]] = {}
    for ev in done_evals:
        model = trains.get(ev.get("input_run_id") or -1)
        if model is not None:
            config = model.get("config") or {}
            evaluated.setdefault(int(config.get("seed", -1)), set()).add(
                str(config.get("target")))
    if any({"none", "neural-model"} <= targets for targets in evaluated.values()):
        mark("first pair")
    if study["status"] in ("succeeded", "failed", "cancelled"):
        mark("done")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--until", choices=["first-pair", "done"], default="done")
    parser.add_argument("--timeout", type=float, default=180.0, help="minutes")
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    until = args.until.replace("-", " ")

    data_dir = Path(tempfile.mkdtemp(prefix="neuroreg-demo-"))
    port = free_port()
    env = dict(os.environ, NEUROREG_DATA_DIR=str(data_dir), NEUROREG_PORT=str(port))
    for name in ("NEUROREG_API_URL", "NEUROREG_TOKEN", "NEUROREG_BROKER_URL",
                 "NEUROREG_DATABASE_URL"):
        env.pop(name, None)
    load_start = os.getloadavg()[0]
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "cli", "up", "--concurrency",
                             str(args.concurrency)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    token = ""
    for line in proc.stdout:  # the banner: its admin token line
        m = re.search(r"admin token\s*:\s*(\S+)", line)
        if m:
            token = m.group(1)
            break
    if not token:
        proc.wait()
        print("neuroreg up printed no admin token", file=sys.stderr)
        return 1
    # keep reading what up and its worker print: a full pipe would stop them
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    seen: dict[str, float] = {}
    stopped = threading.Event()  # Ctrl-C: stop polling and print what was seen
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            while time.monotonic() - started < args.timeout * 60 and not stopped.is_set():
                now = time.monotonic() - started
                try:
                    if http.get("/api/health").status_code == 200:
                        seen.setdefault("api", now)
                        observe(http, seen, now)
                except httpx.HTTPError:
                    pass  # not up yet, or busy: the next poll
                if until in seen:
                    break
                stopped.wait(5)  # a poll interval, as the dashboard's
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    load_end = os.getloadavg()[0]
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load "
          f"{load_start:.1f} at start, {load_end:.1f} at end; concurrency "
          f"{args.concurrency}")
    print(f"{'event':<14}{'minutes':>10}")
    for event in EVENTS:
        at = seen.get(event)
        print(f"{event:<14}{'—' if at is None else f'{at / 60:.1f}':>10}")
    print(json.dumps({"bench": "demo_timeline", "cpus": os.cpu_count(),
                      "load": [round(load_start, 2), round(load_end, 2)],
                      "concurrency": args.concurrency,
                      "minutes": {e: round(seen[e] / 60, 2) for e in EVENTS if e in seen}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
