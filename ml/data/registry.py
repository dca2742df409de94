"""Datasets by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image classification split pair.

    Images are float32 in [0, 1], shape (N, 1, H, W); labels int64, shape (N,).
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int


def _digits(seed: int) -> ImageDataset:
    from ml.data.digits import load_digits32

    return load_digits32(seed=seed)


DATASETS: dict[str, Callable[[int], ImageDataset]] = {"digits32": _digits}


def load_dataset(name: str, *, seed: int) -> ImageDataset:
    """Load a registered dataset; the seed fixes any random split."""
    try:
        factory = DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}") from None
    return factory(seed)
