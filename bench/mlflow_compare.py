"""Tracking throughput and latency, side by side with MLflow's tracking server.

Both servers run here, one at a time, on the same kind of backend database (a fresh
SQLite file, then a fresh PostgreSQL database each), driven by the same HTTP client:

- ingest: metric points/s through each one's batch API, and through MLflow's own Python
  client (``log_batch``) into MLflow's server and into neuroreg's MLflow-compatible API
  (docs/mlflow.md), which also answers the run-list and series requests below as MLflow;
- native ingest: metric points/s through each one's batch API (MLflow's ``runs/log-batch``
  takes at most 1,000 metrics per request, so both send batches of 1,000; ours is also
  measured at its usual 10,000);
- run list: p50/p95 latency of the first page (100 runs) with 1,000 runs stored;
- series fetch: p50/p95 latency of one whole 100,000-point series (MLflow's
  ``metrics/get-history`` pages through it; ours returns it in one response).

MLflow is not a dependency of neuroreg: install it in its own environment and pass its
executable (default: ``mlflow`` on PATH):

    python3 -m venv /tmp/mlflow-venv && /tmp/mlflow-venv/bin/pip install mlflow psycopg2-binary
    .venv/bin/python bench/mlflow_compare.py --mlflow /tmp/mlflow-venv/bin/mlflow
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import PG_ADMIN, free_port, start_api  # noqa: E402

BATCH = 1000


def _p(values: list[float], q: float) -> float:
    return 1000 * statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(
        values) > 1 else 1000 * values[0]


def _latency(fn: Callable[[], Any], n: int) -> dict[str, float]:
    fn()  # warm
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - t)
    return {"p50_ms": _p(lat, 50), "p95_ms": _p(lat, 95)}


def start_mlflow(exe: str, backend: str, artifacts: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = artifacts.parent / "mlflow-server.log"
    proc = subprocess.Popen(
        [exe, "server", "--backend-store-uri", backend, "--default-artifact-root",
         str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"mlflow server did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.5)


CLIENT_INGEST = """
import sys, time, uuid
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

url, points, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = MlflowClient(tracking_uri=url)
exp = client.create_experiment(f"client-{uuid.uuid4().hex[:6]}")
run_id = client.create_run(exp).info.run_id
now = int(time.time() * 1000)
t0 = time.perf_counter()
for start in range(0, points, batch):
    client.log_batch(run_id, metrics=[Metric("loss", 1.0 / (1 + s % 977), now, s)
                                      for s in range(start, min(start + batch, points))])
print(points / (time.perf_counter() - t0))
"""


def client_ingest(python: str, url: str, token: str | None, points: int) -> float:
    """Points/s through MLflow's own Python client (``MlflowClient.log_batch``, 1,000
    metrics a call, MLflow's bound) into the server at ``url``, run by ``python`` (the
    MLflow environment's: neuroreg does not depend on MLflow)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    done = subprocess.run([python, "-c", CLIENT_INGEST, url, str(points), str(BATCH)],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"MLflow's client failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def bench_mlflow(url: str, points: int, runs: int, fetches: int, python: str,
                 token: str | None = None) -> dict[str, float]:
    """MLflow's REST API at ``url``: MLflow's own server, or neuroreg's (with a token)."""
    api = httpx.Client(base_url=f"{url}/api/2.0/mlflow", timeout=300, headers={
        "Authorization": f"Bearer {token}"} if token else {})
    exp = api.post("/experiments/create", json={"name": f"bench-{uuid.uuid4().hex[:6]}"})
    exp_id = exp.raise_for_status().json()["experiment_id"]
    run_id = api.post("/runs/create", json={"experiment_id": exp_id}).json()["run"]["info"][
        "run_id"]
    now = int(time.time() * 1000)
    t0 = time.perf_counter()
    for start in range(0, points, BATCH):
        metrics = [{"key": "loss", "value": 1.0 / (1 + s % 977), "timestamp": now, "step": s}
                   for s in range(start, min(start + BATCH, points))]
        api.post("/runs/log-batch", json={"run_id": run_id, "metrics": metrics}
                 ).raise_for_status()
    ingest = points / (time.perf_counter() - t0)
    for _ in range(runs - 1):
        api.post("/runs/create", json={"experiment_id": exp_id}).raise_for_status()

    def list_runs() -> None:
        res = api.post("/runs/search", json={"experiment_ids": [exp_id], "max_results": 100})
        assert len(res.raise_for_status().json()["runs"]) == 100

    def fetch() -> None:
        got, token = 0, None
        while True:
            params: dict[str, Any] = {"run_id": run_id, "metric_key": "loss",
                                      "max_results": 25000}
            if token:
                params["page_token"] = token
            body = api.get("/metrics/get-history", params=params).raise_for_status().json()
            got += len(body.get("metrics", []))
            token = body.get("next_page_token")
            if not token:
                break
        assert got == points, got

    out = {"ingest_points_per_s": ingest,
           "client_ingest_points_per_s": client_ingest(python, url, token, points)}
    out.update({f"list_{k}": v for k, v in _latency(list_runs, fetches).items()})
    out.update({f"fetch_{k}": v for k, v in _latency(fetch, fetches).items()})
    return out


