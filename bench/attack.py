"""Robustness evaluation speed: our harnesses against the libraries called directly.

One run, side by side, on one small trained model (digits32):

1. **minimal perturbations**: the full L2 + L∞ schedule (``--grid quick`` by default,
   ``paper`` for the supplement's grid) through ``ml.evaluate.minimal_perturbations``,
   against the very same Foolbox calls made directly — every ``attack.run`` the harness
   made, with the same inputs, starting points and per-sample ε, replayed in a loop with
   nothing else — so the ratio is what the harness adds (verification, distances,
   bookkeeping). Brendel & Bethge's numba code is compiled before timing.
2. **AutoAttack** at L∞ (``--aa-eps``) through ``ml.evaluate.autoattack.autoattack`` against
   torchattacks' own ``MultiAttack`` of the same four components (built by the same
   function, same seeds) on the same inputs and batches: the ratio is what our harness
   adds (re-predicting, ε verification, per-component accounting). Steps and queries are
   reduced on a CPU (``--aa-steps``/``--aa-queries``; the standard is 100 / 5,000).
3. **corruptions**: CIFAR-10-C's 19 corruptions × 5 severities generated for
   ``--corruption-images`` images (the in-process cache bypassed): images per second,
   overall and per corruption.

    .venv/bin/python bench/attack.py [--samples 100] [--grid quick] [--device auto]
        [--parts minimal,autoattack,corruptions]
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
from ml.evaluate import autoattack as aa_mod  # noqa: E402
from ml.evaluate import corruptions as cor_mod  # noqa: E402
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


def bench_minimal(model: Any, x: torch.Tensor, y: torch.Tensor, pool: Any, device: Any,
                  grid: str, search_steps: int, sync: Any) -> dict[str, Any]:
    runs = schedule(grid, ["l2", "linf"], search_steps=search_steps)
    # compile B&B's numba code outside the timings: once per variant and process
    warm = list({r.attack: r for r in runs if "BrendelBethge" in r.attack}.values())
    minimal_perturbations(model, x[:8], y[:8], warm, num_classes=10, device=device, pool=pool)

    real_build = attacks_mod.AttackRun.build
    counter = iter(range(10**9))
    attacks_mod.AttackRun.build = lambda self: _Recording(real_build(self), next(counter))
    sync()
    t0 = time.perf_counter()
    res = minimal_perturbations(model, x, y, runs, num_classes=10, seed=0, device=device,
                                search_steps=search_steps, pool=pool)
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
    print(f"minimal perturbations: {n} samples, {len(runs)} attack runs ({len(CALLS)} Foolbox "
          f"calls), {device}")
    print(f"  harness (verify + distances + bookkeeping): {harness:8.2f} s  "
          f"{n / harness:.2f} samples/s")
    print(f"  the same Foolbox calls, directly:           {direct:8.2f} s")
    print(f"  overhead: {harness / direct:.3f}x   median L2 {res.median('l2'):.4f}, "
          f"L∞ {res.median('linf'):.5f}")
    return {"grid": grid, "attack_runs": len(runs), "foolbox_calls": len(CALLS),
            "harness_s": round(harness, 3), "direct_foolbox_s": round(direct, 3),
            "overhead": round(harness / direct, 3), "samples_per_s": round(n / harness, 3),
            "median_l2": res.median("l2"), "median_linf": res.median("linf")}


def bench_autoattack(model: Any, x: torch.Tensor, y: torch.Tensor, device: Any, eps: float,
                     steps: int, queries: int, batch: int, repeats: int, sync: Any
                     ) -> dict[str, Any]:
    import torchattacks as ta

    def ours() -> tuple[float, Any]:
        sync()
        t0 = time.perf_counter()
        r = aa_mod.autoattack(model, x, y, norm="linf", epsilon=eps, num_classes=10, seed=0,
                              batch=batch, steps=steps, queries=queries, device=device)
        sync()
        return time.perf_counter() - t0, r

    def direct() -> tuple[float, float]:
        # torchattacks' MultiAttack of the same components (built by the same function,
        # same seeds) on the same batches of the correctly classified samples; it attacks
        # each batch's still-robust samples with the next component, as ours does
        parts = aa_mod._components(model, "linf", eps, num_classes=10, seed=0, steps=steps,
                                   queries=queries)
        multi = ta.MultiAttack([a for _, a in parts])
        sync()
        t0 = time.perf_counter()
        with torch.no_grad():
            pred = torch.cat([model(x[i:i + batch].to(device)).argmax(1).cpu()
                              for i in range(0, len(x), batch)])
        keep = (pred == y).nonzero().flatten()
        robust = 0
        for b in range(0, len(keep), batch):
            idx = keep[b:b + batch]
            xb, yb = x[idx].to(device), y[idx].to(device)
            adv = multi(xb, yb)
            with torch.no_grad():
                robust += int((model(adv).argmax(1) == yb).sum())
        sync()
        return time.perf_counter() - t0, robust / len(x)

    mine, theirs = [], []
    for k in range(repeats):  # interleaved, each order once: neither gets the warm start
        first, second = (ours, direct) if k % 2 == 0 else (direct, ours)
        a, b = first(), second()
        (mine if first is ours else theirs).append(a)
        (theirs if first is ours else mine).append(b)
    harness, res = min(mine, key=lambda t: t[0])
    plain, robust = min(theirs, key=lambda t: t[0])
    print(f"AutoAttack L∞ ε = {eps:.4g} ({steps} steps, {queries} Square queries): "
          f"{len(x)} samples, best of {repeats} each")
    print(f"  our harness (verify ε, re-predict, per component): {harness:8.2f} s  robust "
          f"{res.robust_accuracy:.3f} (after " + ", ".join(
              f"{k} {v:.2f}" for k, v in res.after.items()) + ")")
    print(f"  torchattacks MultiAttack, directly:                {plain:8.2f} s  robust "
          f"{robust:.3f}")
    print(f"  overhead: {harness / plain:.3f}x (goal ≤ 1.1x)")
    return {"samples": len(x), "eps": eps, "steps": steps, "queries": queries,
            "repeats": repeats, "harness_s": round(harness, 3),
            "direct_torchattacks_s": round(plain, 3), "overhead": round(harness / plain, 3),
            "robust_accuracy": res.robust_accuracy, "robust_accuracy_direct": robust,
            "after": res.after}


def bench_corruptions(images: torch.Tensor) -> dict[str, Any]:
    per: dict[str, float] = {}
    total = 0.0
    for name in cor_mod.CORRUPTIONS:
        t0 = time.perf_counter()
        for sev in cor_mod.SEVERITIES:
            cor_mod.corrupt(images, name, sev, seed=12345)  # a seed nothing else cached
        dt = time.perf_counter() - t0
        per[name] = round(len(images) * len(cor_mod.SEVERITIES) / dt, 1)
        total += dt
    made = len(images) * len(cor_mod.SEVERITIES) * len(cor_mod.CORRUPTIONS)
    print(f"corruptions: {len(cor_mod.CORRUPTIONS)} × {len(cor_mod.SEVERITIES)} severities of "
          f"{len(images)} images = {made} images in {total:.2f} s: {made / total:.0f} images/s")
    slow = sorted(per.items(), key=lambda kv: kv[1])[:4]
    print("  slowest: " + ", ".join(f"{n} {v:.0f}/s" for n, v in slow))
    print("  a CIFAR-10-C-sized split (10,000 images, 95 cells): "
          f"{10_000 * 95 / (made / total) / 60:.1f} min on this machine")
    return {"images": made, "seconds": round(total, 3), "images_per_s": round(made / total, 1),
            "per_corruption_images_per_s": per}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--grid", default="quick", choices=["quick", "paper"])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--search-steps", type=int, default=6)
    ap.add_argument("--parts", default="minimal,autoattack,corruptions")
    ap.add_argument("--aa-steps", type=int, default=None,
                    help="APGD/FAB steps (default: the standard 100 on CUDA, 10 on a CPU)")
    ap.add_argument("--aa-queries", type=int, default=None,
                    help="Square queries (default: the standard 5,000 on CUDA, 100 on a CPU)")
    ap.add_argument("--aa-eps", type=float, default=1 / 255,
                    help="L∞ ε (default 1/255: at RobustBench's 8/255 APGD-CE breaks every "
                    "digit and the other components never run)")
    ap.add_argument("--repeats", type=int, default=2, help="AutoAttack timings of each")
    ap.add_argument("--corruption-images", type=int, default=200)
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    device = pick_device(args.device)
    cuda = device.type == "cuda"

    rec = MemoryRecorder()
    train_model(TrainConfig(backbone="small_cnn", width=16, epochs=8, lr=0.02, lr_decay=1.0,
                            device=str(device.type)), rec)
    model, _ = load_model(rec.artifacts["model.pt"][0])
    model = model.to(device).eval()
    data = load_dataset("digits32", seed=0)
    x, y = data.test_images[:args.samples], data.test_labels[:args.samples]
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    out: dict[str, Any] = {"bench": "attack", "device": str(device), "samples": len(x)}
    if cuda:
        out["gpu"] = torch.cuda.get_device_name(device)
    if "minimal" in parts:
        out["minimal"] = bench_minimal(model, x, y, (data.test_images, data.test_labels),
                                       device, args.grid, args.search_steps, sync)
    if "autoattack" in parts:
        steps = args.aa_steps or (aa_mod.STANDARD_STEPS if cuda else 10)
        queries = args.aa_queries or (aa_mod.STANDARD_QUERIES if cuda else 100)
        out["autoattack"] = bench_autoattack(model, x, y, device, args.aa_eps, steps, queries,
                                             250, args.repeats, sync)
    if "corruptions" in parts:
        # digits32 images as RGB: the colour path CIFAR-10 takes
        imgs = data.test_images[:args.corruption_images]
        out["corruptions"] = bench_corruptions(imgs.expand(-1, 3, -1, -1).contiguous()
                                               if imgs.shape[1] == 1 else imgs)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
