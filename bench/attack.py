"""Minimal-perturbation evaluation speed, and our harness against calling Foolbox directly.

One run, side by side:

1. the full L2 + L∞ schedule (``--grid quick`` by default, ``paper`` for the supplement's
   grid) through ``ml.evaluate.minimal_perturbations``: samples per second;
2. the very same Foolbox calls made directly — every ``attack.run`` the harness made,
   with the same inputs, starting points and per-sample ε, replayed in a loop with nothing
   else — so the ratio is what the harness adds (verification, distances, bookkeeping).

Brendel & Bethge's numba code is compiled before timing (once per process, 15–30 s).

    .venv/bin/python bench/attack.py [--samples 100] [--grid quick] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.data import load_dataset  # noqa: E402
from ml.evaluate import attacks as attacks_mod  # noqa: E402
from ml.evaluate.attacks import schedule  # noqa: E402
from ml.evaluate.minimal import minimal_perturbations  # noqa: E402
from ml.recorder import MemoryRecorder  # noqa: E402
from ml.runtime import pick_device  # noqa: E402
from ml.train import TrainConfig, train_model  # noqa: E402
from ml.train.classifier import load_model  # noqa: E402

CALLS: list[tuple[Any, tuple[Any, ...], dict[str, Any], int]] = []


class _Recording:
    """Wraps a Foolbox attack; records each run() call (to replay it directly later)."""

    def __init__(self, inner: Any, seed_state: int) -> None:
        self.inner, self.seed_state = inner, seed_state

    def run(self, *args: Any, **kwargs: Any) -> Any:
        CALLS.append((self.inner, args, kwargs, self.seed_state))
        return self.inner.run(*args, **kwargs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--grid", default="quick", choices=["quick", "paper"])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--search-steps", type=int, default=6)
    args = ap.parse_args()
    device = pick_device(args.device)

    rec = MemoryRecorder()
    train_model(TrainConfig(backbone="small_cnn", width=16, epochs=8, lr=0.02, lr_decay=1.0,
                            device=str(device.type)), rec)
    model, _ = load_model(rec.artifacts["model.pt"][0])
    model = model.to(device).eval()
    data = load_dataset("digits32", seed=0)
    x, y = data.test_images[:args.samples], data.test_labels[:args.samples]
    runs = schedule(args.grid, ["l2", "linf"], search_steps=args.search_steps)

    # compile B&B's numba code outside the timings: once per variant and process
    warm = list({r.attack: r for r in runs if "BrendelBethge" in r.attack}.values())
    minimal_perturbations(model, x[:8], y[:8], warm, num_classes=10, device=device,
                          pool=(data.test_images, data.test_labels))

    real_build = attacks_mod.AttackRun.build
    counter = iter(range(10**9))
    attacks_mod.AttackRun.build = lambda self: _Recording(real_build(self), next(counter))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    res = minimal_perturbations(model, x, y, runs, num_classes=10, seed=0, device=device,
                                search_steps=args.search_steps,
                                pool=(data.test_images, data.test_labels))
    sync()
    harness = time.perf_counter() - t0
    attacks_mod.AttackRun.build = real_build

    # the same Foolbox calls, directly, seeded as the harness seeded each attack run
    sync()
    t0 = time.perf_counter()
    last = None
    for inner, call_args, kwargs, r_index in CALLS:
        if r_index != last:
            torch.manual_seed(0 * 100_003 + r_index)
            last = r_index
        inner.run(*call_args, **kwargs)
    sync()
    direct = time.perf_counter() - t0

    n = len(x)
    out = {"bench": "attack", "grid": args.grid, "device": str(device), "samples": n,
           "attack_runs": len(runs), "foolbox_calls": len(CALLS),
           "harness_s": round(harness, 3), "direct_foolbox_s": round(direct, 3),
           "overhead": round(harness / direct, 3),
           "samples_per_s": round(n / harness, 3),
           "median_l2": res.median("l2"), "median_linf": res.median("linf")}
    print(f"{n} samples, {len(runs)} attack runs ({len(CALLS)} Foolbox calls), {device}")
    print(f"  harness (verify + distances + bookkeeping): {harness:8.2f} s  "
          f"{n / harness:.2f} samples/s")
    print(f"  the same Foolbox calls, directly:           {direct:8.2f} s")
    print(f"  overhead: {harness / direct:.3f}x   median L2 {res.median('l2'):.4f}, "
          f"L∞ {res.median('linf'):.5f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