def bench_ours(url: str, token: str, points: int, runs: int, fetches: int) -> dict[str, float]:
    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                       timeout=300)
    out: dict[str, float] = {}
    for batch, label in ((BATCH, "ingest_points_per_s"), (10_000, "ingest_10k_points_per_s")):
        run_id = api.post("/api/runs", json={"kind": "external"}).json()["id"]
        t0 = time.perf_counter()
        for start in range(0, points, batch):
            body = {"points": [{"key": "loss", "step": s, "value": 1.0 / (1 + s % 977)}
                               for s in range(start, min(start + batch, points))]}
            api.post(f"/api/runs/{run_id}/metrics", json=body).raise_for_status()
        out[label] = points / (time.perf_counter() - t0)
        if batch == BATCH:
            series_run = run_id
    for _ in range(runs - 2):
        api.post("/api/runs", json={"kind": "external"}).raise_for_status()

    def list_runs() -> None:
        res = api.get("/api/runs", params={"limit": 100})
        assert len(res.raise_for_status().json()["items"]) == 100

    def fetch() -> None:
        s = api.get(f"/api/runs/{series_run}/metrics/loss", params={"max_points": points})
        assert len(s.raise_for_status().json()["steps"]) == points

    out.update({f"list_{k}": v for k, v in _latency(list_runs, fetches).items()})
    out.update({f"fetch_{k}": v for k, v in _latency(fetch, fetches).items()})
    return out


def pg_database() -> tuple[Any, str]:
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    return admin, name


def drop(admin: Any, name: str) -> None:
    from sqlalchemy import text

    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mlflow", default=shutil.which("mlflow") or "mlflow")
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--fetches", type=int, default=20)
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args()
    python = str(Path(args.mlflow).parent / "python")  # the MLflow environment's client
    results: dict[str, dict[str, float]] = {}
    pg_host = PG_ADMIN.split("@", 1)[1].rsplit("/", 1)[0]
    pg_user = PG_ADMIN.split("//", 1)[1].split("@", 1)[0]
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            admin = None
            if backend == "postgresql":
                admin, ours_db = pg_database()
                _, theirs_db = pg_database()
                ours_url = PG_ADMIN.rsplit("/", 1)[0] + "/" + ours_db
                theirs_url = f"postgresql+psycopg2://{pg_user}@{pg_host}/{theirs_db}"
            else:
                ours_url = None
                theirs_url = f"sqlite:///{tmp_path / 'mlflow.db'}"
            try:
                proc, url = start_api(tmp_path / "neuroreg", ours_url)
                try:
                    token = (tmp_path / "neuroreg" / "admin-token").read_text().strip()
                    results[f"{backend}_neuroreg"] = bench_ours(url, token, args.points,
                                                                args.runs, args.fetches)
                    print(f"{backend}_neuroreg", results[f"{backend}_neuroreg"], flush=True)
                    # the same MLflow requests (and MLflow's client) into neuroreg's
                    # MLflow-compatible API (docs/mlflow.md)
                    results[f"{backend}_neuroreg_mlflow_api"] = bench_mlflow(
                        url, args.points, args.runs, args.fetches, python, token=token)
                    print(f"{backend}_neuroreg_mlflow_api",
                          results[f"{backend}_neuroreg_mlflow_api"], flush=True)
                finally:
                    proc.terminate()
                    proc.wait(timeout=20)
                proc, url = start_mlflow(args.mlflow, theirs_url, tmp_path / "mlruns")
                try:
                    results[f"{backend}_mlflow"] = bench_mlflow(url, args.points, args.runs,
                                                               args.fetches, python)
                    print(f"{backend}_mlflow", results[f"{backend}_mlflow"], flush=True)
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
            finally:
                if admin is not None:
                    drop(admin, ours_db)
                    drop(admin, theirs_db)
    cols = ("ingest_points_per_s", "list_p50_ms", "list_p95_ms", "fetch_p50_ms",
            "fetch_p95_ms")
    print(f"{'server':<30}" + "".join(f"{c:>21}" for c in cols))
    for name, r in results.items():
        print(f"{name:<30}" + "".join(f"{r[c]:>21.1f}" for c in cols))
    flat: dict[str, Any] = {"bench": "mlflow_compare", "points": args.points,
                            "runs": args.runs, "batch": BATCH}
    for backend in args.backends.split(","):
        ours, theirs = results[f"{backend}_neuroreg"], results[f"{backend}_mlflow"]
        flat[f"{backend}_ingest_ratio"] = round(
            ours["ingest_points_per_s"] / theirs["ingest_points_per_s"], 2)
        flat[f"{backend}_ingest_10k_ratio"] = round(
            ours["ingest_10k_points_per_s"] / theirs["ingest_points_per_s"], 2)
        via = results[f"{backend}_neuroreg_mlflow_api"]
        flat[f"{backend}_mlflow_api_ingest_ratio"] = round(
            via["ingest_points_per_s"] / theirs["ingest_points_per_s"], 2)
        flat[f"{backend}_mlflow_client_ingest_ratio"] = round(
            via["client_ingest_points_per_s"] / theirs["client_ingest_points_per_s"], 2)
        print(f"{backend}: MLflow's client into neuroreg "
              f"{via['client_ingest_points_per_s']:.0f} points/s vs into MLflow "
              f"{theirs['client_ingest_points_per_s']:.0f} "
              f"({flat[f'{backend}_mlflow_client_ingest_ratio']}x)")
        for k in ("list_p95_ms", "fetch_p95_ms"):
            flat[f"{backend}_{k}_ours"] = round(ours[k], 1)
            flat[f"{backend}_{k}_mlflow"] = round(theirs[k], 1)
        print(f"{backend}: ingest {flat[f'{backend}_ingest_ratio']}x MLflow at the same "
              f"batch ({flat[f'{backend}_ingest_10k_ratio']}x with ours at 10k); p95 list "
              f"{ours['list_p95_ms']:.1f} vs {theirs['list_p95_ms']:.1f} ms, p95 fetch "
              f"{ours['fetch_p95_ms']:.1f} vs {theirs['fetch_p95_ms']:.1f} ms")
    print(json.dumps(flat))


if __name__ == "__main__":
    main()
