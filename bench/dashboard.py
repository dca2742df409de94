"""Time from navigation to the first drawn plot, in headless Debian chromium on loopback:

- a run page whose metric has 1,000,000 points (the server sends ≤ 2,000 per series:
  min/max rollups);
- a similarity run page whose targets cover 5,000 stimuli (5,000×5,000 matrices: the
  server sends an exact 200×200 block-mean overview).

Each page is loaded ``--repeats`` times in new tabs of one browser profile (the first
load fills the cache with plotly.js, 3.5 MB, as a user's first visit does; later loads are
a returning user's); the time is ``performance.now()`` when the plot's SVG exists with
data in it (navigation start = 0). Reported: the first (cold) load and the median of the
warm ones.

    .venv/bin/python bench/dashboard.py [--points 1000000] [--stimuli 5000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.settings import Settings  # noqa: E402
from server.store.db import session_scope  # noqa: E402
from server.store.users import ensure_admin  # noqa: E402
from tests.livesrv import live_server  # noqa: E402
from tests.server.test_matrices import stored_targets  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def first_plot_ms(browser, url: str, token: str, path: str, selector: str, repeats: int
                  ) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    for _ in range(repeats):
        page = context.new_page()
        page.goto(f"{url}/#token={token}")  # stores the token; not timed
        page.goto(f"{url}{path}")
        page.wait_for_function(
            f"() => {{ const d = document.querySelector(\"{selector}\");"
            " return d && d.data && d.data.length && d.querySelector('.main-svg'); }",
            timeout=60_000)
        times.append(page.evaluate("() => performance.now()"))
        page.close()
    context.close()
    return times


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--stimuli", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="neuroreg-bench-")))
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                           timeout=300)
        run = api.post("/api/runs", json={"kind": "external", "name": "1M points"}).json()
        t0 = time.perf_counter()
        for start in range(0, args.points, 10_000):
            api.post(f"/api/runs/{run['id']}/metrics", json={"points": [
                {"key": "loss", "step": k, "value": 1.0 / (1 + k % 977)}
                for k in range(start, min(start + 10_000, args.points))]}).raise_for_status()
        print(f"logged {args.points} points in {time.perf_counter() - t0:.1f} s", flush=True)
        sim = stored_targets(settings, args.stimuli)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=FLAGS)
            run_ms = first_plot_ms(browser, url, token, f"/runs/{run['id']}", ".chart",
                                   args.repeats)
            matrix_ms = first_plot_ms(browser, url, token, f"/runs/{sim}",
                                      "#fig-target-S_target_neural_model", args.repeats)
            browser.close()
    out = {"bench": "dashboard", "points": args.points, "stimuli": args.stimuli,
           "run_page_cold_ms": round(run_ms[0], 1),
           "run_page_warm_ms": round(statistics.median(run_ms[1:]), 1),
           "matrix_page_cold_ms": round(matrix_ms[0], 1),
           "matrix_page_warm_ms": round(statistics.median(matrix_ms[1:]), 1)}
    print(f"run page, {args.points:,}-point metric: first plot {out['run_page_cold_ms']} ms "
          f"cold, {out['run_page_warm_ms']} ms warm (median of {args.repeats - 1})")
    print(f"similarity page, {args.stimuli:,}×{args.stimuli:,} target: first heatmap "
          f"{out['matrix_page_cold_ms']} ms cold, {out['matrix_page_warm_ms']} ms warm")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
