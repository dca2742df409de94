"""Real-valued responses and error bars, on the default simulated protocol.

One run, side by side on the same simulated scans (``SimulationConfig()``: 4 scans ×
1,500 neurons, 5,100 images, 100 oracle images × 10 repeats, unless ``--quick``):

1. the predictor fitted with the paper's Poisson loss on the simulated responses
   (non-negative, like deconvolved events), and with the Gaussian loss on the same scans
   turned into dF/F (``ml.neural.simulate.as_dff``: fluorescence F0 (1 + 0.3 · events) +
   noise, then (F − median F) / median F): the validation correlation of each, and the
   held-out v_a of the image-driven neurons;
2. the similarity run on the Poisson scans with its error bars: r(S_model, S_oracle) and
   r(S_data, S_oracle) with 95 % bootstrap intervals over stimuli and over neurons, and
   S_oracle's split-half noise ceiling, with the seconds the error bars took.

    .venv/bin/python bench/df_over_f.py [--quick] [--epochs 10]

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.neural import uncertainty  # noqa: E402
from ml.neural.pipeline import SimilarityConfig, run_similarity  # noqa: E402
from ml.neural.predictor import PredictorConfig, fit_predictor  # noqa: E402
from ml.neural.simulate import SimulationConfig, as_dff, simulate  # noqa: E402
from ml.recorder import MemoryRecorder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 1/4-size protocol (CI-sized)")
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()
    sim_cfg = SimulationConfig(n_images=1300, n_scans=2, neurons_per_scan=300) if args.quick \
        else SimulationConfig()
    predictor = PredictorConfig(max_epochs=args.epochs)
    scans = simulate(sim_cfg).scans
    out: dict[str, object] = {"bench": "df_over_f", "quick": args.quick,
                              "scans": len(scans), "neurons": sum(s.n_neurons for s in scans),
                              "images": sim_cfg.n_images, "epochs": args.epochs}
    rows = []
    for label, data, loss in (("Poisson on events", scans, "poisson"),
                              ("Gaussian on dF/F", [as_dff(s, seed=k) for k, s in
                                                    enumerate(scans)], "auto")):
        t0 = time.perf_counter()
        fit = fit_predictor(data, dataclasses.replace(predictor, loss=loss))
        v = np.concatenate(list(fit.v.values()))
        rows.append({"fit": label, "loss": fit.loss, "val_corr": round(float(fit.val_corr), 4),
                     "v_median": round(float(np.median(v)), 4),
                     "negative_share": round(float(np.mean([(s.responses < 0).mean()
                                                            for s in data])), 3),
                     "seconds": round(time.perf_counter() - t0, 1)})
    out["fits"] = rows
    print(f"{'fit':<20}{'loss':<10}{'val corr':>10}{'median v':>10}{'< 0':>7}{'s':>8}")
    for r in rows:
        print(f"{r['fit']:<20}{r['loss']:<10}{r['val_corr']:>10.4f}{r['v_median']:>10.4f}"
              f"{r['negative_share']:>7.0%}{r['seconds']:>8.1f}")

    cfg = SimilarityConfig(simulation=sim_cfg, predictor=predictor)
    t0 = time.perf_counter()
    res = run_similarity(cfg, MemoryRecorder())
    total = time.perf_counter() - t0
    raw = [a.raw for a in res.scans if a.raw is not None]
    t1 = time.perf_counter()
    uncertainty.bootstrap_scores(raw, replicates=cfg.bootstrap, seed=cfg.seed)
    uncertainty.noise_ceiling(raw, splits=cfg.ceiling_splits, seed=cfg.seed)
    errors_s = time.perf_counter() - t1
    s = res.scores
    print(f"\nsimilarity run, {len(raw)} scans ({total:.0f} s; the error bars {errors_s:.1f} s "
          f"of it, {cfg.bootstrap} replicates, {cfg.ceiling_splits} splits)")
    for name in ("r_model_oracle", "r_data_oracle"):
        print(f"  {name:<16}{s[name]:.3f}  95 % CI over stimuli [{s[name + '_ci_stimuli_lo']:.3f}, "
              f"{s[name + '_ci_stimuli_hi']:.3f}], over neurons [{s[name + '_ci_neurons_lo']:.3f}, "
              f"{s[name + '_ci_neurons_hi']:.3f}]")
    print(f"  S_oracle split-half r {s['oracle_split_half_r']:.3f}, reliability "
          f"{s['oracle_reliability']:.3f}, noise ceiling {s['oracle_noise_ceiling']:.3f}; "
          f"r(S_oracle, S_true) {s.get('r_oracle_true', float('nan')):.3f} (the simulation's "
          "truth, which neuron sampling also limits)")
    out["similarity"] = {k: round(float(v), 4) for k, v in s.items()
                         if k.startswith(("r_", "oracle_"))}
    out["seconds"] = round(total, 1)
    out["error_bar_seconds"] = round(errors_s, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
