"""The GPU path measured, in one script of at most five minutes (issue 22), for a session
that is lent a GPU machine: the CUDA-marked tests, a 40-epoch-equivalent timing of the
paper's regularized ResNet18 (width 64, batch 64, CIFAR-shaped 32×32 grayscale data; bf16
autocast vs fp32; steps/s and peak GPU memory), the 5 × 5 grid's time alone and packed,
``bench/pack.py``, ``bench/train_overhead.py`` at width 64 and ``bench/attack.py`` — each
part under a time limit of its own, the most important first, so a slow part cannot
starve the rest. Prints a table and ends with one JSON line (also written to
``$OUT/gpu.json`` when ``OUT`` is set).

    .venv/bin/python bench/gpu.py                  # on the GPU machine
    .venv/bin/python bench/gpu.py --device cpu --quick   # its dry run on a CPU
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pack import _Steps  # noqa: E402
from ml.neural.estimators import unit_vectors  # noqa: E402
from ml.neural.stimuli import natural_patches  # noqa: E402
from ml.neural.target import SimilarityTarget  # noqa: E402
from ml.recorder import Cancelled  # noqa: E402
from ml.train.joint import TrainConfig, train_model  # noqa: E402
from ml.train.pack import train_pack  # noqa: E402

CIFAR_STEPS = 50_000 // 64 + 1  # a CIFAR-10 epoch at batch 64: 782 steps
PAPER_EPOCHS = 40


def _last_json(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                out: dict[str, Any] = json.loads(line)
                return out
            except ValueError:
                return None
    return None


def _run(cmd: list[str], limit: float) -> dict[str, Any]:
    """A part as a subprocess under ``limit`` seconds: its last JSON line (or its tail)."""
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=limit)
        out: dict[str, Any] = {"rc": done.returncode,
                               "seconds": round(time.perf_counter() - t0, 1)}
        parsed = _last_json(done.stdout)
        if parsed is not None:
            out["result"] = parsed
        out["tail"] = (done.stdout + done.stderr)[-1500:]
    except subprocess.TimeoutExpired as exc:
        text = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        out = {"rc": "timeout", "seconds": limit, "tail": text[-1500:]}
    print(f"  {' '.join(cmd[1:3])}: rc {out['rc']} in {out['seconds']} s", flush=True)
    return out


def _target() -> SimilarityTarget:
    images = natural_patches(1000, seed=0)
    quad = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(images), (3, 4))
    f = quad.flatten(1).numpy()
    return SimilarityTarget("neural-model", unit_vectors(f - f.mean(0)), np.arange(1000),
                            images)


def _time_steps(configs: list[TrainConfig], target: SimilarityTarget, steps: int
                ) -> tuple[float, float]:
    """Median seconds per step (one run, or a pack of several), and the peak GPU memory
    in GiB (0 on a CPU)."""
    cuda = torch.cuda.is_available() and configs[0].device != "cpu"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    recs = [_Steps(steps + 3) for _ in configs]
    if len(configs) == 1:
        try:
            train_model(configs[0], recs[0], target)
        except Cancelled:
            pass
    else:
        train_pack(configs, recs, [target] * len(configs))
    memory = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
    return recs[0].seconds(3), memory


def _epochs(device: str, width: int, steps: int, k: int) -> dict[str, Any]:
    """The paper's run (40 epochs of CIFAR-10 at batch 64), from timed steps."""
    target = _target()
    out: dict[str, Any] = {"width": width, "steps_timed": steps,
                           "steps_per_epoch": CIFAR_STEPS, "epochs": PAPER_EPOCHS}
    base = dict(backbone="resnet18", width=width, batch_size=64, epochs=1, device=device,
                deterministic=False, target="neural-model")
    for precision in ("bf16", "fp32") if device != "cpu" else ("fp32",):
        cfg = TrainConfig(precision=precision, **base)  # type: ignore[arg-type]
        s, mem = _time_steps([cfg], target, steps)
        minutes = s * CIFAR_STEPS * PAPER_EPOCHS / 60
        out[precision] = {"s_per_step": round(s, 5), "steps_per_s": round(1 / s, 1),
                          "gpu_memory_gib": round(mem, 2), "run_40_epochs_min": round(minutes, 1),
                          "grid_25_runs_h": round(25 * minutes / 60, 2)}
        print(f"  regularized ResNet18 w{width} {precision}: {1 / s:.1f} steps/s, "
              f"{mem:.2f} GiB, 40 epochs ≈ {minutes:.1f} min, 25 runs ≈ "
              f"{25 * minutes / 60:.2f} h", flush=True)
    precision = "bf16" if device != "cpu" else "fp32"
    configs = [TrainConfig(precision=precision, seed=s, **base)  # type: ignore[arg-type]
               for s in range(k)]
    s, mem = _time_steps(configs, target, steps)
    minutes = s * CIFAR_STEPS * PAPER_EPOCHS / 60
    out[f"packed_{k}"] = {"s_per_step": round(s, 5), "gpu_memory_gib": round(mem, 2),
                          "pack_40_epochs_min": round(minutes, 1),
                          "grid_25_runs_h": round(25 / k * minutes / 60, 2),
                          "per_model_vs_alone": round(k * out[precision]["s_per_step"] / s, 2)}
    print(f"  packed ×{k} {precision}: {s:.4f} s per step of {k}, {mem:.2f} GiB, 25 runs ≈ "
          f"{25 / k * minutes / 60:.2f} h ({out[f'packed_{k}']['per_model_vs_alone']}× per "
          "model)", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--quick", action="store_true", help="small sizes (a CPU dry run)")
    ap.add_argument("--budget", type=float, default=290, help="seconds for everything")
    args = ap.parse_args()
    start = time.perf_counter()
    py = sys.executable
    width, steps, k = (8, 3, 2) if args.quick else (64, 30, 5)
    env_device = {"NEUROREG_TEST_DEVICE": args.device}
    report: dict[str, Any] = {"bench": "gpu", "date": time.strftime("%Y-%m-%d"),
                              "device": torch.cuda.get_device_name(0)
                              if args.device == "cuda" and torch.cuda.is_available()
                              else "cpu", "torch": torch.__version__,
                              "cuda": torch.version.cuda}
    print(f"on {report['device']} (torch {torch.__version__}, CUDA {torch.version.cuda})")

    def left() -> float:
        return args.budget - (time.perf_counter() - start)

    os.environ.update(env_device)
    tests = [py, "-m", "pytest", "-q", "-m", "cuda", "tests/ml/test_cuda.py", "-p",
             "no:randomly", "-x"]
    if args.quick:
        tests += ["-k", "not attacks"]
    report["cuda_tests"] = _run(tests, min(120, left()))
    t0 = time.perf_counter()
    try:
        report["paper_run"] = _epochs(args.device, width, steps, k)
    except Exception as exc:  # noqa: BLE001 — report it; the other parts still run
        report["paper_run"] = {"error": f"{type(exc).__name__}: {exc}"}
    report["paper_run"]["seconds"] = round(time.perf_counter() - t0, 1)
    parts = [
        ("pack", [py, "bench/pack.py", "--device", args.device, "--k", str(k), "--width",
                  str(width), "--steps", str(steps // 3 or 1), "--repeats", "1"], 60),
        ("train_overhead", [py, "bench/train_overhead.py", "--device", args.device,
                            "--width", str(width), "--repeats", "3"], 60),
        ("attack", [py, "bench/attack.py", "--device", args.device, "--samples",
                    "20" if args.quick else "100"], 120),
    ]
    for name, cmd, limit in parts:
        if left() < 15:
            report[name] = {"rc": "skipped", "why": "out of time"}
            continue
        report[name] = _run(cmd, min(limit, left()))
    report["seconds"] = round(time.perf_counter() - start, 1)
    text = json.dumps(report)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
