"""Metric ingest rate through the batch endpoint and 1M-point series fetch latency.

Runs the real API (`neuroreg api` in a subprocess) on SQLite and, when reachable, on
PostgreSQL (127.0.0.1:5432), and prints a table plus one JSON line:

    python bench/ingest.py [--points 1000000] [--batch 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

PG_ADMIN = os.environ.get("NEUROREG_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api(data_dir: Path, database_url: str | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(os.environ, NEUROREG_DATA_DIR=str(data_dir), NEUROREG_PORT=str(port))
    if database_url:
        env["NEUROREG_DATABASE_URL"] = database_url
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/api/health").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("API did not start")
        time.sleep(0.2)
    return proc, url


def store_side_by_side(db_url: str, run_id: int, points: int) -> dict[str, float]:
    """The same 2,000-point reduction from rollups and from a scan of the raw points."""
    from core.store import rollups
    from core.store.db import session_scope
    from core.store.metrics import decimate_raw

    with session_scope(db_url) as s:
        lo, hi, total = rollups.summary(s, run_id, "loss")
        assert total == points
        timings = {}
        for name, fn in (("rollups", rollups.merged), ("raw_scan", decimate_raw)):
            lat = []
            for _ in range(3):
                t = time.perf_counter()
                fn(s, run_id, "loss", lo=lo, hi=hi, groups=1000)
                lat.append(time.perf_counter() - t)
            timings[f"{name}_ms"] = 1000 * statistics.median(lat)
    timings["rollup_speedup"] = timings["raw_scan_ms"] / timings["rollups_ms"]
    return timings


def measure(url: str, token: str, points: int, batch: int) -> dict[str, float]:
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120
    ) as api:
        run_id = api.post("/api/runs", json={"kind": "train", "name": "bench"}).json()["id"]
        api.post(f"/api/runs/{run_id}/cancel")  # no worker here; keep the record honest
        t0 = time.perf_counter()
        for start in range(0, points, batch):
            body = {
                "points": [
                    {"key": "loss", "step": s, "value": 1.0 / (1 + s % 977)}
                    for s in range(start, min(start + batch, points))
                ]
            }
            api.post(f"/api/runs/{run_id}/metrics", json=body).raise_for_status()
        ingest_s = time.perf_counter() - t0
        spike = points // 3
        api.post(
            f"/api/runs/{run_id}/metrics",
            json={"points": [{"key": "spiky", "step": spike, "value": 1e6}]},
        )
        lat = []
        for _ in range(5):
            t = time.perf_counter()
            s = api.get(f"/api/runs/{run_id}/metrics/loss", params={"max_points": 2000}).json()
            lat.append(time.perf_counter() - t)
        assert s["total"] == points and len(s["steps"]) <= 2000
    return {
        "run_id": run_id,
        "points_per_s": points / ingest_s,
        "series_fetch_ms": 1000 * statistics.median(lat),
        "series_fetch_max_ms": 1000 * max(lat),
        "returned_points": len(s["steps"]),
    }


def bench_backend(name: str, database_url: str | None, points: int, batch: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_api(Path(tmp), database_url)
        try:
            token = (Path(tmp) / "admin-token").read_text().strip()
            result = measure(url, token, points, batch)
            db = database_url or f"sqlite:///{Path(tmp) / 'neuroreg.db'}"
            result.update(store_side_by_side(db, int(result.pop("run_id")), points))
            return result
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=10_000)
    args = ap.parse_args()
    results: dict[str, dict[str, float]] = {}
    results["sqlite"] = bench_backend("sqlite", None, args.points, args.batch)
    try:
        from sqlalchemy import create_engine, text

        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        db = f"neuroreg_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{db}"'))
        try:
            results["postgresql"] = bench_backend(
                "postgresql", PG_ADMIN.rsplit("/", 1)[0] + "/" + db, args.points, args.batch
            )
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
    except Exception as exc:  # PostgreSQL is optional for this bench
        print(f"postgresql skipped: {exc}", file=sys.stderr)
    print(
        f"{'backend':<11} {'points/s':>10} {'API fetch 1M->2k ms':>20} "
        f"{'rollups ms':>11} {'raw scan ms':>12} {'speedup':>8}"
    )
    for name, r in results.items():
        print(
            f"{name:<11} {r['points_per_s']:>10.0f} {r['series_fetch_ms']:>20.1f} "
            f"{r['rollups_ms']:>11.1f} {r['raw_scan_ms']:>12.1f} {r['rollup_speedup']:>7.0f}x"
        )
    flat = {"bench": "ingest", "points": args.points, "batch": args.batch}
    for name, r in results.items():
        flat.update({f"{name}_{k}": round(v, 1) for k, v in r.items()})
    print(json.dumps(flat))


if __name__ == "__main__":
    main()
