"""The published CIFAR-10-C and CIFAR-100-C (Hendrycks & Dietterich 2019), as their
authors ship them (https://zenodo.org/records/2535967, ``CIFAR-10-C.tar``).

A folder ``CIFAR-10-C`` (or ``CIFAR-100-C``) holds one ``<corruption>.npy`` per corruption
(the 15 benchmark ones and the 4 extra: ``gaussian_noise.npy``, …, ``saturate.npy``), each
uint8 of shape (50000, 32, 32, 3): severities 1 to 5 in blocks of 10,000, each block the
test split in its order; and ``labels.npy`` (50000,), the test labels five times.
RobustBench's corruption leaderboard reads these files. Images become (N, 1, 32, 32) by
the ITU-R 601 luma every neuroreg CIFAR image goes through (``ml.data.cifar``), or stay
RGB for a three-channel model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ml.data.cifar import LUMA

FOLDERS = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C"}
SEVERITIES = 5  # blocks of the test split, one per severity (10,000 images each for CIFAR)


class PublishedError(ValueError):
    """A published corruption file that is missing or not in the published format."""


def locate(root: str | Path, dataset: str) -> Path | None:
    """The extracted ``CIFAR-10-C``/``CIFAR-100-C`` folder of ``dataset`` under ``root``."""
    folder = FOLDERS.get(dataset)
    path = Path(root) / folder if folder else None
    return path if path is not None and path.is_dir() else None


def missing(folder: Path, names: Sequence[str]) -> list[str]:
    """The files of ``names`` (and ``labels.npy``) that ``folder`` lacks."""
    return [f for f in [*(f"{n}.npy" for n in names), "labels.npy"]
            if not (folder / f).is_file()]


def _array(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise PublishedError(f"{path}: not a .npy array ({exc})") from None
    if arr.dtype != np.uint8 or tuple(arr.shape) != shape:
        raise PublishedError(f"{path}: expected uint8 {shape} (the published format), got "
                             f"{arr.dtype} {tuple(arr.shape)}")
    return arr


def published_source(folder: str | Path, *, channels: int, test_labels: torch.Tensor
                     ) -> Callable[[str, int, int], torch.Tensor]:
    """A function (corruption, severity, n) → the published corrupted versions of the
    first ``n`` test images, (n, ``channels``, 32, 32) float32 in [0, 1].

    Raises:
        PublishedError: on first use of a file that is missing, not uint8 (50000, 32, 32,
            3), or whose labels are not ``test_labels`` (files of another split).
    """
    folder = Path(folder)
    labels = test_labels.numpy().astype(np.int64)
    size = len(labels)  # images per severity: the whole test split
    checked: list[bool] = []

    def check_labels() -> None:
        path = folder / "labels.npy"
        if not path.is_file():
            raise PublishedError(f"{path}: missing")
        got = np.load(path, allow_pickle=False)
        want = np.tile(labels, SEVERITIES)
        if got.shape != want.shape or not np.array_equal(got.astype(np.int64), want):
            raise PublishedError(f"{path}: the labels are not this test split's ({size} "
                                 f"images) five times over (shape {got.shape}): files of "
                                 "another dataset?")
        checked.append(True)

    def load(name: str, severity: int, n: int) -> torch.Tensor:
        if not checked:
            check_labels()
        if not 1 <= severity <= SEVERITIES or not 0 < n <= size:
            raise PublishedError(f"severity {severity} / {n} images: the files hold "
                                 f"severities 1–{SEVERITIES} of {size} images")
        path = folder / f"{name}.npy"
        if not path.is_file():
            raise PublishedError(f"{path}: missing")
        arr = _array(path, (SEVERITIES * size, 32, 32, 3))
        start = (severity - 1) * size
        rgb = np.asarray(arr[start:start + n]).astype(np.float32) / 255.0  # (n, 32, 32, 3)
        if channels == 1:
            img = np.einsum("c,nhwc->nhw", LUMA, rgb)[:, None]
        elif channels == 3:
            img = rgb.transpose(0, 3, 1, 2)
        else:
            raise PublishedError(f"a model of {channels} input channels: CIFAR-C is RGB")
        return torch.from_numpy(np.ascontiguousarray(img))

    return load
