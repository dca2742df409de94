"""Querying, sorting and grouping 10,000 runs on SQLite and PostgreSQL.

One run, both databases side by side: ``--runs`` runs (10,000), each with 10 config
fields and 5 metrics of ``--points`` points each, stored through the store's own
functions; then through the HTTP API (an in-process TestClient, so the timings include
FastAPI and serialisation but no network):

1. a query + sort + first page: ``GET /api/runs?q=config.alpha >= 8 and
   metrics.test_acc.last > 0.5 and (tag = "fig4" or tag = "fig6")&sort=
   metrics.test_acc.max&desc=true&limit=50``; p50/p95 over ``--repeats`` (goal p95 <
   150 ms);
2. grouping by two fields with two metrics' mean ± SEM: ``GET /api/run-groups?by=
   config.target&by=config.seed&metric=metrics.test_acc.last&metric=metrics.loss.min``
   (goal p95 < 300 ms);
3. the runs page in headless Debian chromium on a live server (loopback): navigation to
   the first drawn row of the same query, sorted, with three chosen columns — the first
   (cold) load and the median of ``--repeats-page`` warm ones (goal < 1 s). ``--no-page``
   skips it.

PostgreSQL is the one at ``NEUROREG_BENCH_PG`` (default ``postgresql+psycopg://
postgres@127.0.0.1:5432/test``; its tables are emptied first). Ends with one JSON line.

    .venv/bin/python bench/query.py [--runs 10000] [--points 20] [--repeats 30]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from core.store.db import engine_for, migrate, session_scope  # noqa: E402
from core.store.metrics import insert_points  # noqa: E402
from core.store.models import Base, Run, RunStatus, RunTag  # noqa: E402
from core.store.users import ensure_admin  # noqa: E402

QUERY = ('config.alpha >= 8 and metrics.test_acc.last > 0.5 and '
         '(tag = "fig4" or tag = "fig6")')
METRICS = ("test_acc", "loss", "acc", "sim_r", "test_loss")
TARGETS = ("none", "neural-model", "neural-data", "shuffle", "vgg")


def populate(url: str, n: int, points: int) -> float:
    """n runs with 10 config fields, 5 metrics and a tag each; seconds taken."""
    migrate(url)
    eng = engine_for(url)
    with eng.begin() as conn:  # empty, children first
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    with session_scope(url) as s:
        ensure_admin(s)
        owner_id = s.execute(text("SELECT id FROM users")).scalar_one()
    batch = 500
    for start in range(0, n, batch):
        with session_scope(url) as s:
            runs = []
            for i in range(start, min(n, start + batch)):
                cfg = {"alpha": float(rng.choice([0, 2, 8, 16, 32])),
                       "target": TARGETS[i % 5], "seed": int(i % 5), "width": 16,
                       "epochs": int(rng.integers(5, 40)), "lr": float(rng.uniform(0.01, 0.1)),
                       "batch_size": 64, "dataset": "cifar10", "backbone": "resnet18",
                       "pairs": "all"}
                runs.append(Run(name=f"run {i}", owner_id=owner_id, kind="train", config=cfg,
                                status=RunStatus.succeeded))
            s.add_all(runs)
            s.flush()
            for r in runs:
                s.add(RunTag(run_id=r.id, tag=("fig4", "fig6", "sweep")[r.id % 3]))
                base = rng.uniform(0.3, 0.95)
                pts = [(m, step, float(base + 0.01 * step * (k % 2 and -1 or 1)), None)
                       for k, m in enumerate(METRICS) for step in range(points)]
                insert_points(s, r.id, pts)
    return time.perf_counter() - t0


def timed(client, path: str, params: dict, repeats: int) -> dict:  # type: ignore[no-untyped-def]
    client.get(path, params=params)  # warm the caches once
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = client.get(path, params=params)
        times.append(1000 * (time.perf_counter() - t0))
        assert res.status_code == 200, res.text
    body = res.json()
    return {"p50_ms": round(float(np.percentile(times, 50)), 1),
            "p95_ms": round(float(np.percentile(times, 95)), 1),
            "rows": body.get("total", len(body.get("groups", [])))}


PAGE_ROW = "() => document.querySelector('#run-rows tr') && performance.now()"


def page_times(url: str, token: str, path: str, repeats: int, chromium: str) -> dict:
    """Navigation → first drawn row of the runs page at ``path``: cold and warm median."""
    import statistics

    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import FLAGS

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        for _ in range(repeats + 1):
            page = context.new_page()
            page.goto(f"{url}/tokens#token={token}")  # stores the token; not timed
            page.goto(f"{url}{path}")
            times.append(page.wait_for_function(PAGE_ROW, timeout=60_000).json_value())
            rows = page.locator("#run-rows tr").count()
            page.close()
        browser.close()
    return {"cold_ms": round(times[0], 1),
            "warm_ms": round(statistics.median(times[1:]), 1), "rows_drawn": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--repeats-page", type=int, default=5)
    ap.add_argument("--no-page", action="store_true", help="skip the browser timing")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    from fastapi.testclient import TestClient

    from core.settings import Settings
    from server.app import create_app

    tmp = Path(tempfile.mkdtemp())
    urls = {"sqlite": f"sqlite:///{tmp / 'bench.db'}",
            "postgresql": os.environ.get("NEUROREG_BENCH_PG",
                                         "postgresql+psycopg://postgres@127.0.0.1:5432/test")}
    out: dict = {"bench": "query", "runs": args.runs, "points_per_metric": args.points}
    print(f"{args.runs} runs × 10 config fields × 5 metrics × {args.points} points")
    print(f"{'database':<12}{'load s':>8}  {'query+sort p50':>15}{'p95':>8}  "
          f"{'group p50':>10}{'p95':>8}   rows")
    for name, url in urls.items():
        load = populate(url, args.runs, args.points)
        settings = Settings(data_dir=tmp / name, database_url=url)
        with TestClient(create_app(settings)) as client:
            with session_scope(url) as s:
                token = ensure_admin(s) or ""
            if not token:  # the admin exists: take a fresh token
                from core.store.models import User
                from core.store.users import issue_token

                with session_scope(url) as s:
                    token = issue_token(s, user=s.query(User).first(), name="bench")
            client.headers["Authorization"] = f"Bearer {token}"
            q = timed(client, "/api/runs", {"q": QUERY, "sort": "metrics.test_acc.max",
                                            "desc": "true", "limit": 50}, args.repeats)
            g = timed(client, "/api/run-groups", {
                "by": ["config.target", "config.seed"],
                "metric": ["metrics.test_acc.last", "metrics.loss.min"]}, args.repeats)
        out[name] = {"load_s": round(load, 1), "query": q, "group": g}
        if not args.no_page:
            from urllib.parse import urlencode

            from tests.livesrv import live_server

            path = "/?" + urlencode({"q": QUERY, "sort": "metrics.test_acc.max", "desc": "true",
                                     "columns": "config.alpha,config.target,metrics.loss.min"})
            with live_server(settings) as url:
                out[name]["page"] = page_times(url, token, path, args.repeats_page,
                                               args.chromium)
        page = out[name].get("page", {})
        print(f"{name:<12}{load:>8.1f}  {q['p50_ms']:>15.1f}{q['p95_ms']:>8.1f}  "
              f"{g['p50_ms']:>10.1f}{g['p95_ms']:>8.1f}   {q['rows']} / {g['rows']} groups"
              + (f"   runs page first row {page['cold_ms']:.0f} ms cold, "
                 f"{page['warm_ms']:.0f} ms warm" if page else ""))
    out["goals"] = {"query_p95_ms": 150, "group_p95_ms": 300, "page_first_row_ms": 1000}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
