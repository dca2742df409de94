"""Datasets by name.

``digits32`` ships inside scikit-learn (the offline default); ``cifar10`` and
``cifar100`` are read from the official archives under a data root that the caller
(the worker: ``NEUROREG_DATASETS_DIR``) supplies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def _digits(seed: int, root: Path | None) -> ImageDataset:
    from ml.data.digits import load_digits32

    # one fixed split, as CIFAR's: models trained with different seeds are tested (and
    # attacked) on the same images
    return load_digits32(seed=0)


def _cifar(which: str) -> Callable[[int, Path | None], ImageDataset]:
    def load(seed: int, root: Path | None) -> ImageDataset:
        from ml.data.cifar import load_cifar

        if root is None:
            raise ValueError(f"dataset: {which} needs a data root holding its archive")
        return load_cifar(root, which)  # type: ignore[arg-type]

    return load


DATASETS: dict[str, Callable[[int, Path | None], ImageDataset]] = {
    "digits32": _digits,
    "cifar10": _cifar("cifar10"),
    "cifar100": _cifar("cifar100"),
}


def load_dataset(name: str, *, seed: int, root: str | Path | None = None) -> ImageDataset:
    """Load a registered dataset; the seed fixes any random split, ``root`` is where
    file-backed datasets live."""
    try:
        factory = DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}") from None
    return factory(seed, None if root is None else Path(root))
