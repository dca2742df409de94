"""The paper's grid in miniature, on this CPU: what comes out, whichever way it goes.

Settings: :mod:`ml.presets` (the demo study runs the same). Three parts:

(a) **normalization ablation** — None and Neural (model) at the ablation α, in every
    ``stimulus_norm`` mode (:mod:`ml.train.pathway`), ``--seeds`` seeds each.
(b) **the grid** — with the mode part (a) picks, None, Shuffle, Random, Neural (data) and
    Neural (model) at every α of the preset grid.
(c) **the layer ablation** — Random and Neural (model) at the ablation α with the
    similarity loss on some tapped layers only (:data:`LAYER_ABLATION`), to see which
    layers' constraint costs the perturbation medians (not in ``--quick``).

``--quick`` (5 minutes end to end on this 2-core machine; in the full run an attacked
model cost 5–7 core-minutes, a 12-epoch training about one): 4
epochs, the ablation α only, and the attacks on seed 0 of None and of Neural (model) in
the default mode only; every model's noise curve.

Every model is evaluated the service's way (noise curve on the whole test split; the quick
attack grid in L2 and L∞ on 100 fixed samples) and compared by :func:`ml.frontier.frontier`
— each condition against None at matched clean accuracy, paired by seed.

The default mode is picked by a rule fixed before any run: among the modes whose α = 0 run
is exactly the None model (``frozen``, ``separate``: tests/ml/test_joint.py), the one
whose Neural (model) loses less clean accuracy against None (seed-paired mean difference);
when the two are within one paired SEM of each other, the one with the higher held-out
r(S_CNN, S_target). ``shared`` is measured, never picked: its α = 0 run is not None.

    .venv/bin/python bench/reproduce.py [--quick] [--seeds 3] [--jobs 2] [--cache FILE]

``--cache`` keeps each finished cell as a JSON line and skips it on the next run (the
same settings only). Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml import presets  # noqa: E402
from ml.evaluate.measures import CLEAN  # noqa: E402
from ml.frontier import frontier  # noqa: E402
from ml.regularize.targets import FROM_SIMILARITY_RUN, REGISTRY  # noqa: E402
from ml.study import paired_difference  # noqa: E402
from ml.train.pathway import STIMULUS_NORMS  # noqa: E402
from ml.train.summary import mean_sem  # noqa: E402

CONDITIONS = ("none", "shuffle", "random", "neural-data", "neural-model")
KEY = ("condition", "mode", "alpha", "seed", "epochs", "taps")  # a cell; taps: part (c) only
LAYER_ABLATION = {"random": ((0, 1), (3, 4)), "neural-model": ((0, 1),)}
"""Part (c): at the ablation α, the similarity loss on the shallow taps only (indices 0, 1:
layers 1 and 5, where the paper's γ went) or the deep ones only (layers 13, 17, where ours
goes) — which layers' constraint costs the perturbation medians."""


def _key(row: dict[str, Any]) -> str:
    return json.dumps({k: row[k] for k in KEY if k in row}, sort_keys=True)
_TARGETS: dict[str, Any] = {}


def _init(target_dir: str) -> None:
    import torch

    torch.set_num_threads(1)  # one process per core
    from ml.neural.target import SimilarityTarget

    for kind in FROM_SIMILARITY_RUN:
        _TARGETS[kind] = SimilarityTarget.load(os.path.join(target_dir, f"{kind}.npz"))


