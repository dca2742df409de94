"""A lab's load on the API: 50 training scripts logging and 5 dashboards reading at once.

Open loop (requests are sent on schedule whether or not earlier ones came back, and each
latency counts from the time it was due, so a slow server cannot hide its queue): 50
loggers each send one 100-point batch per second to their own run, and 5 dashboards each
poll the runs list and one run's series every 2 s, for ``--seconds`` (60). Then every
acknowledged point is checked to be stored exactly once, and a closed loop (50 writers
back to back, ``--saturate`` seconds) measures the most batches per second the API takes.
The real API (``neuroreg api``, one uvicorn process) runs on SQLite and, when reachable, on
PostgreSQL (127.0.0.1:5432). Goal at the open-loop load: write p99 < 100 ms, read p99 <
300 ms, 0 errors, 0 lost.

    .venv/bin/python bench/load.py [--seconds 60] [--saturate 15] [--sqlite-only]

Prints p50/p95/p99 per request type per backend and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest import PG_ADMIN, start_api  # noqa: E402

LOGGERS, DASHBOARDS, BATCH = 50, 5, 100
WRITE_EVERY, READ_EVERY = 1.0, 2.0


class Log:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = {}
        self.errors: dict[str, list[str]] = {}

    def add(self, kind: str, seconds: float, error: str | None = None) -> None:
        self.latency.setdefault(kind, []).append(seconds)
        if error is not None:
            self.errors.setdefault(kind, []).append(error)

    def table(self) -> dict[str, dict[str, float]]:
        out = {}
        for kind, values in sorted(self.latency.items()):
            ms = 1000 * np.asarray(values)
            out[kind] = {"n": len(values), "p50_ms": float(np.percentile(ms, 50)),
                         "p95_ms": float(np.percentile(ms, 95)),
                         "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()),
                         "errors": len(self.errors.get(kind, []))}
        return out


async def _timed(log: Log, kind: str, due: float, call: Any) -> httpx.Response | None:
    try:
        res = await call
        error = None if res.status_code < 400 else f"{res.status_code} {res.text[:120]}"
    except httpx.HTTPError as exc:
        res, error = None, f"{type(exc).__name__}: {exc}"
    log.add(kind, time.perf_counter() - due, error)
    return res if error is None else None


async def open_loop(url: str, token: str, runs: list[int], seconds: float
                    ) -> tuple[Log, dict[int, int]]:
    log, acked = Log(), dict.fromkeys(runs, 0)
    limits = httpx.Limits(max_connections=LOGGERS + 2 * DASHBOARDS + 10)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=30, limits=limits) as api:
        start = time.perf_counter() + 0.5
        tasks: list[asyncio.Task[Any]] = []

        async def logger(run_id: int, offset: float) -> None:
            k = 0
            while (due := start + offset + k * WRITE_EVERY) < start + seconds:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                body = {"points": [{"key": "loss", "step": k * BATCH + i,
                                    "value": 1.0 / (1 + k * BATCH + i)} for i in range(BATCH)]}

                async def send(body: dict[str, Any] = body, due: float = due) -> None:
                    res = await _timed(log, "write batch", due,
                                       api.post(f"/api/runs/{run_id}/metrics", json=body))
                    if res is not None:
                        acked[run_id] += res.json()["accepted"]

                tasks.append(asyncio.create_task(send()))  # never waits for the last one
                k += 1

        async def dashboard(offset: float, rng: random.Random) -> None:
            k = 0
            while (due := start + offset + k * READ_EVERY) < start + seconds:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                run_id = rng.choice(runs)
                tasks.append(asyncio.create_task(_timed(
                    log, "read runs list", due, api.get("/api/runs", params={"limit": 50}))))
                tasks.append(asyncio.create_task(_timed(
                    log, "read series", due, api.get(f"/api/runs/{run_id}/series"))))
                k += 1

        rng = random.Random(0)
        await asyncio.gather(
            *[logger(r, rng.random() * WRITE_EVERY) for r in runs],
            *[dashboard(rng.random() * READ_EVERY, random.Random(d)) for d in range(DASHBOARDS)])
        await asyncio.gather(*tasks)
    return log, acked


async def closed_loop(url: str, token: str, runs: list[int], seconds: float) -> dict[str, float]:
    done, errors, kinds = 0, 0, []
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=60, limits=httpx.Limits(max_connections=LOGGERS)) as api:
        end = time.perf_counter() + seconds

        async def writer(run_id: int) -> None:
            nonlocal done, errors
            k = 10**6  # steps beyond the open loop's
            while time.perf_counter() < end:
                body = {"points": [{"key": "saturate", "step": k * BATCH + i, "value": 1.0}
                                   for i in range(BATCH)]}
                try:
                    res = await api.post(f"/api/runs/{run_id}/metrics", json=body)
                    ok = res.status_code == 200
                except httpx.HTTPError as exc:
                    ok = False
                    kinds.append(type(exc).__name__)
                done, errors = done + ok, errors + (not ok)
                k += 1

        t0 = time.perf_counter()
        await asyncio.gather(*[writer(r) for r in runs])
        elapsed = time.perf_counter() - t0
    return {"batches_per_s": done / elapsed, "points_per_s": done * BATCH / elapsed,
            "errors": errors, "error_kinds": sorted(set(kinds))}


def run_backend(name: str, database_url: str | None, seconds: float,
                saturate: float) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"neuroreg-load-{name}-"))
    proc, url = start_api(data_dir, database_url)
    try:
        token = (data_dir / "admin-token").read_text().strip()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                          timeout=30) as api:
            runs = [api.post("/api/runs", json={"kind": "external", "name": f"logger {i}"}
                             ).json()["id"] for i in range(LOGGERS)]
        log, acked = asyncio.run(open_loop(url, token, runs, seconds))
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                          timeout=60) as api:
            stored = {r: next((k["count"] for k in api.get(f"/api/runs/{r}/metrics").json()
                               if k["key"] == "loss"), 0) for r in runs}
        lost = sum(max(acked[r] - stored[r], 0) for r in runs)
        extra = sum(max(stored[r] - acked[r], 0) for r in runs)  # stored but not acked
        saturation = asyncio.run(closed_loop(url, token, runs, saturate))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)
    return {"requests": log.table(), "acknowledged_points": sum(acked.values()),
            "lost": lost, "stored_unacknowledged": extra, "saturation": saturation,
            "first_errors": {k: v[:3] for k, v in log.errors.items()}}


def _pg_database() -> tuple[str, Any] | None:
    from sqlalchemy import create_engine, text

    try:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        name = f"neuroreg_load_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 — no PostgreSQL here: SQLite only
        print(f"PostgreSQL unreachable ({type(exc).__name__}); SQLite only", flush=True)
        return None

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name, drop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--saturate", type=float, default=15.0)
    ap.add_argument("--sqlite-only", action="store_true")
    args = ap.parse_args()
    backends: dict[str, dict[str, Any]] = {}
    backends["sqlite"] = run_backend("sqlite", None, args.seconds, args.saturate)
    pg = None if args.sqlite_only else _pg_database()
    if pg is not None:
        try:
            backends["postgresql"] = run_backend("postgresql", pg[0], args.seconds, args.saturate)
        finally:
            pg[1]()
    print(f"\n{LOGGERS} loggers × one {BATCH}-point batch per {WRITE_EVERY:g} s, {DASHBOARDS} "
          f"dashboards × (runs list + a series) per {READ_EVERY:g} s, {args.seconds:g} s, "
          "open loop (latency from when each request was due)")
    for name, b in backends.items():
        print(f"\n{name}")
        print(f"  {'request':<15} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
              f"{'max ms':>8} {'errors':>7}")
        for kind, r in b["requests"].items():
            print(f"  {kind:<15} {r['n']:>6} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} "
                  f"{r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} {r['errors']:>7}")
        s = b["saturation"]
        print(f"  acknowledged {b['acknowledged_points']} points: {b['lost']} lost, "
              f"{b['stored_unacknowledged']} stored without an acknowledgement")
        print(f"  closed loop, {LOGGERS} writers: {s['batches_per_s']:.0f} batches/s "
              f"({s['points_per_s']:.0f} points/s), {s['errors']} errors "
              f"{s['error_kinds'] or ''}")
        for kind, errs in b["first_errors"].items():
            print(f"  first {kind} errors: {errs}")
    goals = {name: {"write_p99_ok": b["requests"]["write batch"]["p99_ms"] < 100,
                    "read_p99_ok": max(b["requests"][k]["p99_ms"]
                                       for k in ("read runs list", "read series")) < 300,
                    "no_errors": all(r["errors"] == 0 for r in b["requests"].values()),
                    "none_lost": b["lost"] == 0} for name, b in backends.items()}
    print(json.dumps({"bench": "load", "seconds": args.seconds, "backends": backends,
                      "goals": goals}))


if __name__ == "__main__":
    main()
