"""The CUDA path: bf16 autocast, channels_last, the 25-step metric sync, packed training
and the attacks on a GPU. Skipped without CUDA (this project's CI has none);
``bench/gpu.py`` runs them first on a GPU machine. ``NEUROREG_TEST_DEVICE=cpu`` runs their
logic on the CPU (how they were checked before a GPU was at hand)."""

from __future__ import annotations

import dataclasses
import io
import math
import os

import numpy as np
import pytest
import torch

from ml.data import load_dataset
from ml.evaluate.run import EvaluateConfig, evaluate_model
from ml.recorder import MemoryRecorder
from ml.train.classifier import load_model
from ml.train.joint import TrainConfig, train_model
from ml.train.pack import train_pack
from tests.ml.test_joint import target as target  # noqa: F401 (the fixture)

DEVICE = os.environ.get("NEUROREG_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(
    DEVICE == "cuda" and not torch.cuda.is_available(), reason="no CUDA device")]

CFG = dict(backbone="resnet18", width=8, epochs=1, batch_size=32, lr=0.05,
           stimuli_per_step=24, heldout_fraction=0.25, device=DEVICE)


def test_bf16_channels_last_regularized_training(target) -> None:  # noqa: F811
    rec = MemoryRecorder()
    res = train_model(TrainConfig(target="neural-model", **CFG), rec, target)
    steps = res.steps
    assert steps > 25  # past one 25-step metric sync
    for key in ("loss", "task_loss", "sim_loss", "acc", "gamma/0"):
        assert sorted(rec.metrics[key]) == list(range(steps)), key
        assert all(math.isfinite(v) for v in rec.series(key)), key
    assert res.r_similarity is not None and math.isfinite(res.r_similarity)
    ckpt = torch.load(io.BytesIO(rec.artifacts["model.pt"][0]), weights_only=True)
    assert ckpt["environment"]["device"].startswith(DEVICE)  # the device it trained on
    assert DEVICE == "cpu" or "gpu" in ckpt["environment"]
    model, _ = load_model(rec.artifacts["model.pt"][0])  # loads back on the CPU
    assert next(model.parameters()).device.type == "cpu"


def test_fp32_cuda_and_cpu_train_alike(target) -> None:  # noqa: F811
    cfg = TrainConfig(target="neural-model", precision="fp32", channels_last=False,
                      **{**CFG, "backbone": "small_cnn"})
    gpu, cpu = MemoryRecorder(), MemoryRecorder()
    train_model(cfg, gpu, target)
    train_model(dataclasses.replace(cfg, device="cpu"), cpu, target)
    # another processor: float32 tolerance, and only the first steps (chaos grows)
    assert np.allclose(gpu.series("loss")[:3], cpu.series("loss")[:3], atol=1e-3)


def test_a_pack_on_cuda_trains_the_runs_apart(target) -> None:  # noqa: F811
    configs = [TrainConfig(target="neural-model", seed=s, precision="fp32", **CFG)
               for s in range(3)]
    apart = [MemoryRecorder() for _ in configs]
    for c, r in zip(configs, apart, strict=True):
        train_model(c, r, target)
    packed = [MemoryRecorder() for _ in configs]
    out = train_pack(configs, packed, [target] * 3)
    assert not any(isinstance(o, BaseException) for o in out)
    for a, b in zip(apart, packed, strict=True):
        assert np.allclose(a.series("loss")[:3], b.series("loss")[:3], rtol=1e-3, atol=1e-3)


def test_attacks_run_on_cuda() -> None:
    rec = MemoryRecorder()
    train_model(TrainConfig(backbone="small_cnn", width=16, epochs=8, lr=0.02, lr_decay=1.0,
                            device=DEVICE), rec)
    model, _ = load_model(rec.artifacts["model.pt"][0])
    data = load_dataset("digits32", seed=0)
    cfg = EvaluateConfig(attacks="quick", norms=("l2", "linf"), n_samples=20, batch_size=20,
                         noise_sigmas=(0.0, 0.1), autoattack_eps={"linf": [8 / 255]},
                         autoattack_steps=5, autoattack_queries=20, corruptions=("fog",),
                         corruption_severities=(1,), corruption_samples=20, device=DEVICE)
    out = evaluate_model(cfg, MemoryRecorder(), model, data.test_images, data.test_labels,
                         num_classes=10)
    assert out["environment"]["device"].startswith(DEVICE)
    assert out["noise"] and out["median_l2"] > 0 and out["autoattack"] and out["corruptions"]
