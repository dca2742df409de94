"""Device choice, seeding and provenance shared by every job."""

from __future__ import annotations

import contextlib
import os
import platform
import random
from collections.abc import Iterator
from importlib import metadata

import numpy as np
import torch


def pick_device(requested: str) -> torch.device:
    """``auto`` takes CUDA when present; asking for CUDA without one is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA device is available")
    return torch.device(requested)


@contextlib.contextmanager
def deterministic_mode(enabled: bool, seed: int) -> Iterator[None]:
    """Seed every generator; with ``enabled``, also force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if enabled:
        # cuBLAS refuses deterministic mode without a fixed workspace (CUDA docs).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled, warn_only=False)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


@contextlib.contextmanager
def full_precision() -> Iterator[None]:
    """Convolutions and matrix products in float32, not TF32 (PyTorch's default for cuDNN
    convolutions on Ampere and later). An attack moves a sample to the decision boundary;
    TF32's 10-bit mantissa moves that boundary by ~1e-3 of a logit between batch layouts,
    ten times the margin an adversarial is kept with (``ml.evaluate.checks.MARGIN``)."""
    previous = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = previous


def environment_info(device: torch.device) -> dict[str, str]:
    """Library versions and device, recorded with every result."""
    info = {"python": platform.python_version(), "device": str(device)}
    for pkg in ("torch", "numpy", "neuroreg"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            info[pkg] = metadata.version(pkg)
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
