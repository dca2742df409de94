"""The dataset type every loader returns (its own module: the loaders and the registry
import it, and the registry imports the loaders — no cycle)."""

from __future__ import annotations

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
