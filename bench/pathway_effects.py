"""What the cheaper stimulus pathways change: held-out r(S_CNN, S_target) and test
accuracy of each deviation (``sim_every``, ``gamma_prune``; :mod:`ml.train.joint`)
against the exact default, with the same seeds in every arm.

Settings, fixed before any run: ResNet18 at width 8 on digits32, the paper's schedule for
``--epochs`` (default 12, as :mod:`ml.presets`), α = 8 (the presets' ablation α), the
target ``bench/train_overhead.py`` times with (the luminance of 3×4 blocks of 1,000
natural 36×64 patches, as unit vectors). Arms:

- ``exact``: the default, all pairs of M = 32 stimuli every step (496 pairs/step);
- ``exact_m8``: M = 8 every step, the stimulus pixels per step of the ``sim_every`` arms
  with M = 8 (28 pairs/step), to tell fewer stimuli from amortization;
- ``every4_m9``: ``sim_every`` 4 with 36 stimuli at 4α every 4th step (157.5 pairs/step);
- ``every8_m8``: ``sim_every`` 8 with 64 stimuli at 8α every 8th step (252 pairs/step);
- ``prune05``: ``gamma_prune`` 0.05 from the usual uniform γ, M = 32: it prunes only
  once γ of the deeper taps falls below 0.05 (``taps``: the mean number of taps a
  pathway step computed; 5 = never pruned);
- ``none``: no target, for the accuracy the regularizer is compared with.

Each arm is paired with ``exact`` by seed: the mean difference, its SEM and a paired
t-test p (with 3 seeds, a weak test). Whatever comes out is reported.

    .venv/bin/python bench/pathway_effects.py [--seeds 3] [--epochs 12] [--jobs 1]

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ALPHA = 8.0
ARMS: dict[str, dict[str, Any]] = {
    "exact": {"stimuli_per_step": 32},
    "exact_m8": {"stimuli_per_step": 8},
    "every4_m9": {"sim_every": 4, "stimuli_per_step": 9},
    "every8_m8": {"sim_every": 8, "stimuli_per_step": 8},
    "prune05": {"gamma_prune": 0.05, "stimuli_per_step": 32},
    "none": {"target": "none", "alpha": 0.0},
}


def _run(job: tuple[str, int, int]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)  # one process per core
    from bench.train_overhead import _target
    from ml.recorder import MemoryRecorder
    from ml.train.joint import TrainConfig, train_model

    arm, seed, epochs = job
    fields = {"target": "neural-model", "alpha": ALPHA, **ARMS[arm]}
    cfg = TrainConfig(dataset="digits32", backbone="resnet18", width=8, epochs=epochs,
                      seed=seed, device="cpu", **fields)
    rec = MemoryRecorder()
    start = time.perf_counter()
    res = train_model(cfg, rec, _target(1000) if cfg.target != "none" else None)
    taps = rec.series("sim_taps") if "sim_taps" in rec.metrics else []
    return {"arm": arm, "seed": seed, "test_acc": res.test_accuracy,
            "sim_r": res.r_similarity, "gamma": [round(g, 4) for g in res.gamma],
            "taps": float(np.mean(taps)) if taps else None,
            "pathway_steps": len(rec.metrics.get("sim_loss", {})), "steps": res.steps,
            "seconds": time.perf_counter() - start}


def _paired(a: list[float], b: list[float]) -> dict[str, Any]:
    from scipy import stats

    d = np.asarray(a) - np.asarray(b)
    p = None
    if len(d) >= 2 and np.any(d != 0):
        p = float(stats.ttest_rel(a, b).pvalue)
    sem = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else None
    return {"mean": float(d.mean()), "sem": sem, "p": p}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--arms", default=",".join(ARMS))
    args = ap.parse_args()
    arms = [a for a in args.arms.split(",") if a]
    if "exact" not in arms:
        arms.insert(0, "exact")
    jobs = [(a, s, args.epochs) for s in range(args.seeds) for a in arms]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(_run, jobs))
    by = {(r["arm"], r["seed"]): r for r in results}
    seeds = list(range(args.seeds))
    out: dict[str, Any] = {"bench": "pathway_effects", "epochs": args.epochs, "alpha": ALPHA,
                           "seeds": args.seeds, "arms": {}}
    print(f"{'arm':<11} {'test acc':>15} {'Δ acc vs exact':>18} {'sim_r':>15} "
          f"{'Δ sim_r vs exact':>20} {'taps':>5} {'s/run':>6}")
    for arm in arms:
        rows = [by[arm, s] for s in seeds]
        acc = [r["test_acc"] for r in rows]
        sim = [r["sim_r"] for r in rows]
        exact = [by["exact", s] for s in seeds]
        d_acc = _paired(acc, [r["test_acc"] for r in exact])
        has_r = all(v is not None for v in sim)
        d_r = _paired(sim, [r["sim_r"] for r in exact]) if has_r else None

        def pm(v: list[float]) -> str:
            sem = np.std(v, ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0
            return f"{np.mean(v):.3f} ± {sem:.3f}"

        def dpm(d: dict[str, Any] | None) -> str:
            if d is None:
                return "–"
            p = "" if d["p"] is None else f" p {d['p']:.2f}"
            return f"{d['mean']:+.3f} ± {d['sem'] or 0:.3f}{p}"

        taps = [r["taps"] for r in rows if r["taps"] is not None]
        print(f"{arm:<11} {pm(acc):>15} {dpm(d_acc) if arm != 'exact' else '':>18} "
              f"{pm(sim) if has_r else '–':>15} "
              f"{dpm(d_r) if arm != 'exact' else '':>20} "
              f"{f'{np.mean(taps):.2f}' if taps else '':>5} "
              f"{np.median([r['seconds'] for r in rows]):>6.0f}")
        out["arms"][arm] = {"config": ARMS[arm], "runs": rows, "d_test_acc": d_acc,
                            "d_sim_r": d_r}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
