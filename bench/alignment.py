"""What each score of the alignment evaluation (ml/evaluate/alignment.py) costs on a CPU.

A realistic held-out set: N stimuli (default 1,000) with R repeats each (default 4), A
neurons (500) whose responses are a seeded low-rank signal plus noise, and 5 tapped layers
of widths 2,000–8,000 whose features are noisy, rectified mixes of that signal (float32,
as a model's taps come). Each part is timed alone, in the order ``alignment`` runs them,
then the whole call once:

    similarity    Eq. 9 per layer and Eq. 10's mix (N × N each)
    rsa           Pearson and Spearman of 9 matrices (5 layers, mix, 3 references) with
                  ``--replicates`` bootstrap replicates over stimuli; per replicate too
    ceiling       S_oracle (Eq. 1, 3) and its split-half ceiling (repo's noise_ceiling
                  and the Spearman halves), ``--splits`` splits
    cka           centred Gram per layer and CKA against the responses and 3 references
    ridge_feve    k-fold ridge readout (LOO penalty per neuron) and FEVE, all layers

    python bench/alignment.py [--stimuli 1000] [--repeats 4] [--neurons 500]
                              [--replicates 200] [--splits 50] [--quick]

Ends with one JSON line of the seconds per part.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import numpy as np

from ml.evaluate.alignment import (
    AlignmentConfig,
    Responses,
    _oracle_ceiling,
    alignment,
    kernel_cka,
    oracle_reference,
    rdm_correlations,
    ridge_cv_predictions,
)
from ml.neural import estimators as est

WIDTHS = (2000, 3000, 4000, 6000, 8000)


def data(n: int, repeats: int, neurons: int, widths: tuple[int, ...], seed: int = 0
         ) -> tuple[dict[str, np.ndarray], np.ndarray, Responses, np.ndarray]:
    """Features per layer, stimulus ids, trials, and a noise-free S (as S_true)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 40)).astype(np.float32)
    signal = np.maximum(z @ rng.normal(size=(40, neurons)).astype(np.float32) / 6 + 1, 0)
    ids = np.arange(n) + 10_000
    rows = np.repeat(np.arange(n), repeats)
    trials = rng.gamma(signal[rows] / 1.5 + 1e-3, 1.5).astype(np.float32)  # Fano 1.5
    feats = {}
    for k, d in enumerate(widths):
        mix = rng.normal(size=(40, d)).astype(np.float32)
        feats[f"layer{k + 1}"] = np.maximum(z @ mix + (k + 1) * rng.normal(
            size=(n, d)).astype(np.float32), 0)
    return feats, ids, Responses(trials, ids[rows]), est.similarity(signal)


def timed(fn: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stimuli", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--neurons", type=int, default=500)
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--splits", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="200 stimuli, narrow layers")
    args = ap.parse_args()
    widths = tuple(w // 10 for w in WIDTHS) if args.quick else WIDTHS
    n = 200 if args.quick else args.stimuli
    feats, ids, resp, s_true = data(n, args.repeats, args.neurons, widths)
    cfg = AlignmentConfig(replicates=args.replicates, ceiling_splits=args.splits)
    gamma = np.full(len(feats), 1 / len(feats))
    rows: list[tuple[str, float, str]] = []

    sims, t_sim = timed(lambda: {k: est.similarity(f) for k, f in feats.items()})
    sims["mix"] = np.einsum("k,kij->ij", gamma, np.stack(list(sims.values())))
    rows.append(("similarity", t_sim, f"Eq. 9 on {len(feats)} layers of {n} × {widths}"))
    (s_oracle, scan), t_ref = timed(lambda: oracle_reference(resp, ids))
    refs = {"s_target": sims["layer5"] * 0.5 + s_true * 0.5, "s_oracle": s_oracle,
            "s_true": s_true}
    _, t_point = timed(lambda: rdm_correlations({**sims, **refs}, replicates=0))
    _, t_rsa = timed(lambda: rdm_correlations({**sims, **refs}, replicates=args.replicates))
    per_rep = (t_rsa - t_point) / max(args.replicates, 1)
    rows.append(("rsa", t_rsa, f"9 matrices, {n * (n - 1) // 2:,} pairs, "
                 f"{args.replicates} replicates ({per_rep * 1e3:.0f} ms each)"))
    counts = np.full(n, args.repeats)
    _, t_ceil = timed(lambda: _oracle_ceiling(scan, counts, cfg))
    rows.append(("ceiling", t_ceil + t_ref, f"S_oracle + {args.splits} split halves"))

    def cka() -> None:
        means = np.stack([resp.trials[resp.trial_ids == i].mean(0) for i in ids])
        means = means - means.mean(0)
        kernels = {"responses": means @ means.T, **refs}
        for f in feats.values():
            x = np.asarray(f, np.float64)
            x = x - x.mean(0)
            g = x @ x.T
            for other in kernels.values():
                kernel_cka(g, other)

    _, t_cka = timed(cka)
    rows.append(("cka", t_cka, "Gram per layer (float64) + 4 references each"))

    grams = {}
    for k, f in feats.items():
        x = np.asarray(f, np.float64)
        x -= x.mean(0)
        grams[k] = x @ x.T
    means = np.stack([resp.trials[resp.trial_ids == i].mean(0) for i in ids])
    _, t_ridge = timed(lambda: [ridge_cv_predictions(
        g, means, folds=cfg.folds, alphas=cfg.alpha_grid(), seed=0) for g in grams.values()])
    rows.append(("ridge_feve", t_ridge, f"{cfg.folds} folds × {cfg.alphas} penalties × "
                 f"{args.neurons} neurons, {len(feats)} layers (Grams given)"))

    out, t_all = timed(lambda: alignment(feats, ids, gamma=gamma.tolist(),
                                         s_target=refs["s_target"], s_true=s_true,
                                         responses=resp, config=cfg))
    rows.append(("alignment()", t_all, "the whole call, as a worker would make it"))

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"N={n} stimuli × {args.repeats} repeats, {args.neurons} neurons")
    print(f"{'part':<13} {'seconds':>8}  what")
    for name, sec, what in rows:
        print(f"{name:<13} {sec:8.2f}  {what}")
    feve = {k: round(v["feve"], 3) for k, v in out["predictivity"].items()}
    print(f"FEVE per layer {feve}; S_oracle ceiling {out['ceilings']['s_oracle']['ceiling']:.3f}")
    print(json.dumps({
        "bench": "alignment", "stimuli": n, "repeats": args.repeats, "neurons": args.neurons,
        "widths": list(widths), "replicates": args.replicates, "splits": args.splits,
        **{f"{name.strip('()')}_s": round(sec, 3) for name, sec, _ in rows},
        "rsa_per_replicate_s": round(per_rep, 4), "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
