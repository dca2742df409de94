"""Offline default dataset: scikit-learn's bundled 8×8 handwritten digits at 32×32.

1,797 images of 10 classes ship inside scikit-learn, so this works with no network.
The 8×8 images (values 0–16) are upsampled bilinearly to CIFAR's 32×32 so the same
backbones run on it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ml.data.dataset import ImageDataset


def load_digits32(*, seed: int = 0, test_fraction: float = 0.2) -> ImageDataset:
    """Digits upsampled to (N, 1, 32, 32) in [0, 1], with a stratified split.

    Args:
        seed: fixes the train/test split.
        test_fraction: share of each class held out for testing.

    Returns:
        An :class:`ImageDataset` named ``digits32``.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    images = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
    images = images.clamp_(0.0, 1.0)
    labels = torch.from_numpy(bunch.target.astype(np.int64))

    rng = np.random.default_rng(seed)
    test_idx: list[np.ndarray] = []
    for cls in range(10):
        members = np.flatnonzero(bunch.target == cls)
        rng.shuffle(members)
        test_idx.append(members[: int(round(len(members) * test_fraction))])
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[np.concatenate(test_idx)] = True
    train_t = torch.from_numpy(~is_test)
    test_t = torch.from_numpy(is_test)
    return ImageDataset(
        name="digits32",
        train_images=images[train_t].contiguous(),
        train_labels=labels[train_t],
        test_images=images[test_t].contiguous(),
        test_labels=labels[test_t],
        num_classes=10,
    )
