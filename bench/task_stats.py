"""Is the offline task natural-image-like, and is it saturated? digits32 against the two
full-band candidates, ``leaves32`` (:mod:`ml.data.leaves`) and ``photodigits32``
(:mod:`ml.data.photodigits`).

Per dataset, measured by :mod:`ml.data.stats` (one definition, shared with
tests/ml/data/test_fullband.py):

- ``slope``: the log-log least-squares slope of the radially averaged power spectrum of
  the test images (each mean-subtracted and Hann-windowed) over 2–14 cycles/image
  (natural images: about −2; photographs area-downsampled to 32×32 come out steeper, the
  reference row says how much);
- ``top64``: the share of the train images' variance in their 64 leading principal
  components (digits32: 1.0, its images span 64 dimensions);
- ``saturated``: the fraction of pixels exactly 0 or exactly 1 (train and test);
- None's clean test accuracy and its accuracy at the noise curve's highest σ, per seed:
  trained with the benchmark's preset (:data:`ml.presets.TRAIN`, ResNet18 width 8, the
  paper's schedule for ``--epochs``) on the CPU, evaluated the service's way
  (:func:`ml.evaluate.evaluate_model`, the noise part of :data:`ml.presets.EVALUATE`).

The reference row (``photos32``) is 2,000 patches of the simulated V1's photographs
(:func:`ml.neural.stimuli.natural_patches` at 32×32): spectrum and PCA only, no task.

    .venv/bin/python bench/task_stats.py [--seeds 2] [--epochs 12]

Cost on a 2-core CPU: training leaves32's 10,000 images for 12 epochs took 270 s on an
idle machine (digits32 and photodigits32, 1,438 images: about a minute), so a default run
is about 13 minutes; the first full run took 39 minutes beside other jobs (load 5–6).

Prints a table; ends with one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATASETS = ("digits32", "leaves32", "photodigits32")


def _stats(train: np.ndarray, test: np.ndarray) -> dict[str, float]:
    from ml.data.stats import saturated_share, spectrum_slope, top_pc_share

    return {"slope": spectrum_slope(test), "top64": top_pc_share(train, 64),
            "saturated": (saturated_share(train) * train.size
                          + saturated_share(test) * test.size) / (train.size + test.size)}


def _train_eval(name: str, seed: int, epochs: int) -> dict[str, Any]:
    from ml import presets
    from ml.data import load_dataset
    from ml.evaluate import EvaluateConfig, evaluate_model
    from ml.evaluate.measures import CLEAN, MEASURES
    from ml.recorder import MemoryRecorder
    from ml.train.classifier import load_model
    from ml.train.joint import TrainConfig, train_model

    start = time.perf_counter()
    cfg = TrainConfig(**{**presets.TRAIN, "dataset": name, "target": "none", "alpha": 0.0,
                         "seed": seed, "device": "cpu", "epochs": epochs})
    rec = MemoryRecorder()
    train_model(cfg, rec, None)
    trained = time.perf_counter()
    model, _ = load_model(io.BytesIO(rec.artifacts["model.pt"][0]))
    data = load_dataset(name, seed=seed)
    ecfg = EvaluateConfig(**{**presets.EVALUATE, "attacks": "none", "parts": ["noise"]},
                          device="cpu")
    ev = evaluate_model(ecfg, MemoryRecorder(), model, data.test_images, data.test_labels,
                        num_classes=data.num_classes)
    return {"seed": seed, "clean": CLEAN.read(ev),
            "highest": MEASURES["noise_accuracy_highest"].read(ev),
            "sigma_max": max(ev["noise"]["sigmas"]),
            "train_s": trained - start, "eval_s": time.perf_counter() - trained}


def _fmt(v: float | None, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="training seeds (0 … N-1)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs (default: the preset's)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    args = parser.parse_args(argv)

    import torch

    from ml import presets
    from ml.data import load_dataset
    from ml.neural.stimuli import natural_patches

    torch.set_num_threads(2)
    epochs = args.epochs or int(presets.TRAIN["epochs"])
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    ref = natural_patches(2000, 0, (32, 32))
    reference = _stats(ref[:1000], ref[1000:])
    for name in args.datasets:
        start = time.perf_counter()
        data = load_dataset(name, seed=0)
        load_s = time.perf_counter() - start
        row: dict[str, Any] = {
            **_stats(data.train_images.numpy(), data.test_images.numpy()),
            "n_train": len(data.train_labels), "n_test": len(data.test_labels),
            "load_s": load_s, "runs": []}
        for seed in range(args.seeds):
            run = _train_eval(name, seed, epochs)
            row["runs"].append(run)
            print(f"  {name} seed {seed}: clean {run['clean']:.4f}, at σ = "
                  f"{run['sigma_max']:g} {run['highest']:.4f} (train {run['train_s']:.0f} s, "
                  f"evaluate {run['eval_s']:.0f} s)", flush=True)
        for key in ("clean", "highest"):
            row[f"{key}_mean"] = float(np.mean([r[key] for r in row["runs"]])) \
                if row["runs"] else None
        out[name] = row

    sigma = next((r["sigma_max"] for row in out.values() for r in row["runs"]), None)
    head = (f"{'dataset':<15}{'seed':>5}{'slope':>8}{'top64':>8}{'saturated':>11}"
            f"{'train/test':>12}{'clean':>8}{'σ=' + _fmt(sigma, 'g'):>8}{'train s':>9}"
            f"{'eval s':>8}")
    print()
    print(f"None (ResNet18 width {presets.TRAIN['width']}, {epochs} epochs, CPU); "
          f"spectrum slope over 2–14 cycles/image; top64: variance share of 64 PCs")
    print(head)
    print("-" * len(head))
    for name, row in out.items():
        stats = (f"{row['slope']:>8.2f}{row['top64']:>8.3f}{row['saturated']:>11.3f}"
                 f"{str(row['n_train']) + '/' + str(row['n_test']):>12}")
        for r in row["runs"]:
            print(f"{name:<15}{r['seed']:>5}{stats}{r['clean']:>8.4f}{r['highest']:>8.4f}"
                  f"{r['train_s']:>9.0f}{r['eval_s']:>8.0f}")
        print(f"{name:<15}{'mean':>5}{stats}{_fmt(row['clean_mean'], '.4f'):>8}"
              f"{_fmt(row['highest_mean'], '.4f'):>8}{'':>9}{'':>8}   (load "
              f"{row['load_s']:.1f} s)")
    print(f"{'photos32 (ref)':<15}{'-':>5}{reference['slope']:>8.2f}"
          f"{reference['top64']:>8.3f}{reference['saturated']:>11.3f}{'1000/1000':>12}")
    total = time.perf_counter() - t0
    print(f"total {total:.0f} s")
    result = {"bench": "task_stats", "epochs": epochs, "seeds": args.seeds,
              "sigma_max": sigma, "datasets": out, "reference_photos32": reference,
              "seconds": total}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
