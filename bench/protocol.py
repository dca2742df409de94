"""A pre-registered comparison: None against Neural (model) and the controls, at the power
the protocol file names, reported whichever way it goes.

The protocol (``bench/protocols/*.toml``) is committed before any of its cells runs and
fixes everything this script does: the task, the stimuli, the network, α, the seeds per
condition, the attacked samples, the primary endpoint, the secondary family and the
correction. This script only reads it. Per cell (a condition and a seed) it trains a
model, then measures its noise curve on the whole test split and its minimal adversarial
perturbations (the service's evaluation) on the protocol's fixed samples, and keeps every
sample's distance, so the analysis can resample seeds *and* samples
(:func:`ml.study.hierarchical_bootstrap`).

    .venv/bin/python bench/protocol.py bench/protocols/fullband-v1.toml \\
        --cache bench/results/fullband-v1.jsonl [--jobs 2] [--device cpu|cuda]
    .venv/bin/python bench/protocol.py bench/protocols/fullband-v1.toml --report \\
        --cache bench/results/fullband-v1.jsonl
    .venv/bin/python bench/protocol.py bench/protocols/fullband-v1.toml --quick

``--cache`` keeps each finished cell as a JSON line and skips it on the next run (a long
run continues where it stopped; the protocol's cells are committed under bench/results).
Cells run in the order that serves the primary endpoint first: None and the primary
condition seed by seed, then the controls seed by seed, so a run cut short still holds
paired cells. ``--quick`` checks the whole path on a CPU in minutes —
few seeds, few epochs, few samples: its numbers are not the protocol's and are printed as
such. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import multiprocessing
import os
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.evaluate.measures import CLEAN, read_measures  # noqa: E402
from ml.regularize.targets import FROM_SIMILARITY_RUN, REGISTRY  # noqa: E402
from ml.study import hierarchical_bootstrap, holm, paired_difference  # noqa: E402

QUICK = {"epochs": 3, "n_samples": 40, "seeds": 2, "control_seeds": 1}
"""``--quick``: the path end to end on a CPU; not the protocol's power."""

_TARGETS: dict[str, Any] = {}
_DIGESTS: dict[str, str] = {}  # per target kind, of its stored bytes: which targets a cell saw


def load_protocol(path: Path) -> dict[str, Any]:
    """The protocol file, checked: every condition a registered target, the primary
    comparison among them, enough seeds for a paired test."""
    p = tomllib.loads(path.read_text())
    conds = p["conditions"]
    for name in conds:
        if name not in REGISTRY:
            raise ValueError(f"conditions.{name}: not a registered target")
    if "none" not in conds:
        raise ValueError("conditions: the protocol compares against none; add it")
    primary = p["primary"]
    if primary["condition"] not in conds:
        raise ValueError(f"primary.condition: {primary['condition']!r} is not a condition")
    for name, c in conds.items():
        if c["seeds"] < 2:
            raise ValueError(f"conditions.{name}.seeds: a paired test needs at least 2")
    return p


