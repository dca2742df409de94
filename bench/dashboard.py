"""Time from navigation to the first drawn plot, in headless Debian chromium on loopback:

- a run page whose metric has 1,000,000 points (the server sends ≤ 2,000 per series:
  min/max rollups);
- a study page (2 conditions × 3 seeds × 2 α, evaluated) whose target covers 5,000
  stimuli: its first plot, and its 5,000×5,000 S_target (the server sends an exact 200×200
  block-mean overview);
- the similarity run page of that target (S_target, S_data and their difference).

Each page is loaded ``--repeats`` times in new tabs of one browser profile (the first
load fills the cache with plotly.js, as a user's first visit does; later loads are a
returning user's); the time is ``performance.now()`` at the first animation frame where
the plot's SVG exists with data in it (navigation start = 0). Reported: the first (cold)
load and the median of the warm ones, and where the time went: when plotly.js had loaded
and run, and how long the first figure took to draw.

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

from core.settings import Settings  # noqa: E402
from core.store.db import session_scope  # noqa: E402
from core.store.models import Run  # noqa: E402
from core.store.users import ensure_admin  # noqa: E402
from tests.browser.test_pages import _study_with_results  # noqa: E402
from tests.livesrv import live_server  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


# polled at each animation frame; each returns the time it first saw the plot, read in the
# page (a later evaluate() would also count whatever the page draws next)
DRAWN = ("() => {{ const d = document.querySelector(\"{0}\");"
         " return d && d.data && d.data.length && d.querySelector('.main-svg')"
         " && performance.now(); }}")
ANY = ("() => [...document.querySelectorAll('.js-plotly-plot')]"
       ".some((d) => d.data && d.data.length && d.querySelector('.main-svg'))"
       " && performance.now()")
MARKS = ("() => Object.fromEntries(performance.getEntries()"
         ".filter((e) => ['plotly:ready', 'plot:draw'].includes(e.name))"
         ".map((e) => [e.name, e.entryType === 'measure' ? e.duration : e.startTime]))")


def load_times(browser, url: str, token: str, path: str, selector: str, repeats: int
               ) -> list[dict[str, float]]:  # type: ignore[no-untyped-def]
    """Per load: first plot of any kind, the plot ``selector``, and the marks."""
    out = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    for _ in range(repeats):
        page = context.new_page()
        page.goto(f"{url}/#token={token}")  # stores the token; not timed
        page.goto(f"{url}{path}")
        first = page.wait_for_function(ANY, timeout=60_000).json_value()
        target = page.wait_for_function(DRAWN.format(selector), timeout=60_000).json_value()
        out.append({"first": first, "target": target, **page.evaluate(MARKS)})
        page.close()
    context.close()
    return out


def summary(times: list[dict[str, float]], key: str) -> tuple[float, float]:
    """(cold, median of the warm loads) of one timing."""
    return round(times[0][key], 1), round(statistics.median(t[key] for t in times[1:]), 1)


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
        study = _study_with_results(settings, args.stimuli, models=False)
        with session_scope(settings.db_url) as s:
            sim = s.get(Run, study).input_run_id
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=FLAGS)
            pages = {
                "run page": load_times(browser, url, token, f"/runs/{run['id']}", ".chart",
                                       args.repeats),
                "study page": load_times(browser, url, token, f"/studies/{study}",
                                         "#fig-target-S_target_neural_model", args.repeats),
                "similarity page": load_times(browser, url, token, f"/runs/{sim}",
                                              "#fig-target-S_target_neural_model",
                                              args.repeats),
            }
            browser.close()
    out: dict[str, object] = {"bench": "dashboard", "points": args.points,
                              "stimuli": args.stimuli}
    print(f"navigation → drawn plot, ms (cold / median of {args.repeats - 1} warm loads)")
    for name, times in pages.items():
        what = {"run page": f"{args.points:,}-point metric",
                "study page": f"{args.stimuli:,}×{args.stimuli:,} S_target",
                "similarity page": f"{args.stimuli:,}×{args.stimuli:,} S_target"}[name]
        first, target = summary(times, "first"), summary(times, "target")
        ready, draw = summary(times, "plotly:ready"), summary(times, "plot:draw")
        print(f"{name:16s} first plot {first[0]:7.1f} / {first[1]:7.1f}   {what} "
              f"{target[0]:7.1f} / {target[1]:7.1f}   (plotly.js ready at {ready[1]:.0f}, "
              f"first figure drawn in {draw[1]:.0f})")
        key = name.split()[0]
        out.update({f"{key}_first_cold_ms": first[0], f"{key}_first_warm_ms": first[1],
                    f"{key}_target_cold_ms": target[0], f"{key}_target_warm_ms": target[1],
                    f"{key}_plotly_ready_warm_ms": ready[1]})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
