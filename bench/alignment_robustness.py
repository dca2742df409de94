"""Does a model's alignment with (simulated) mouse V1 go with its robustness, on this CPU?
Issue 38's question at the size a CPU affords: what comes out, whichever way it goes.

The protocol, fixed before any run:

- the similarity run of :data:`ml.presets.SIMILARITY` (the demo's simulated V1: 2 scans,
  50 oracle images × 10 repeats each, 800 neurons) — its predictor and held-out oracle
  images are what the alignment and percept parts read;
- ``--seeds`` models (default 3) of each condition: None, and Neural (model) at
  :data:`ml.presets.ABLATION_ALPHA`, trained as :data:`ml.presets.TRAIN` says (ResNet18
  width 8 on digits32, 12 epochs), seeds paired;
- each evaluated with the noise curve, the quick minimal-perturbation grid in L2 on 100
  fixed samples, and the ``alignment`` and ``percept`` parts (defaults);
- **endpoint 1**: Spearman ρ across all models between ``rsa_mix_oracle`` (the γ-mix's
  RSA with S_oracle, mean over scans) and the median minimal L2 perturbation, with its
  bootstrap-over-models CI (:func:`ml.evaluate.alignment_summary.alignment_table`);
- **endpoint 2**: Neural (model) − None, paired by seed, of ``rsa_mix_oracle``, the median
  L2 perturbation and the percept part's specificity at L2, each with its 95 % t-interval
  (:func:`ml.study.paired_difference`): "unresolved" when it covers 0.

Clean accuracy is printed beside every model: one α gives no frontier, so the conditions
are not compared at matched clean accuracy here; read endpoint 2 with the clean-accuracy
difference beside it. With 6 models, endpoint 1 can only find a strong relation.

    .venv/bin/python bench/alignment_robustness.py [--seeds 3] [--jobs 2] [--epochs N]

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml import artifacts, presets  # noqa: E402
from ml.evaluate.alignment_summary import alignment_table  # noqa: E402
from ml.study import paired_difference  # noqa: E402

CONDITIONS = (("none", 0.0), ("neural-model", presets.ABLATION_ALPHA))
_STATE: dict[str, Any] = {}


def _init(folder: str) -> None:
    """Each worker process: one thread, the target and the held-out data read once."""
    import torch

    from ml.evaluate.alignment_inputs import load_heldout, load_predictor
    from ml.neural.target import SimilarityTarget

    torch.set_num_threads(1)
    _STATE["target"] = SimilarityTarget.load(os.path.join(folder, "neural-model.npz"))
    fit = load_predictor(os.path.join(folder, artifacts.PREDICTOR))
    _STATE["fit"] = fit
    _STATE["heldout"] = load_heldout(os.path.join(folder, artifacts.CONFIG),
                                     os.path.join(folder, artifacts.PREDICTOR), fit=fit)


def _cell(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    from ml.data import load_dataset
    from ml.evaluate import EvaluateConfig, evaluate_model
    from ml.evaluate.alignment_inputs import AlignmentInputs
    from ml.recorder import MemoryRecorder
    from ml.train.classifier import load_model
    from ml.train.joint import TrainConfig, train_model

    start = time.perf_counter()
    cfg = TrainConfig(**spec["train"])
    rec = MemoryRecorder()
    res = train_model(cfg, rec, _STATE["target"] if cfg.target != "none" else None)
    blob = rec.artifacts["model.pt"][0]
    model, _ = load_model(io.BytesIO(blob))
    checkpoint = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    data = load_dataset(cfg.dataset, seed=cfg.seed)
    inputs = AlignmentInputs(checkpoint, _STATE["heldout"], "the preset similarity run",
                             fit=_STATE["fit"])
    ecfg = EvaluateConfig(attacks="quick", norms=("l2",), n_samples=100,
                          parts=("noise", "minimal", "alignment", "percept"),
                          similarity_run=1, device="cpu")
    try:
        ev = evaluate_model(ecfg, MemoryRecorder(), model, data.test_images,
                            data.test_labels, num_classes=data.num_classes,
                            alignment_inputs=inputs)
    except ValueError as exc:  # a model near chance is not attacked: said, left out
        return {**spec["key"], "error": str(exc), "test_acc": res.test_accuracy,
                "seconds": time.perf_counter() - start}
    keep = {k: ev[k] for k in ("noise", "median_l2", "alignment", "percept") if k in ev}
    return {**spec["key"], "result": keep, "test_acc": res.test_accuracy,
            "r": res.r_similarity, "seconds": time.perf_counter() - start}


def _fmt(x: Any, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=presets.SEEDS)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--epochs", type=int, default=presets.TRAIN["epochs"])
    args = ap.parse_args()
    start = time.perf_counter()

    from ml.neural.pipeline import SimilarityConfig, run_similarity
    from ml.recorder import MemoryRecorder

    rec = MemoryRecorder()
    sim = run_similarity(SimilarityConfig(**presets.SIMILARITY), rec, device="cpu")
    print(f"similarity run: r(S_model, S_true) = {sim.scores.get('r_model_true', 0):.3f} "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    specs = [{"key": {"condition": c, "alpha": a, "seed": s},
              "train": {**presets.TRAIN, "epochs": args.epochs, "target": c, "alpha": a,
                        "seed": s, "device": "cpu", "deterministic": True}}
             for s in range(args.seeds) for c, a in CONDITIONS]
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "neural-model.npz").write_bytes(sim.targets["neural-model"].to_bytes())
        for name in (artifacts.PREDICTOR, artifacts.CONFIG):
            Path(folder, name).write_bytes(rec.artifacts[name][0])
        with ProcessPoolExecutor(args.jobs, initializer=_init, initargs=(folder,)) as pool:
            rows = []
            for row in pool.map(_cell, specs):
                if "error" in row:
                    print(f"  {row['condition']:>12} seed {row['seed']}: left out "
                          f"(test accuracy {row['test_acc']:.3f}): {row['error']}",
                          flush=True)
                    continue
                rows.append(row)
                head = (row["result"].get("percept") or {}).get("headline") or {}
                mean = (row["result"].get("alignment") or {}).get("mean") or {}
                print(f"  {row['condition']:>12} seed {row['seed']}: clean "
                      f"{row['result']['noise']['accuracy'][0]:.4f}, median L2 "
                      f"{_fmt(row['result'].get('median_l2'))}, rsa_mix_oracle "
                      f"{_fmt(mean.get('rsa_mix_oracle'))}, feve_best "
                      f"{_fmt(mean.get('feve_best'))}, specificity "
                      f"{_fmt(head.get('specificity_l2'), 2)}, v1_adv "
                      f"{_fmt(head.get('v1_adv_l2'), 4)} ({row['seconds']:.0f} s)",
                      flush=True)

    evals = [{"id": i, "target": r["condition"], "alpha": r["alpha"], "seed": r["seed"],
              "result": r["result"]} for i, r in enumerate(rows)]
    table = alignment_table(evals)
    if table is None:
        print(json.dumps({"bench": "alignment_robustness", "models": 0,
                          "seconds": round(time.perf_counter() - start)}))
        return
    pair = next(p for p in table["pairs"]
                if (p["score"], p["measure"]) == ("rsa_mix_oracle", "median_l2"))
    print(f"\nendpoint 1: Spearman ρ(rsa_mix_oracle, median L2) = {_fmt(pair['r'], 2)} "
          f"[{_fmt(pair['ci_low'], 2)}, {_fmt(pair['ci_high'], 2)}] over {pair['n']} models")

    def value(r: dict[str, Any], name: str) -> float | None:
        res = r["result"]
        return {"clean_accuracy": res["noise"]["accuracy"][0],
                "median_l2": res.get("median_l2"),
                "rsa_mix_oracle": ((res.get("alignment") or {}).get("mean") or {}).get(
                    "rsa_mix_oracle"),
                "specificity_l2": ((res.get("percept") or {}).get("headline") or {}).get(
                    "specificity_l2")}[name]

    by = {(r["condition"], r["seed"]): r for r in rows}
    endpoint2 = {}
    print("endpoint 2: Neural (model) − None, paired by seed")
    for name in ("clean_accuracy", "median_l2", "rsa_mix_oracle", "specificity_l2"):
        pairs = [(value(by[("neural-model", s)], name), value(by[("none", s)], name))
                 for s in range(args.seeds) if ("neural-model", s) in by and ("none", s) in by]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        d = paired_difference(pairs)
        endpoint2[name] = d
        print(f"  {name:>15}: {_fmt(d['mean_difference'], 4)} [{_fmt(d['ci_low'], 4)}, "
              f"{_fmt(d['ci_high'], 4)}] over {d['pairs']} pairs → {d['verdict']}")
    print(json.dumps({"bench": "alignment_robustness", "seeds": args.seeds,
                      "epochs": args.epochs, "models": len(rows),
                      "rho_rsa_median_l2": pair["r"], "rho_ci": [pair["ci_low"],
                                                                 pair["ci_high"]],
                      "paired": {k: {x: v.get(x) for x in ("pairs", "mean_difference",
                                                           "ci_low", "ci_high", "verdict")}
                                 for k, v in endpoint2.items()},
                      "seconds": round(time.perf_counter() - start)}))


if __name__ == "__main__":
    main()