def _init(target_dir: str, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    from ml.neural.target import SimilarityTarget

    for kind in FROM_SIMILARITY_RUN:
        f = os.path.join(target_dir, f"{kind}.npz")
        if os.path.exists(f):
            _TARGETS[kind] = SimilarityTarget.load(f)
            _DIGESTS[kind] = hashlib.sha256(Path(f).read_bytes()).hexdigest()[:16]


def _cell(spec: dict[str, Any]) -> dict[str, Any]:
    """:func:`_measure`, or the cell's error (one broken cell does not end the run)."""
    start = time.perf_counter()
    try:
        return _measure(spec)
    except Exception as exc:  # noqa: BLE001 — reported in the row, and printed
        import traceback

        return {**spec["key"], "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "seconds": time.perf_counter() - start}


def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one model and evaluate it; its row holds every sample's distance."""
    from ml.data import load_dataset
    from ml.evaluate import EvaluateConfig, evaluate_model
    from ml.recorder import MemoryRecorder
    from ml.runtime import environment_info, pick_device
    from ml.train.classifier import load_model
    from ml.train.joint import TrainConfig, train_model

    start = time.perf_counter()
    cfg = TrainConfig(**spec["train"])
    source = REGISTRY[cfg.target].source
    target = None if source is None else _TARGETS[source]
    row: dict[str, Any] = {**spec["key"], "env": environment_info(pick_device(cfg.device)),
                           "targets": dict(_DIGESTS)}
    rec = MemoryRecorder()
    try:
        res = train_model(cfg, rec, target, data_root=spec.get("data_root"))
    except FloatingPointError as exc:
        return {**row, "error": str(exc), "seconds": time.perf_counter() - start}
    trained = time.perf_counter()
    model, _ = load_model(io.BytesIO(rec.artifacts["model.pt"][0]))
    data = load_dataset(cfg.dataset, seed=cfg.seed, root=spec.get("data_root"))
    erec = MemoryRecorder()
    ev = evaluate_model(EvaluateConfig(**spec["evaluate"]), erec, model, data.test_images,
                        data.test_labels, num_classes=data.num_classes)
    arrays = np.load(io.BytesIO(erec.artifacts["adversarials.npz"][0]))
    norms = spec["evaluate"]["norms"]
    table = list(csv.DictReader(io.StringIO(erec.artifacts["minimal.csv"][0].decode())))
    found_by = {n: [line[f"{n}_attack"] for line in table] for n in norms}  # labels hold commas
    return {**row, "measures": read_measures(ev), "test_acc": res.test_accuracy,
            "r": res.r_similarity, "gamma": res.gamma,
            "sample_ids": arrays["sample_ids"].tolist(),
            "distances": {n: [None if not np.isfinite(d) else float(f"{d:.6g}")
                              for d in arrays[f"distance_{n}"]] for n in norms},
            "found_by": found_by,
            "train_seconds": trained - start, "seconds": time.perf_counter() - start}


def _key(row: dict[str, Any]) -> str:
    return json.dumps({k: row[k] for k in ("protocol", "condition", "seed", "quick")},
                      sort_keys=True)


def cells(p: dict[str, Any], quick: bool, device: str,
          data_root: str | None = None) -> list[dict[str, Any]]:
    """Every (condition, seed) of the protocol: the primary comparison's pairs first, then
    the controls, each part interleaved by seed (a run cut short holds whole pairs)."""
    train = {**p["train"], "device": device, "deterministic": True}
    evaluate = {**p["evaluate"], "device": device}
    if quick:
        train["epochs"] = QUICK["epochs"]
        evaluate["n_samples"] = QUICK["n_samples"]
    seeds = {c: (min(v["seeds"], QUICK["seeds"] if c in ("none", p["primary"]["condition"])
                     else QUICK["control_seeds"]) if quick else v["seeds"])
             for c, v in p["conditions"].items()}
    primary = ("none", p["primary"]["condition"])
    order = [(seed, cond) for part in (primary, [c for c in p["conditions"] if c not in primary])
             for seed in range(max(seeds.values())) for cond in part if seed < seeds[cond]]
    out = []
    for seed, cond in order:
        t = {**train, "target": cond, "seed": seed,
             "alpha": 0.0 if cond == "none" else p["alpha"]}
        if cond == "none":
            t.pop("stimulus_norm", None)
        out.append({"key": {"protocol": p["name"], "condition": cond, "seed": seed,
                            "quick": quick}, "train": t, "evaluate": evaluate,
                    "data_root": data_root})
    return out


def _similarity(p: dict[str, Any], device: str, target_dir: str) -> dict[str, Any]:
    from ml.neural.pipeline import SimilarityConfig, run_similarity

    sim = run_similarity(SimilarityConfig(**p["similarity"]), device=device)
    for kind, target in sim.targets.items():
        Path(target_dir, f"{kind}.npz").write_bytes(target.to_bytes())
    return {k: v for k, v in sim.scores.items() if isinstance(v, float)}


def run(p: dict[str, Any], specs: list[dict[str, Any]], jobs: int, device: str,
        cache: Path | None, done: dict[str, dict[str, Any]]) -> None:
    todo = [s for s in specs if _key(s["key"]) not in done]
    if not todo:
        return
    print(f"{len(todo)} cells to run ({len(specs) - len(todo)} cached), {jobs} processes "
          f"on {device}", flush=True)
    with tempfile.TemporaryDirectory() as target_dir:
        t0 = time.perf_counter()
        scores = _similarity(p, device, target_dir)
        print(f"similarity run ({time.perf_counter() - t0:.0f} s): "
              + ", ".join(f"{k} {v:.3f}" for k, v in sorted(scores.items())
                          if k.startswith("r_")), flush=True)
        threads = max(1, (os.cpu_count() or 1) // jobs)
        ctx = multiprocessing.get_context("spawn")  # CUDA cannot cross a fork
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init,
                                 initargs=(target_dir, threads)) as pool:
            futures = [pool.submit(_cell, spec) for spec in todo]  # in protocol order
            for future in as_completed(futures):  # kept the moment it ends
                row = future.result()
                done[_key(row)] = row
                tag = row.get("error") or (
                    f"clean {row['measures'].get(CLEAN.name, float('nan')):.3f}  median L2 "
                    f"{row['measures'].get('median_l2', float('nan')):.4f}")
                print(f"  {row['condition']:<15} seed {row['seed']:<2} {tag}  "
                      f"({row['seconds']:.0f} s, train {row.get('train_seconds', 0):.0f} s)",
                      flush=True)
                if cache is not None:
                    with cache.open("a") as f:
                        f.write(json.dumps(row) + "\n")


def _dist(row: dict[str, Any], norm: str) -> np.ndarray:
    return np.array([np.inf if d is None else d for d in row["distances"][norm]])


def analyse(p: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The protocol's tables: per condition the measures with None's own spread; the
    primary test; the secondary family, Holm-corrected."""
    ok = [r for r in rows if "measures" in r]
    seen = {json.dumps(r.get("targets"), sort_keys=True) for r in ok}
    if len(seen) > 1:  # the simulation's predictor differs across devices and builds
        print(f"WARNING: the cells were trained toward {len(seen)} different sets of targets "
              "(another device or build made the similarity run); compare like with like")
    by: dict[str, dict[int, dict[str, Any]]] = {}
    for r in ok:
        by.setdefault(r["condition"], {})[r["seed"]] = r
    endpoints = [p["primary"]["endpoint"], *p["secondary"]["endpoints"]]
    print(f"\nprotocol {p['name']}: {p['train']['dataset']}, "
          f"{p['train']['backbone']} width {p['train']['width']}, {p['train']['epochs']} "
          f"epochs, α = {p['alpha']:g}; per condition mean ± SD over seeds [min, max]")
    shown = [CLEAN.name, *endpoints]
    print(f"{'condition':<15} {'n':>2}  " + "  ".join(f"{e:>24}" for e in shown))
    table: dict[str, Any] = {}
    for cond in p["conditions"]:
        seeds = by.get(cond, {})
        cols: list[str] = []
        entry: dict[str, Any] = {"n": len(seeds)}
        for e in shown:
            v = np.array([s["measures"][e] for s in seeds.values()
                          if s["measures"].get(e) is not None], dtype=float)
            if not len(v):
                cols.append(f"{'—':>24}")
                continue
            sd = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
            cols.append(f"{v.mean():.4f}±{sd:.4f} [{v.min():.3f},{v.max():.3f}]".rjust(24))
            entry[e] = {"mean": float(v.mean()), "sd": sd, "min": float(v.min()),
                        "max": float(v.max())}
        table[cond] = entry
        print(f"{cond:<15} {len(seeds):>2}  " + "  ".join(cols))

    def compare(cond: str, endpoint: str) -> dict[str, Any] | None:
        base, mine = by.get("none", {}), by.get(cond, {})
        seeds = sorted(set(base) & set(mine))
        if not seeds:
            return None
        t = paired_difference([(mine[s]["measures"][endpoint], base[s]["measures"][endpoint])
                               for s in seeds
                               if mine[s]["measures"].get(endpoint) is not None
                               and base[s]["measures"].get(endpoint) is not None])
        out: dict[str, Any] = {"condition": cond, "endpoint": endpoint, "seeds": seeds,
                               "paired_t": t, "p": t["t_test_p"]}
        norm = endpoint.removeprefix("median_")
        if endpoint.startswith("median_") and norm in mine[seeds[0]]["distances"]:
            h = hierarchical_bootstrap([(_dist(mine[s], norm), _dist(base[s], norm))
                                        for s in seeds], resamples=p["analysis"]["resamples"],
                                       seed=p["analysis"]["bootstrap_seed"])
            out["hierarchical"] = h
            out["p"] = h["p"]
        return out

    def show(c: dict[str, Any], adjusted: float | None = None) -> str:
        t = c["paired_t"]
        h = c.get("hierarchical")
        ci = (f"[{h['ci_low']:+.4f}, {h['ci_high']:+.4f}] (seeds×samples)" if h else
              "—" if t["ci_low"] is None else f"[{t['ci_low']:+.4f}, {t['ci_high']:+.4f}] (t)")
        diff = h["difference"] if h else t["mean_difference"]
        base = table["none"].get(c["endpoint"], {}).get("mean")
        rel = f" ({diff / base:+.1%} of None)" if base else ""
        p_txt = "—" if c["p"] is None else f"{c['p']:.4f}"
        adj = "" if adjusted is None else f", Holm p {adjusted:.4f}"
        verdict = h["verdict"] if h else t["verdict"]
        if adjusted is not None and adjusted >= p["analysis"]["alpha"]:
            verdict = "unresolved"
        return (f"{c['condition']:<15} {c['endpoint']:<24} n={len(c['seeds']):<2} "
                f"{diff:+.4f}{rel} {ci}  p {p_txt}{adj}  → {verdict}")

    print(f"\nprimary (pre-registered; α = {p['analysis']['alpha']}): "
          f"{p['primary']['condition']} − none on {p['primary']['endpoint']}, paired by seed")
    prim = compare(p["primary"]["condition"], p["primary"]["endpoint"])
    if prim:
        print("  " + show(prim))
        clean = compare(p["primary"]["condition"], CLEAN.name)
        if clean:
            print("  matched accuracy check: " + show(clean))
    family = [(c, e) for c in p["conditions"] if c != "none" for e in endpoints
              if (c, e) != (p["primary"]["condition"], p["primary"]["endpoint"])]
    tests = {f"{c}|{e}": compare(c, e) for c, e in family}
    adjusted = holm({k: (v or {}).get("p") for k, v in tests.items()})
    print(f"\nsecondary family ({len(family)} tests, Holm-corrected); each condition − none")
    for k, test in tests.items():
        if test is not None:
            print("  " + show(test, adjusted[k]))
    return {"table": table, "primary": prim, "secondary": tests, "holm": adjusted}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("protocol", type=Path)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="the whole path in minutes; "
                    "not the protocol's power")
    ap.add_argument("--report", action="store_true", help="analyse the cache, run nothing")
    ap.add_argument("--data-root", default=None,
                    help="the folder holding a file-backed dataset's archive (CIFAR)")
    args = ap.parse_args()
    start = time.perf_counter()
    p = load_protocol(args.protocol)
    specs = cells(p, args.quick, args.device, args.data_root)
    done: dict[str, dict[str, Any]] = {}
    if args.cache is not None and args.cache.exists():
        for line in args.cache.read_text().splitlines():
            row = json.loads(line)
            if "traceback" not in row:  # a crashed cell runs again; a diverged one stays
                done[_key(row)] = row
    if not args.report:
        run(p, specs, args.jobs, args.device, args.cache, done)
    rows = [done[_key(s["key"])] for s in specs if _key(s["key"]) in done]
    if args.quick:
        print("\n--quick: a check of the path, NOT the protocol's power or result")
    out = analyse(p, rows)
    slim = {"table": out["table"],
            "primary": None if out["primary"] is None else {
                k: out["primary"][k] for k in ("condition", "endpoint", "p")}
            | {"test": out["primary"].get("hierarchical") or out["primary"]["paired_t"]},
            "holm": out["holm"]}
    print(json.dumps({"bench": "protocol", "protocol": p["name"], "quick": args.quick,
                      "cells": len(rows), "of": len(specs), **slim,
                      "seconds": round(time.perf_counter() - start)}))


if __name__ == "__main__":
    main()
