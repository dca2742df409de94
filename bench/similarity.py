"""Similarity matrix S (Eq. 2) against rsatoolbox, and the memory of a 100,000-stimulus target.

1. S over 5,000 images × 8,000 neurons with ours (``ml.neural.estimators.similarity``, with
   and without SNR-style weights) side by side with rsatoolbox 0.3's
   ``calc_rdm(Dataset(r), method='correlation')``, the closest peer, on the same float32 data.
   Each method runs in its own fresh subprocess that ``np.load``s the same array; it reports
   the best of ``--repeats`` wall times and the peak-RSS increase (VmHWM, the kernel's
   ``ru_maxrss`` of its own memory map) over the baseline taken after its imports and the
   data are loaded (the high-water mark is reset there through ``/proc/self/clear_refs``).
   Extra rows measure candidate rewrites of ``similarity`` (in-place centring, torch
   float32 / bfloat16 matmul).

   Not the same quantity by design: rsatoolbox centres each *pattern* (row) over neurons
   (Pearson distance) while Eq. 2 centres each *neuron* over images, so the bench reports
   the Pearson r between our S and 1 − rsatoolbox's RDM as a sanity number, plus each
   one's max |error| against a float64 recomputation of its own definition. rsatoolbox
   computes in the input dtype (float32 here) with ``np.einsum`` (no BLAS, one thread)
   and returns a float64 condensed vector of N(N−1)/2 values.

2. A 100,000-stimulus × D (8,000) "model neuron" target built the way a run would, without
   an N×N matrix: responses generated chunk by chunk (seeded), one pass for the per-neuron
   mean, a second writing centred unit rows into a preallocated float16 (``--target-dtype
   float32``) factor, wrapped in ``SimilarityTarget``; then 1,000,000 random pairs through
   ``target.pairs`` (in ``--pair-batch`` slices) and a 1,000×1,000 ``target.block``, checked
   against float64. The stimuli are a zero-stride dummy (a real (N, 1, 36, 64) uint8 array
   adds 0.23 GB at N = 100,000).

    python bench/similarity.py [--images 5000] [--neurons 8000] [--target-stimuli 100000]
                               [--target-dim 8000] [--repeats 3] [--quick]

Ends with one JSON line; ``speedup`` = rsatoolbox_s / ours_s (goal ≥ 3) and ``memory_ratio``
= ours_peak_mb / rsatoolbox_peak_mb (goal ≤ 1).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

LATENT = 32  # shared latent dimensions of the simulated population
S_METHODS = (
    "ours", "ours_weighted", "torch_f32", "torch_bf16", "rsatoolbox",
)


class Population:
    """Seeded rectified low-rank responses with per-neuron offsets, gains and noise.

    ``chunk(k, n)`` always returns the same (n, D) float32 rows for the same k, so a
    second pass (or a check) regenerates exactly what the first saw.
    """

    def __init__(self, seed: int, neurons: int) -> None:
        rng = np.random.default_rng([seed, 0])
        self.seed = seed
        self.loadings = (rng.standard_normal((LATENT, neurons)) / np.sqrt(LATENT)).astype(
            np.float32
        )
        self.offset = rng.normal(-0.5, 0.5, neurons).astype(np.float32)
        self.gain = rng.lognormal(0.0, 0.5, neurons).astype(np.float32)

    def chunk(self, k: int, n: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 1, k])
        x = rng.standard_normal((n, LATENT), dtype=np.float32) @ self.loadings
        x += self.offset
        np.maximum(x, 0, out=x)
        x *= self.gain
        noise = rng.standard_normal(x.shape, dtype=np.float32)
        noise *= 0.3
        x += noise
        return x


def maxrss_mb() -> float:
    """Peak RSS of this process in MB: Linux's VmHWM, else ``ru_maxrss``.

    ``ru_maxrss`` alone is wrong for a child of a big parent: exec carries the forked copy's
    high-water mark over (a child of a 340 MB parent starts at 340 MB), and ``clear_refs``
    can't lower it; VmHWM belongs to the child's own memory map.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def reset_peak() -> None:
    """Lower the high-water mark to the current RSS (Linux ≥ 4.0), so import transients
    can't hide a smaller compute peak; elsewhere the baseline stays the peak so far."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def s_method(name: str) -> Callable[[np.ndarray, np.ndarray], Any]:
    """The timed call of one method: (responses, weights) -> result; imports happen here."""
    if name in ("ours", "ours_weighted"):
        from ml.neural.estimators import similarity

        if name == "ours":
            return lambda r, w: similarity(r)
        return lambda r, w: similarity(r, w)
    if name in ("torch_f32", "torch_bf16"):
        import torch

        from ml.neural.estimators import unit_vectors

        def with_torch(r: np.ndarray, w: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(unit_vectors(r))  # only the product moves to torch
            if name == "torch_bf16":
                t = t.bfloat16()
                return (t @ t.T).float().numpy()
            return (t @ t.T).numpy()

        return with_torch
    if name == "rsatoolbox":
        from rsatoolbox.data import Dataset
        from rsatoolbox.rdm import calc_rdm

        return lambda r, w: calc_rdm(Dataset(r), method="correlation")
    raise ValueError(name)


def worker_s(args: argparse.Namespace) -> dict[str, Any]:
    fn = s_method(args.worker)
    data = Path(args.data)
    r = np.load(data / "responses.npy")
    w = np.load(data / "weights.npy")
    reset_peak()
    base = maxrss_mb()
    times = []
    out = None
    for _ in range(args.repeats):
        out = None  # drop the last result before the next run, so it is not in the peak
        t = time.perf_counter()
        out = fn(r, w)
        times.append(time.perf_counter() - t)
    peak = maxrss_mb()
    if args.worker == "rsatoolbox":
        result = out.dissimilarities  # (1, N(N−1)/2) float64, 1 − Pearson r per pair
        np.save(data / f"{args.worker}.npy", result[0])
        shape, dtype = result.shape, result.dtype
    else:
        np.save(data / f"{args.worker}.npy", out)
        shape, dtype = out.shape, out.dtype
    return {
        "method": args.worker, "best_s": min(times), "times_s": times,
        "baseline_mb": base, "peak_mb": peak, "increase_mb": peak - base,
        "shape": list(shape), "dtype": str(dtype),
    }


def worker_target(args: argparse.Namespace) -> dict[str, Any]:
    from ml.neural.estimators import unit_vectors
    from ml.neural.target import SimilarityTarget

    n, d, rows = args.target_stimuli, args.target_dim, args.chunk
    dtype = np.dtype(args.target_dtype)
    pop = Population(args.seed + 1, d)
    chunks = [(k, k * rows, min(n, (k + 1) * rows)) for k in range((n + rows - 1) // rows)]
    base = maxrss_mb()

    t0 = time.perf_counter()
    total = np.zeros(d, np.float64)
    for k, a, b in chunks:  # pass 1: per-neuron mean
        total += pop.chunk(k, b - a).sum(axis=0, dtype=np.float64)
    mean = total / n
    factor = np.empty((n, d), dtype)
    for k, a, b in chunks:  # pass 2: centred unit rows
        factor[a:b] = unit_vectors(pop.chunk(k, b - a), mean)
    build_s = time.perf_counter() - t0
    images = np.broadcast_to(np.zeros((1, 1, 36, 64), np.uint8), (n, 1, 36, 64))
    target = SimilarityTarget(
        "neural-model", factor, np.arange(n), images, {"bench": "similarity"}
    )
    rss_built = maxrss_mb()

    rng = np.random.default_rng([args.seed, 2])
    i = rng.integers(0, n, args.pairs)
    j = rng.integers(0, n, args.pairs)
    s = np.empty(args.pairs, np.float32)
    t0 = time.perf_counter()
    for a in range(0, args.pairs, args.pair_batch):
        s[a:a + args.pair_batch] = target.pairs(i[a:a + args.pair_batch], j[a:a + args.pair_batch])
    pairs_s = time.perf_counter() - t0
    block_rows = rng.choice(n, min(1000, n), replace=False)
    t0 = time.perf_counter()
    blk = target.block(block_rows)
    block_s = time.perf_counter() - t0
    rss_queried = maxrss_mb()

    # float64 check: regenerate the chunks holding a handful of stimuli
    check = min(8, args.pairs)
    corner = block_rows[:4]
    need = np.unique(np.concatenate([i[:check], j[:check], corner]))
    ref: dict[int, np.ndarray] = {}
    for k, a, b in chunks:
        mine = need[(need >= a) & (need < b)]
        if len(mine):
            x = pop.chunk(k, b - a)[mine - a].astype(np.float64) - mean
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            ref.update(zip(mine.tolist(), x, strict=True))
    errs = [abs(float(s[q]) - float(ref[int(i[q])] @ ref[int(j[q])])) for q in range(check)]
    errs += [
        abs(float(blk[p, q]) - float(ref[int(corner[p])] @ ref[int(corner[q])]))
        for p in range(len(corner)) for q in range(len(corner))
    ]
    return {
        "method": "target", "stimuli": n, "dim": d, "dtype": dtype.name,
        "factor_gb": factor.nbytes / 1e9, "dense_f32_gb": 4 * n * n / 1e9,
        "images_uint8_gb": n * 36 * 64 / 1e9, "baseline_mb": base,
        "built_peak_gb": rss_built / 1024, "peak_gb": rss_queried / 1024,
        "build_s": build_s, "pairs": args.pairs, "pair_batch": args.pair_batch,
        "pairs_s": pairs_s, "pairs_per_s": args.pairs / pairs_s, "block": len(block_rows),
        "block_s": block_s, "checked": len(errs), "max_abs_err": max(errs),
    }


def spawn(args: argparse.Namespace, method: str, data: Path | None) -> dict[str, Any]:
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--worker", method,
        "--repeats", str(args.repeats), "--seed", str(args.seed),
        "--target-stimuli", str(args.target_stimuli), "--target-dim", str(args.target_dim),
        "--target-dtype", args.target_dtype, "--chunk", str(args.chunk),
        "--pairs", str(args.pairs), "--pair-batch", str(args.pair_batch),
    ]
    if data is not None:
        cmd += ["--data", str(data)]
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p
    ))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker {method} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = np.asarray(x, np.float64) - np.mean(x, dtype=np.float64)
    y = np.asarray(y, np.float64) - np.mean(y, dtype=np.float64)
    return float(x @ y / np.sqrt((x @ x) * (y @ y)))


def sanity(data: Path, methods: list[str], check_rows: int = 100) -> dict[str, float]:
    """Compare the saved results: ours vs float64, rsatoolbox vs float64, ours vs 1 − RDM."""
    r = np.load(data / "responses.npy").astype(np.float64)
    w = np.load(data / "weights.npy").astype(np.float64)
    n = r.shape[0]
    m = min(check_rows, n)

    def units(x: np.ndarray, axis: int) -> np.ndarray:
        x = x - x.mean(axis=axis, keepdims=True)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    e_neuron, e_weighted, e_pattern = units(r, 0), units(r * w, 0), units(r, 1)
    out: dict[str, float] = {}
    for name in methods:
        if name == "rsatoolbox":
            continue
        s = np.load(data / f"{name}.npy", mmap_mode="r")
        e = e_weighted if name.endswith("weighted") else e_neuron
        out[f"{name}_max_err"] = float(np.abs(s[:m] - e[:m] @ e.T).max())
    if "rsatoolbox" in methods:
        rdm = np.load(data / "rsatoolbox.npy")
        assert rdm.shape == (n * (n - 1) // 2,), rdm.shape
        ref = e_pattern[:m] @ e_pattern.T
        err = 0.0
        for a in range(m):  # row a of the condensed vector: pairs (a, a+1 … n−1)
            start = a * n - a * (a + 1) // 2
            got = 1.0 - rdm[start:start + n - a - 1]
            err = max(err, float(np.abs(got - ref[a, a + 1:]).max()))
        out["rsatoolbox_max_err"] = err
        if "ours" in methods:
            s = np.load(data / "ours.npy")
            iu = np.triu_indices(n, k=1)
            out["ours_vs_1_minus_rdm_r"] = pearson(s[iu], 1.0 - rdm)
            out["ours_vs_1_minus_rdm_max_abs"] = float(np.abs(s[iu] - (1.0 - rdm)).max())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--neurons", type=int, default=8000)
    ap.add_argument("--target-stimuli", type=int, default=100_000)
    ap.add_argument("--target-dim", type=int, default=8000)
    ap.add_argument("--target-dtype", choices=("float16", "float32"), default="float16")
    ap.add_argument("--pairs", type=int, default=1_000_000)
    ap.add_argument("--pair-batch", type=int, default=1024,
                    help="pairs per target.pairs call (1M at once would gather 2M rows)")
    ap.add_argument("--chunk", type=int, default=5000, help="stimuli generated at a time")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=",".join(S_METHODS),
                    help="comma-separated S methods ('' for none)")
    ap.add_argument("--no-target", action="store_true", help="skip part 2")
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        res = worker_target(args) if args.worker == "target" else worker_s(args)
        print(json.dumps(res))
        return
    if args.quick:
        args.images, args.neurons = 400, 600
        args.target_stimuli, args.target_dim, args.chunk = 6000, 256, 1000
        args.pairs = 20_000
    methods = [m for m in args.methods.split(",") if m]
    if unknown := set(methods) - set(S_METHODS):
        ap.error(f"unknown methods {sorted(unknown)}")

    load = os.getloadavg()[0]
    rows: dict[str, dict[str, Any]] = {}
    checks: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-similarity-") as tmp:
        data = Path(tmp)
        pop = Population(args.seed, args.neurons)
        np.save(data / "responses.npy", pop.chunk(0, args.images))
        weights = np.random.default_rng([args.seed, 3]).lognormal(0.0, 0.5, args.neurons)
        np.save(data / "weights.npy", weights.astype(np.float32))
        for m in methods:
            rows[m] = spawn(args, m, data)
            print(
                f"  {m:<17} {rows[m]['best_s']:8.3f} s  +{rows[m]['increase_mb']:7.0f} MB",
                file=sys.stderr, flush=True,
            )
        if methods:
            checks = sanity(data, methods)
    target = None if args.no_target else spawn(args, "target", None)

    n = args.images
    rsa = rows.get("rsatoolbox")
    if rows:
        print(f"S over {n} images × {args.neurons} neurons, best of {args.repeats}, "
              f"load avg {load:.1f} on {os.cpu_count()} CPUs")
        print(f"{'method':<17} {'best s':>8} {'peak +MB':>9} {'vs rsa':>7}  result")
    for m, r in rows.items():
        ratio = f"{rsa['best_s'] / r['best_s']:6.1f}x" if rsa else "      -"
        print(f"{m:<17} {r['best_s']:8.3f} {r['increase_mb']:9.0f} {ratio}  "
              f"{'×'.join(map(str, r['shape']))} {r['dtype']}")
    for k, v in checks.items():
        print(f"  {k}: {v:.3g}")
    if rsa:
        print("  (rsatoolbox centres per pattern, Eq. 2 per neuron: S ≠ 1 − RDM by design)")
    if target:
        t = target
        print(f"target {t['stimuli']} × {t['dim']} {t['dtype']}: factor {t['factor_gb']:.2f} GB "
              f"(N×N float32 would be {t['dense_f32_gb']:.0f} GB), peak RSS "
              f"{t['peak_gb']:.2f} GB (after build {t['built_peak_gb']:.2f} GB), "
              f"build {t['build_s']:.1f} s")
        print(f"  {t['pairs']} pairs in {t['pairs_s']:.2f} s ({t['pairs_per_s']:.0f}/s, "
              f"batches of {t['pair_batch']}), {t['block']}² block {1000 * t['block_s']:.0f} ms, "
              f"max |err| vs float64 {t['max_abs_err']:.2g} over {t['checked']} values; "
              f"real uint8 stimuli would add {t['images_uint8_gb']:.2f} GB")

    flat: dict[str, Any] = {"bench": "similarity", "images": n, "neurons": args.neurons,
                            "repeats": args.repeats, "load_avg": round(load, 1),
                            "load_avg_end": round(os.getloadavg()[0], 1)}
    for m, r in rows.items():
        flat[f"{m}_s"] = round(r["best_s"], 3)
        flat[f"{m}_peak_mb"] = round(r["increase_mb"], 1)
    if "ours" in rows and rsa:
        flat["speedup"] = round(rsa["best_s"] / rows["ours"]["best_s"], 1)
        flat["memory_ratio"] = round(rows["ours"]["increase_mb"] / rsa["increase_mb"], 2)
        flat["goal_met"] = flat["speedup"] >= 3 and flat["memory_ratio"] <= 1
    flat.update({k: float(f"{v:.4g}") for k, v in checks.items()})
    if target:
        flat.update({
            "target_stimuli": target["stimuli"], "target_dim": target["dim"],
            "target_dtype": target["dtype"], "target_factor_gb": round(target["factor_gb"], 2),
            "target_dense_gb": round(target["dense_f32_gb"], 1),
            "target_peak_gb": round(target["peak_gb"], 2),
            "target_build_s": round(target["build_s"], 1),
            "pairs_per_s": round(target["pairs_per_s"]),
            "s_per_1m_pairs": round(1e6 / target["pairs_per_s"], 2),
            "block_ms": round(1000 * target["block_s"], 1),
            "target_max_abs_err": float(f"{target['max_abs_err']:.3g}"),
            "target_images_uint8_gb": round(target["images_uint8_gb"], 2),
        })
    print(json.dumps(flat))


if __name__ == "__main__":
    main()
