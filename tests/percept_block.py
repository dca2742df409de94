"""An evaluation's ``percept`` block as :func:`ml.evaluate.run._percept` records it, computed
by :func:`ml.evaluate.percept.percept` itself on random images with a stand-in readout
(two scans, three taps, logits), for the pages' and the CLI's tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from ml.evaluate.percept import describe, percept

SCANS = ("scan-a", "scan-b")
LAYERS = ("layer1", "layer2", "layer3")


def percept_block(*, norms: tuple[str, ...] = ("l2", "linf"), n: int = 24,
                  seed: int = 0) -> dict[str, Any]:
    """The block ``result["percept"]`` of one evaluation over ``norms``: a readout whose
    deeper taps amplify the perturbation more than its "V1" does."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.1, 0.9, (n, 1, 8, 8)).astype(np.float32)
    mixes = {name: rng.normal(0, 1, (64, 16)) for name in (*SCANS, *LAYERS, "logits")}

    def readout(images: np.ndarray, fill: np.ndarray) -> dict[str, np.ndarray]:
        flat = images.reshape(len(images), -1).astype(np.float64)
        smooth = flat.reshape(len(flat), 8, 8).mean(axis=2).repeat(8, axis=1)
        out = {f"v1/{s}": smooth @ mixes[s] for s in SCANS}
        for k, name in enumerate(LAYERS):
            out[name] = np.tanh((flat - 0.5) @ mixes[name] * (k + 1))
        out["logits"] = flat @ mixes["logits"]
        return out

    adversarials = {norm: np.clip(x + rng.normal(0, 0.02 * (k + 1), x.shape), 0, 1
                                  ).astype(np.float32) for k, norm in enumerate(norms)}
    selected = {norm: rng.uniform(size=n) < 0.9 for norm in norms}
    full, _ = percept(readout, x, adversarials, selected, scans=list(SCANS),
                      layers=list(LAYERS), seed=0, replicates=100, boot_seed=0)
    return {"source": "similarity run 3", "scans": list(SCANS), "layers": list(LAYERS),
            "embedding": describe((8, 8), 1), "control": "each perturbation's values "
            "permuted at random positions", "unit_definition": "D = …",
            "replicates": 100, "seed": 0, **full}
