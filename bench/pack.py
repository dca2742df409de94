"""K runs packed into one batched computation vs the same K runs trained one after the
other: per-model throughput, measured side by side in one run (repeats interleaved, the
median taken).

Rows: ``separate`` (K ordinary train runs, :func:`ml.train.train_model`), ``packed``
(:func:`ml.train.pack.train_pack`, grouped convolutions, what a study's ``pack`` uses),
and for plain training ``vmap`` (``torch.func.vmap`` over the K models' stacked
parameters — BatchNorm without running statistics, which vmap cannot update, so it is
timed, not used). Steps are timed from the recorder's per-step stop check, so the epoch's
evaluation is not counted.

    .venv/bin/python bench/pack.py [--k 5] [--width 16] [--steps 8] [--device auto]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.models import build_backbone  # noqa: E402
from ml.neural.estimators import unit_vectors  # noqa: E402
from ml.neural.stimuli import natural_patches  # noqa: E402
from ml.neural.target import SimilarityTarget  # noqa: E402
from ml.recorder import Cancelled, MemoryRecorder  # noqa: E402
from ml.train.joint import TrainConfig, train_model  # noqa: E402
from ml.train.pack import train_pack  # noqa: E402


class _Steps(MemoryRecorder):
    """Stamps each step (the loop asks should_stop once per step) and stops after ``n``."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.stamps = n, []  # type: ignore[var-annotated]

    def should_stop(self) -> bool:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.stamps.append(time.perf_counter())
        return len(self.stamps) > self.n

    def seconds(self, skip: int) -> float:
        """Median seconds per step after ``skip`` warm-up steps."""
        return float(np.median(np.diff(self.stamps)[skip:]))


def _separate(configs: list[TrainConfig], target: SimilarityTarget | None, n: int,
              skip: int) -> float:
    """Seconds per step of the K runs one after the other (the sum of their steps)."""
    total = 0.0
    for c in configs:
        rec = _Steps(n)
        try:
            train_model(c, rec, target)
        except Cancelled:
            pass
        total += rec.seconds(skip)
    return total


def _packed(configs: list[TrainConfig], target: SimilarityTarget | None, n: int,
            skip: int) -> float:
    recs = [_Steps(n) for _ in configs]
    train_pack(configs, recs, [target] * len(configs))
    return recs[0].seconds(skip)  # every member is asked once per packed step


def _vmap(k: int, backbone: str, width: int, batch: int, device: torch.device, n: int,
          skip: int) -> float:
    """A plain SGD step of K models under torch.func.vmap (stacked parameters)."""
    from torch.func import (
        functional_call,
        replace_all_batch_norm_modules_,
        stack_module_state,
        vmap,
    )

    models = [replace_all_batch_norm_modules_(build_backbone(
        backbone, num_classes=10, width=width)).to(device) for _ in range(k)]
    params, buffers = stack_module_state(models)  # type: ignore[arg-type]
    base = copy.deepcopy(models[0]).to("meta")
    opt = torch.optim.SGD(list(params.values()), lr=0.05, momentum=0.9, weight_decay=5e-4)

    def loss_fn(p: dict, b: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(base, (p, b), (x,)), y)

    x = torch.randn(k, batch, 1, 32, 32, device=device)
    y = torch.randint(0, 10, (k, batch), device=device)
    stamps = []
    for _ in range(n + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        loss = vmap(loss_fn)(params, buffers, x, y).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return float(np.median(np.diff(stamps)[skip:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per run (after 2)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = ap.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)

    images = natural_patches(1000, seed=0)
    quad = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(images), (3, 4))
    f = quad.flatten(1).numpy()
    target = SimilarityTarget("neural-model", unit_vectors(f - f.mean(0)), np.arange(1000),
                              images)
    base = dict(backbone=args.backbone, width=args.width, epochs=1, batch_size=args.batch,
                device=device.type, deterministic=False)
    grid = {
        "plain": ([TrainConfig(target="none", seed=s, **base) for s in range(args.k)], None),
        "regularized": ([TrainConfig(target="neural-model", seed=s, **base)
                         for s in range(args.k)], target),
    }
    skip, n = 2, args.steps + 2
    times: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for name, (configs, tgt) in grid.items():
            times.setdefault(f"{name}_separate", []).append(_separate(configs, tgt, n, skip))
            times.setdefault(f"{name}_packed", []).append(_packed(configs, tgt, n, skip))
        times.setdefault("plain_vmap", []).append(
            _vmap(args.k, args.backbone, args.width, args.batch, device, n, skip))
    med = {k: statistics.median(v) for k, v in times.items()}
    out: dict[str, object] = {"bench": "pack", "k": args.k, "backbone": args.backbone,
                              "width": args.width, "batch": args.batch,
                              "device": torch.cuda.get_device_name(device)
                              if device.type == "cuda" else "cpu",
                              "torch": torch.__version__}
    print(f"K = {args.k} {args.backbone} width {args.width}, batch {args.batch}, on "
          f"{out['device']}; median of {args.repeats} interleaved repeats")
    print(f"{'mode':<24} {'s per step of K':>16} {'models·steps/s':>15} {'vs separate':>12}")
    for name in ("plain", "regularized"):
        sep = med[f"{name}_separate"]
        rows = [("separate", sep), ("packed", med[f"{name}_packed"])]
        if name == "plain":
            rows.append(("vmap (no BN stats)", med["plain_vmap"]))
        for mode, t in rows:
            print(f"{name + ' ' + mode:<24} {t:>16.4f} {args.k / t:>15.2f} {sep / t:>11.2f}x")
            key = f"{name}_{mode.split()[0]}"
            out[f"{key}_s"] = round(t, 5)
            out[f"{key}_ratio"] = round(sep / t, 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
