"""The paper in miniature: the settings ``bench/reproduce.py`` measures and the demo study
of ``neuroreg up`` runs, in one place (so the demo shows what the benchmark supports).

A ResNet18 (the paper's architecture) at width 8 on digits32 (scikit-learn's digits at
32×32, offline), 12 epochs of the paper's schedule (lr 0.1, batch 64), regularized
toward a small simulated mouse V1 (2 scans × 800 neurons, a predictive model as
denoiser). The α grid is every
other value of the paper's Fig. 6 grid (2, 4, 8, 16, 32), chosen before any result.
"""

from __future__ import annotations

from typing import Any

SIMILARITY: dict[str, Any] = {
    "source": "simulated",
    "simulation": {"n_images": 1600, "n_oracle": 50, "oracle_repeats": 10, "n_scans": 2,
                   "neurons_per_scan": 800, "seed": 0},
    "predictor": {"max_epochs": 10},
}

TRAIN: dict[str, Any] = {
    "dataset": "digits32",
    "backbone": "resnet18",
    "width": 8,
    "epochs": 12,
}

EVALUATE: dict[str, Any] = {"attacks": "quick", "norms": ["l2", "linf"], "n_samples": 100,
                            # the paper's parts: AutoAttack's standard version took over
                            # 9 min per model on a 2-core CPU, too slow for the demo
                            "parts": ["noise", "minimal"]}

ALPHAS: tuple[float, ...] = (2.0, 8.0, 32.0)
ABLATION_ALPHA = 8.0  # the normalization ablation's α, the middle of the grid
SEEDS = 3

NOTE = ("The paper in miniature: a ResNet18 at width 8 on digits32 (8×8 handwritten "
        "digits at 32×32, offline), 12 epochs, regularized toward a small simulated mouse "
        "V1. It shows whether the pipeline pulls the network's similarity toward the "
        "target and how clean accuracy and robustness move with it, seed-paired against "
        "None; it cannot confirm or refute the paper's CIFAR-10 result (another dataset, "
        "a 1/8-width network, a simulated recording, 3 seeds). bench/reproduce.py "
        "measures these settings.")