def _cell(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one model and evaluate it; returns its row (or its error)."""
    from ml.data import load_dataset
    from ml.evaluate import EvaluateConfig, evaluate_model
    from ml.recorder import MemoryRecorder
    from ml.train.classifier import load_model
    from ml.train.joint import TrainConfig, train_model

    start = time.perf_counter()
    cfg = TrainConfig(**spec["train"])
    source = REGISTRY[cfg.target].source  # Random: built over the Neural (model) stimuli
    target = None if source is None else _TARGETS[source]
    rec = MemoryRecorder()
    row = {**spec["key"]}
    try:
        res = train_model(cfg, rec, target)
    except FloatingPointError as exc:
        return {**row, "error": str(exc), "seconds": time.perf_counter() - start}
    model, _ = load_model(io.BytesIO(rec.artifacts["model.pt"][0]))
    data = load_dataset(cfg.dataset, seed=cfg.seed)
    ecfg = EvaluateConfig(**presets.EVALUATE, device="cpu")
    if not spec.get("attack", True):  # --quick: the noise curve only for this model
        ecfg = dataclasses.replace(ecfg, attacks="none")
    note = None
    try:
        ev = evaluate_model(ecfg, MemoryRecorder(), model, data.test_images, data.test_labels,
                            num_classes=data.num_classes)
    except ValueError as exc:  # a model near chance is not attacked: its noise curve only
        note = str(exc)
        ev = evaluate_model(dataclasses.replace(ecfg, attacks="none"), MemoryRecorder(),
                            model, data.test_images, data.test_labels,
                            num_classes=data.num_classes)
    ev = {k: v for k, v in ev.items() if k in ("noise", "median_l2", "median_linf",
                                               "median_l1", "median_l0")}
    return {**row, "result": ev, "attack_error": note, "test_acc": res.test_accuracy,
            "r": res.r_similarity, "gamma": res.gamma, "layers": res.layers,
            "seconds": time.perf_counter() - start}


def _spec(condition: str, mode: str, alpha: float, seed: int, epochs: int,
          attack: bool = True, taps: tuple[int, ...] | None = None) -> dict[str, Any]:
    train = {**presets.TRAIN, "epochs": epochs, "target": condition, "seed": seed,
             "alpha": alpha if condition != "none" else 0.0, "device": "cpu",
             "deterministic": True}
    if condition != "none":
        train["stimulus_norm"] = mode
    key = {"condition": condition, "mode": mode if condition != "none" else "-",
           "alpha": alpha if condition != "none" else 0.0, "seed": seed, "epochs": epochs}
    if taps is not None:
        train["taps"] = key["taps"] = list(taps)
    return {"key": key, "train": train, "attack": attack}


def _by_layers(rows: list[dict[str, Any]], conditions: Iterable[str]) -> list[dict[str, Any]]:
    """Part (c)'s rows as conditions of their own ("random, layers 1 5"), beside None and
    the same conditions on every layer (part (b) at the ablation α)."""
    out = []
    for r in rows:
        if r["condition"] == "none" and "taps" not in r:
            out.append(r)
        elif r["condition"] in conditions and r["alpha"] == presets.ABLATION_ALPHA:
            layers = ("all layers" if "taps" not in r
                      else "layers " + " ".join(map(str, r["layers"])))
            out.append({**r, "condition": f"{r['condition']}, {layers}"})
    return out


def _run(specs: list[dict[str, Any]], jobs: int, target_dir: str, cache: Path | None,
         done: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    todo = [s for s in specs if _key(s["key"]) not in done]
    if todo:
        print(f"training and evaluating {len(todo)} models ({len(specs) - len(todo)} "
              f"cached) on {jobs} processes", flush=True)
        with ProcessPoolExecutor(jobs, initializer=_init, initargs=(target_dir,)) as pool:
            for row in pool.map(_cell, todo):
                key = {k: row[k] for k in KEY if k in row}
                done[_key(row)] = row
                r = row.get("r")
                tag = row.get("error") or (
                    f"clean {CLEAN.read(row['result']):.3f}"
                    f"  r {'—' if r is None else round(r, 3)}")
                taps = f" taps {key['taps']}" if "taps" in key else ""
                print(f"  {key['condition']:<13} {key['mode']:<9} α={key['alpha']:<5g} "
                      f"seed {key['seed']}{taps}: {tag}  ({row['seconds']:.0f} s)", flush=True)
                if cache is not None:
                    with cache.open("a") as f:
                        f.write(json.dumps(row) + "\n")
    return [done[_key(s["key"])] for s in specs]


def _evals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": None, "target": r["condition"], "alpha": r["alpha"], "seed": r["seed"],
             "backbone": presets.TRAIN["backbone"], "dataset": presets.TRAIN["dataset"],
             "result": r["result"]} for r in rows if "result" in r]


def _fmt(m: dict[str, Any] | None, digits: int = 3) -> str:
    if m is None:
        return "—"
    if m.get("n") == 1:  # one seed has no SEM (--quick attacks seed 0 only)
        return f"{m['mean']:.{digits}f} (1 seed)"
    return f"{m['mean']:.{digits}f}±{m['sem']:.{digits}f}"


def _table(rows: list[dict[str, Any]], label: str) -> dict[str, Any]:
    """Print per condition the measures, r and γ, and the matched tests; return them."""
    fr = frontier(_evals(rows), tolerance=0.02)
    by = {}
    for r in rows:
        by.setdefault((r["condition"], r["alpha"]), []).append(r)
    print(f"\n{label}")
    print(f"{'condition':<13} {'α':>5} {'n':>2}  {'clean':>11}  {'noise σ>0':>11}  "
          f"{'σ=max':>11}  {'median L2':>13}  {'median L∞':>15}  {'held-out r':>11}  γ (layers)")
    out = {}
    for p in fr["points"]:
        members = [r for r in by[(p["condition"], p["alpha"])] if "result" in r]
        rs = [r["r"] for r in members if r["r"] is not None]
        r_txt = "—" if not rs else "{:.3f}±{:.3f}".format(*mean_sem(rs))
        gamma = (np.mean([r["gamma"] for r in members], axis=0)
                 if p["condition"] != "none" else None)
        m = p["measures"]
        print(f"{p['condition']:<13} {p['alpha']:>5g} {p['n']:>2}  "
              f"{_fmt(m.get('clean_accuracy'))}  "
              f"{_fmt(m.get('noise_accuracy'))}  {_fmt(m.get('noise_accuracy_highest'))}  "
              f"{_fmt(m.get('median_l2'), 4):>13}  {_fmt(m.get('median_linf'), 5):>15}  "
              f"{r_txt:>11}  {'—' if gamma is None else ' '.join(f'{g:.2f}' for g in gamma)}")
        failed = [r for r in by[(p["condition"], p["alpha"])] if "error" in r]
        if failed:
            print(f"{'':<13} {len(failed)} run(s) failed: {failed[0]['error']}")
        out[f"{p['condition']}@{p['alpha']:g}"] = {
            "n": p["n"], **{k: v["mean"] for k, v in m.items()},
            "r": float(np.mean(rs)) if rs else None,
            "gamma": None if gamma is None else [round(float(g), 3) for g in gamma]}
    print(f"\nvs None at matched clean accuracy (±{fr['tolerance']:g}; None clean "
          f"{fr['none_clean_accuracy']:.3f}), paired by seed; difference ± SEM, t p, "
          "Wilcoxon p (≥ 0.25 with 3 pairs); higher is better for every measure")
    matched = {}
    for m in fr["matched"]:
        head = f"{m['condition']:<13} α={m['alpha']:<5g} clean gap {m['clean_gap']:+.3f}"
        if not m["matched"]:
            print(f"{head}  not matched (no α within ±{fr['tolerance']:g} of None; tried "
                  f"{m['alphas_tried']})")
        else:
            parts = []
            for name in ("noise_accuracy", "noise_accuracy_highest", "median_l2", "median_linf"):
                t = m["tests"].get(name)
                if t and t["mean_difference"] is not None:
                    p_t = "—" if t["t_test_p"] is None else f"{t['t_test_p']:.3f}"
                    parts.append(f"{name} {t['mean_difference']:+.4f}±"
                                 f"{t['sem_difference'] or 0:.4f} (t p {p_t}, {t['verdict']})")
            print(f"{head}  " + "; ".join(parts))
        matched[m["condition"]] = {
            "alpha": m["alpha"], "clean_gap": round(m["clean_gap"], 4), "matched": m["matched"],
            **{k: round(v["mean_difference"], 5) for k, v in m["tests"].items()
               if v["mean_difference"] is not None}}
    return {"points": out, "matched": matched}


def _pick_default(rows: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The rule of the module docstring, over part (a)'s rows."""
    base = {r["seed"]: r for r in rows if r["condition"] == "none" and "result" in r}
    stats = {}
    for mode in ("frozen", "separate"):
        mine = {r["seed"]: r for r in rows if r["condition"] == "neural-model"
                and r["mode"] == mode and "result" in r}
        seeds = sorted(set(mine) & set(base))
        d = paired_difference([(CLEAN.read(mine[s]["result"]), CLEAN.read(base[s]["result"]))
                               for s in seeds])
        rs = [mine[s]["r"] for s in seeds if mine[s]["r"] is not None]
        stats[mode] = {"clean_difference": d["mean_difference"], "sem": d["sem_difference"],
                       "r": float(np.mean(rs)) if rs else None, "pairs": d["pairs"]}
    f, s = stats["frozen"], stats["separate"]
    if f["clean_difference"] is None or s["clean_difference"] is None:
        return "separate" if f["clean_difference"] is None else "frozen", stats
    sem = max(f["sem"] or 0.0, s["sem"] or 0.0)
    if abs(f["clean_difference"] - s["clean_difference"]) > sem:
        pick = max(("frozen", "separate"), key=lambda k: stats[k]["clean_difference"])
    else:
        pick = max(("frozen", "separate"), key=lambda k: stats[k]["r"] or -1.0)
    return pick, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="4 epochs, the ablation α only; attacks on seed 0 of None and of "
                         "Neural (model) in the default mode only, noise curves for all")
    ap.add_argument("--seeds", type=int, default=presets.SEEDS)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--report", action="store_true",
                    help="print the tables of the cells in --cache, run nothing")
    ap.add_argument("--epochs", type=int, default=None, help="override the epochs")
    ap.add_argument("--cache", type=Path, default=None,
                    help="a JSON-lines file of finished cells to reuse and extend")
    args = ap.parse_args()
    start = time.perf_counter()
    epochs = args.epochs or (4 if args.quick else presets.TRAIN["epochs"])
    alphas = (presets.ABLATION_ALPHA,) if args.quick else presets.ALPHAS
    seeds = range(args.seeds)
    done: dict[str, dict[str, Any]] = {}
    if args.cache is not None and args.cache.exists():
        for line in args.cache.read_text().splitlines():
            row = json.loads(line)
            done[_key(row)] = row

    from ml.neural.pipeline import SimilarityConfig, run_similarity
    from ml.train.joint import TrainConfig

    if args.report:  # the tables of what the cache holds, nothing run
        every = [r for r in done.values() if r["epochs"] == epochs]
        rows = [r for r in every if "taps" not in r]
        part_a = [r for r in rows if r["condition"] == "none" or (
            r["condition"] == "neural-model" and r["alpha"] == presets.ABLATION_ALPHA)]
        for mode in STIMULUS_NORMS:
            _table([r for r in part_a if r["mode"] in ("-", mode)],
                   f"(a) stimulus_norm = {mode} (from the cache)")
        mode, _ = _pick_default(part_a)
        _table([r for r in rows if r["mode"] in ("-", mode)],
               f"(b) stimulus_norm = {mode}, every cell the cache holds")
        if any("taps" in r for r in every):
            _table(_by_layers([r for r in every if r["mode"] in ("-", mode)], LAYER_ABLATION),
                   "(c) the similarity loss on some layers only (from the cache)")
        return

    t0 = time.perf_counter()
    sim = run_similarity(SimilarityConfig(**presets.SIMILARITY), device="cpu")
    print(f"similarity run: {len(sim.targets['neural-model'])} target stimuli, "
          f"r(S_model, S_true) = {sim.scores.get('r_model_true', float('nan')):.3f}, "
          f"r(S_data, S_true) = {sim.scores.get('r_data_true', float('nan')):.3f} "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    with tempfile.TemporaryDirectory() as target_dir:
        for kind, target in sim.targets.items():
            Path(target_dir, f"{kind}.npz").write_bytes(target.to_bytes())
        default = TrainConfig().stimulus_norm

        def attack(seed: int, mode: str = default) -> bool:  # --quick: two models only
            return not args.quick or (seed == 0 and mode == default)

        ablation = [_spec("none", "-", 0.0, s, epochs, attack(s)) for s in seeds]
        ablation += [_spec("neural-model", mode, presets.ABLATION_ALPHA, s, epochs,
                           attack(s, mode)) for mode in STIMULUS_NORMS for s in seeds]
        ablation.sort(key=lambda spec: not spec["attack"])  # the long cells first
        part_a = _run(ablation, args.jobs, target_dir, args.cache, done)
        by_mode = {}
        for mode in STIMULUS_NORMS:  # one table per mode: None is the same runs in each
            rows = [r for r in part_a if r["condition"] == "none" or r["mode"] == mode]
            by_mode[mode] = _table(rows, f"(a) normalization ablation, stimulus_norm = {mode}:"
                                         f" None and Neural (model) at "
                                         f"α={presets.ABLATION_ALPHA:g}, {args.seeds} seeds, "
                                         f"{epochs} epochs")
        mode, stats = _pick_default(part_a)
        print(f"\ndefault by the rule: {mode}  ({json.dumps(stats)})")
        grid = [_spec("none", "-", 0.0, s, epochs, attack(s)) for s in seeds]
        grid += [_spec(c, mode, alpha, s, epochs, not args.quick or (
                     c == "neural-model" and attack(s, mode)))
                 for alpha in sorted(alphas, key=lambda a: (a != presets.ABLATION_ALPHA, a))
                 for c in CONDITIONS if c != "none" for s in seeds]  # the ablation α first
        part_b = _run(grid, args.jobs, target_dir, args.cache, done)
        layer_specs = [] if args.quick else [
            _spec(c, mode, presets.ABLATION_ALPHA, s, epochs, taps=taps)
            for c, tap_sets in LAYER_ABLATION.items() for taps in tap_sets for s in seeds]
        part_c = _run(layer_specs, args.jobs, target_dir, args.cache, done)
    b = _table(part_b, f"(b) the grid with stimulus_norm = {mode}: {len(CONDITIONS)} conditions "
                       f"× α {list(alphas)} × {args.seeds} seeds, {epochs} epochs")
    c = None if not part_c else _table(
        _by_layers(part_b + part_c, LAYER_ABLATION),
        f"(c) the similarity loss on some layers only, α={presets.ABLATION_ALPHA:g}, "
        f"{args.seeds} seeds: which layers' constraint costs the perturbation medians")
    if default != mode:
        print(f"\nNOTE: TrainConfig's default stimulus_norm is {TrainConfig().stimulus_norm!r}, "
              f"this run's rule picked {mode!r}")
    print(json.dumps({"bench": "reproduce", "quick": args.quick, "epochs": epochs,
                      "seeds": args.seeds, "default_mode": mode, "mode_stats": stats,
                      "ablation": by_mode, "grid": b, "layers": c,
                      "seconds": round(time.perf_counter() - start)}))


if __name__ == "__main__":
    main()
