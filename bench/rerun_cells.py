"""Retrain and re-evaluate cells of ``bench/reproduce.py`` with today's code, each beside the
committed cell of the same key: does a cell come out the same when it is run again?

    .venv/bin/python bench/rerun_cells.py none:0 neural-model:8:0 none:3 [--jobs 2]
        [--cells-file bench/results/reproduce-cells.jsonl]

A cell is ``condition:seed`` for None and ``condition:alpha:seed`` otherwise (the default
``stimulus_norm``, ``separate``, and the presets' epochs, as the committed grid). Each is
built exactly as ``reproduce.py`` builds it (its ``_spec`` and ``_cell``: deterministic
training, one thread per process, the service's evaluation) after a fresh similarity run
of the presets. Prints per cell the committed and the new clean accuracy and medians, and
the paired differences (condition − None) per seed where both are there, old and new.
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import reproduce  # noqa: E402

from ml import presets  # noqa: E402

MODE = "separate"  # the mode the committed grid (part b) was run in


def _parse(cell: str) -> dict[str, Any]:
    parts = cell.split(":")
    if parts[0] == "none" and len(parts) == 2:
        return reproduce._spec("none", MODE, 0.0, int(parts[1]), presets.TRAIN["epochs"])
    if parts[0] in reproduce.CONDITIONS and len(parts) == 3:
        return reproduce._spec(parts[0], MODE, float(parts[1]), int(parts[2]),
                               presets.TRAIN["epochs"])
    raise SystemExit(f"cell {cell!r}: expected none:SEED or CONDITION:ALPHA:SEED with "
                     f"CONDITION one of {list(reproduce.CONDITIONS)}")


def _summary(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None or "result" not in row:
        return None
    res = row["result"]
    return {"clean": res["noise"]["accuracy"][0], "median_l2": res.get("median_l2"),
            "median_linf": res.get("median_linf")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cells", nargs="+", help="none:SEED or CONDITION:ALPHA:SEED")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cells-file", type=Path,
                    default=Path(__file__).parent / "results" / "reproduce-cells.jsonl")
    args = ap.parse_args()
    specs = [_parse(c) for c in args.cells]
    committed = {}
    if args.cells_file.exists():
        for line in args.cells_file.read_text().splitlines():
            row = json.loads(line)
            committed[reproduce._key(row)] = row
    from ml.neural.pipeline import SimilarityConfig, run_similarity

    start = time.perf_counter()
    sim = run_similarity(SimilarityConfig(**presets.SIMILARITY), device="cpu")
    with tempfile.TemporaryDirectory() as target_dir:
        for kind in reproduce.FROM_SIMILARITY_RUN:
            if kind in sim.targets:
                Path(target_dir, f"{kind}.npz").write_bytes(sim.targets[kind].to_bytes())
        with ProcessPoolExecutor(args.jobs, initializer=reproduce._init,
                                 initargs=(target_dir,)) as pool:
            rows = list(pool.map(reproduce._cell, specs))
    out = []
    print(f"{'cell':<28}{'':5}{'clean':>8}{'median L2':>11}{'median L∞':>11}")
    for spec, row in zip(specs, rows, strict=True):
        key = reproduce._key(spec["key"])
        old, new = _summary(committed.get(key)), _summary(row)
        name = (f"{spec['key']['condition']} α={spec['key']['alpha']:g} "
                f"seed {spec['key']['seed']}")
        for tag, s in (("then", old), ("now", new)):
            if s is not None:
                print(f"{name:<28}{tag:<5}{s['clean']:>8.4f}{s['median_l2']:>11.4f}"
                      f"{s['median_linf']:>11.5f}")
        if row.get("error"):
            print(f"{name:<28}now  {row['error']}")
        out.append({**spec["key"], "then": old, "now": new})
    # paired differences condition − None, where a seed has both (then and now)
    nones = {c["seed"]: c for c in out if c["condition"] == "none"}
    pairs = []
    for c in out:
        base = nones.get(c["seed"])
        if c["condition"] == "none" or base is None:
            continue
        pair = {"condition": c["condition"], "alpha": c["alpha"], "seed": c["seed"]}
        for tag in ("then", "now"):
            if c[tag] and base[tag]:
                pair[tag] = c[tag]["median_l2"] - base[tag]["median_l2"]
        pairs.append(pair)
        print(f"median L2, {c['condition']} α={c['alpha']:g} − None, seed {c['seed']}: "
              + ", ".join(f"{t} {pair[t]:+.4f}" for t in ("then", "now") if t in pair))
    print(json.dumps({"bench": "rerun_cells", "cells": out, "pairs": pairs,
                      "seconds": round(time.perf_counter() - start)}))


if __name__ == "__main__":
    main()
