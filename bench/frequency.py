"""The frequency part's cost at the CPU preset's sizes (``ml.presets``: a ResNet18 at width 8
on digits32, trained as the preset trains it), with the part's own defaults (10 cut-offs
over 1,000 test images capped at the split, a 32² Fourier map on 200 images, 500 hybrid
pairs).

1. The part through ``evaluate_model`` beside the noise part of the same evaluation (the
   preset's default σ grid over the whole test split): wall seconds each, from the
   evaluation's own log records, and each part's seconds per unit of the progress
   estimate (``ml.evaluate.run._weights``); ``estimate_ratio`` = frequency's over noise's
   (1: the progress bar's time left is right across the two).
2. Its pieces timed alone on the same images: filters, map, hybrids, and the perturbation
   spectrum of ``--samples`` perturbations per norm (the preset's 100 × L2, L∞); the map's
   model inputs per second.

    .venv/bin/python bench/frequency.py [--epochs 12] [--samples 100] [--map-size 32]
        [--map-samples 200]

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml import presets  # noqa: E402
from ml.data import load_dataset  # noqa: E402
from ml.evaluate import frequency as fq  # noqa: E402
from ml.evaluate.run import EvaluateConfig, _weights, evaluate_model, sample_ids  # noqa: E402
from ml.recorder import MemoryRecorder  # noqa: E402
from ml.train import TrainConfig, train_model  # noqa: E402
from ml.train.classifier import load_model  # noqa: E402


class PartTimes(logging.Handler):
    """Each part's wall time from the evaluation's "<part>: started" / "done" records."""

    def __init__(self) -> None:
        super().__init__()
        self.start: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        part, _, rest = msg.partition(": ")
        if rest.startswith("started"):
            self.start[part] = record.created
        elif rest.startswith("done in") and part in self.start:
            self.seconds[part] = record.created - self.start[part]


def _timed(f: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=presets.TRAIN["epochs"])
    p.add_argument("--samples", type=int, default=presets.EVALUATE["n_samples"])
    p.add_argument("--map-size", type=int, default=32)
    p.add_argument("--map-samples", type=int, default=200)
    args = p.parse_args()
    rec = MemoryRecorder()
    _, train_s = _timed(lambda: train_model(TrainConfig(**{**presets.TRAIN, "epochs": args.epochs,
                                                          "device": "cpu"}), rec))
    model, _ = load_model(rec.artifacts["model.pt"][0])
    model.eval()
    data = load_dataset("digits32", seed=0)
    x, y = data.test_images, data.test_labels
    cfg = EvaluateConfig(**{**presets.EVALUATE, "parts": ("noise", "frequency"),
                            "frequency_map_size": args.map_size,
                            "frequency_map_samples": args.map_samples, "device": "cpu"})
    handler = PartTimes()
    logging.getLogger("ml.evaluate.run").addHandler(handler)
    logging.getLogger("ml.evaluate.run").setLevel(logging.INFO)
    out, total = _timed(lambda: evaluate_model(cfg, MemoryRecorder(), model, x, y,
                                               num_classes=10))
    w = _weights(cfg, len(x), int(x[0].numel()))
    per = {k: handler.seconds[k] / w[k] for k in ("noise", "frequency")}
    # the pieces alone, on the images the part used
    ids = sample_ids(len(x), cfg.frequency_samples, cfg.frequency_seed)
    xs, ys = x[ids], y[ids]
    m = min(cfg.frequency_map_samples, len(ids))
    batch = max(cfg.batch_size, 100)
    with torch.no_grad():
        _, filt_s = _timed(lambda: fq.filter_accuracy(model, xs, ys,
                                                      cutoffs=cfg.frequency_cutoffs, batch=batch))
        fmap, map_s = _timed(lambda: fq.fourier_map(model, xs[:m], ys[:m],
                                                    eps=cfg.frequency_eps, size=args.map_size,
                                                    batch=batch))
        _, hyb_s = _timed(lambda: fq.hybrid_outcomes(model, xs, ys,
                                                     cutoffs=cfg.frequency_cutoffs,
                                                     pairs=cfg.hybrid_pairs, batch=batch))
    gen = torch.Generator().manual_seed(0)
    clean = x[:args.samples]
    adv = {n: (clean + 0.05 * torch.randn(clean.shape, generator=gen)).clamp(0, 1).numpy()
           for n in ("l2", "linf")}
    dist = {n: np.ones(len(clean)) for n in adv}
    _, spec_s = _timed(lambda: fq.perturbation_spectrum(clean, adv, dist))
    cells = len({fq.mirror_key(32, 32, a, b) for a in fmap.fy for b in fmap.fx})
    inputs = cells * m
    rows = [("frequency part (evaluate_model)", handler.seconds["frequency"]),
            ("noise part, same evaluation", handler.seconds["noise"]),
            ("  filters", filt_s), ("  Fourier map", map_s), ("  hybrids", hyb_s),
            (f"  spectrum ({args.samples} × 2 norms)", spec_s)]
    print(f"ResNet18 width {presets.TRAIN['width']} ({args.epochs} epochs, trained in "
          f"{train_s:.0f} s), digits32 test split {len(x)}, {torch.get_num_threads()} threads")
    for name, sec in rows:
        print(f"{name:<36} {sec:8.2f} s")
    print(f"map: {cells} frequencies (mirrors once) × {m} images = {inputs} inputs, "
          f"{inputs / map_s:.0f} inputs/s")
    print(f"seconds per estimate unit: noise {per['noise'] * 1e3:.3f} ms, frequency "
          f"{per['frequency'] * 1e3:.3f} ms; ratio {per['frequency'] / per['noise']:.2f}")
    f, fm = out["frequency"], out["frequency"]["fourier_map"]
    print(f"low-pass accuracy {', '.join(f'{a:.2f}' for a in f['lowpass'])}; map mean "
          f"error {fm['mean_error']:.3f} (clean {fm['clean_error']:.3f})")
    print(json.dumps({
        "bench": "frequency", "threads": torch.get_num_threads(), "test_images": len(x),
        "frequency_s": round(handler.seconds["frequency"], 2),
        "noise_s": round(handler.seconds["noise"], 2), "filters_s": round(filt_s, 2),
        "map_s": round(map_s, 2), "hybrids_s": round(hyb_s, 2), "spectrum_s": round(spec_s, 3),
        "map_inputs": inputs, "map_inputs_per_s": round(inputs / map_s, 1),
        "estimate_ratio": round(per["frequency"] / per["noise"], 3),
        "evaluation_s": round(total, 2), "map_size": args.map_size, "map_samples": m}))


if __name__ == "__main__":
    main()
