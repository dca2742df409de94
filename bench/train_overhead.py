"""Step time of regularized vs plain training at the same classification batch, and the
distinct stimulus pairs each step sees, measured side by side in one run.

The paper's neural pathway passes as many images as the classification batch, as
disjoint pairs (64 images → 32 pairs), and roughly doubles the step cost. All-pairs mode
takes M stimuli and scores all M(M−1)/2 pairs from the same single forward pass.

    .venv/bin/python bench/train_overhead.py [--width 16] [--steps 20] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.neural.estimators import unit_vectors  # noqa: E402
from ml.neural.stimuli import natural_patches  # noqa: E402
from ml.neural.target import SimilarityTarget  # noqa: E402
from ml.recorder import MemoryRecorder  # noqa: E402
from ml.train.joint import TrainConfig, train_model  # noqa: E402


class _Timer(MemoryRecorder):
    """Stamps each step's start (the loop asks should_stop once per step), to time steps
    without the epoch's evaluation."""

    def __init__(self) -> None:
        super().__init__()
        self.stamps: list[float] = []

    def should_stop(self) -> bool:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.stamps.append(time.perf_counter())
        return False


def _step_time(cfg: TrainConfig, target: SimilarityTarget | None, skip: int) -> float:
    rec = _Timer()
    train_model(cfg, rec, target)
    gaps = np.diff(rec.stamps)[skip:]  # the first steps warm up allocators and caches
    return float(np.median(gaps))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--stimuli", type=int, default=1000)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--all-pairs-m", default="64,32,16",
                    help="stimuli per step for the all-pairs rows")
    args = ap.parse_args()

    images = natural_patches(args.stimuli, seed=0)
    quad = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(images), (3, 4))
    f = quad.flatten(1).numpy()
    target = SimilarityTarget("neural-model", unit_vectors(f - f.mean(0)),
                              np.arange(args.stimuli), images)
    base = dict(backbone=args.backbone, width=args.width, epochs=1, batch_size=args.batch,
                device=args.device, deterministic=False)
    b = args.batch
    rows = {
        "plain": (TrainConfig(target="none", **base), None, 0),
        "paper_pairs": (TrainConfig(target="neural-model", pairs="paper",
                                          stimuli_per_step=b, **base), target, b // 2),
    }
    for m in (int(v) for v in args.all_pairs_m.split(",") if v):
        rows[f"all_pairs_m{m}"] = (TrainConfig(target="neural-model", pairs="all",
                                                     stimuli_per_step=m, **base), target,
                                   m * (m - 1) // 2)
    out: dict[str, object] = {"bench": "train_overhead", "backbone": args.backbone,
                              "width": args.width, "batch": b}
    plain = None
    print(f"{'mode':<16} {'s/step':>8} {'vs plain':>9} {'pairs/step':>11} {'vs paper':>9}")
    for name, (cfg, tgt, pairs) in rows.items():
        t = _step_time(cfg, tgt, skip=3)
        plain = plain or t
        ratio = t / plain
        vs_paper = pairs / (b // 2) if pairs else 0.0
        print(f"{name:<16} {t:>8.4f} {ratio:>8.2f}x {pairs:>11} {vs_paper:>8.1f}x")
        out.update({f"{name}_s": round(t, 5), f"{name}_ratio": round(ratio, 3),
                    f"{name}_pairs": pairs})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
