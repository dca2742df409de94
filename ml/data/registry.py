"""Datasets by name.

``digits32`` ships inside scikit-learn (the offline default); ``leaves32`` (generated
dead-leaves scenes with shape classes, :mod:`ml.data.leaves`) and ``photodigits32``
(digits32 on photo backgrounds, :mod:`ml.data.photodigits`) are offline full-band
candidates; ``cifar10`` and ``cifar100`` are read from the official archives under a data
root that the caller (the worker: ``NEUROREG_DATASETS_DIR``) supplies.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ml.data.cifar import load_cifar
from ml.data.dataset import ImageDataset
from ml.data.digits import load_digits32
from ml.data.leaves import load_leaves32
from ml.data.photodigits import load_photodigits32


def _digits(seed: int, root: Path | None) -> ImageDataset:
    # one fixed split, as CIFAR's: models trained with different seeds are tested (and
    # attacked) on the same images
    return load_digits32(seed=0)


def _leaves(seed: int, root: Path | None) -> ImageDataset:
    return load_leaves32()  # generated from its own fixed seed: one split for every seed


def _photodigits(seed: int, root: Path | None) -> ImageDataset:
    return load_photodigits32()  # digits32's split, backgrounds from a fixed seed


def _cifar(which: str) -> Callable[[int, Path | None], ImageDataset]:
    def load(seed: int, root: Path | None) -> ImageDataset:
        if root is None:
            raise ValueError(f"dataset: {which} needs a data root holding its archive")
        return load_cifar(root, which)  # type: ignore[arg-type]

    return load


DATASETS: dict[str, Callable[[int, Path | None], ImageDataset]] = {
    "digits32": _digits,
    "leaves32": _leaves,
    "photodigits32": _photodigits,
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
