"""A frequency part's result block with the exact shape :func:`ml.evaluate.run._frequency`
records (curves that look like a small CNN's on digits32), for the API's and the pages'
tests."""

from __future__ import annotations

import math
from typing import Any

CUTOFFS = [0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 23.0]
FREQS = [-4, -3, -2, -1, 0, 1, 2, 3]  # an 8 × 8 map of a 32 × 32 image


def frequency_block(seed: int = 0, shift: float = 0.0, *, spectrum: bool = True
                    ) -> dict[str, Any]:
    """The block ``result["frequency"]`` of one evaluation; ``shift`` moves its curves
    (a condition), ``seed`` adds small per-seed offsets; without ``spectrum`` the minimal
    part did not run."""
    jitter = 0.004 * seed
    rise = [1 - math.exp(-c / 3) for c in CUTOFFS]
    low = [round(0.1 + (0.76 - shift) * r + jitter * r, 4) for r in rise]
    high = [round(0.95 - (0.85 - shift / 2) * r - jitter * r, 4) for r in rise]
    follow = [round(min(1.0, 0.9 * r + shift), 4) for r in rise]
    other = [0.05] * len(CUTOFFS)
    error = [[round(min(1.0, 0.05 + 0.06 * math.hypot(fy, fx) + shift + jitter), 4)
              for fx in FREQS] for fy in FREQS]
    bands = [float(k) for k in range(6)]
    radial = [round(0.05 + 0.06 * k + shift, 4) for k in range(6)]
    out: dict[str, Any] = {
        "image_size": [32, 32], "n": 200, "seed": 0, "cutoffs": CUTOFFS,
        "lowpass": low, "highpass": high,
        "fourier_map": {"fy": FREQS, "fx": FREQS, "error": error, "clean_error": 0.05,
                        "eps": 4.0, "n": 50, "seed": 0,
                        "mean_error": sum(map(sum, error)) / len(FREQS) ** 2,
                        "radial": {"bands": bands, "error": radial}},
        "hybrid": {"cutoffs": CUTOFFS, "low": follow,
                   "high": [round(max(0.0, 1 - f - 0.05), 4) for f in follow],
                   "other": other, "n": 100, "seed": 0},
        "spectrum": None, "spectrum_skipped": "the minimal part did not run in this "
                                              "evaluation: no minimal perturbations to analyse"}
    if spectrum:
        def summary(decay: float) -> dict[str, Any]:
            w = [math.exp(-decay * k) for k in range(len(bands))]
            frac = [v / sum(w) for v in w]
            return {"n": 50, "median": frac, "mean": frac,
                    "centroid": sum(k * f for k, f in zip(bands, frac, strict=True))}
        out["spectrum"] = {"bands": bands, "clean": summary(0.9),
                           "norms": {"l2": summary(0.3 + shift + jitter),
                                     "linf": summary(0.1 + jitter), "l1": None}}
        out["spectrum_skipped"] = None
        out["spectrum_source"] = "the minimal part of this evaluation"
    return out
