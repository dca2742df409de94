"""CIFAR-10 / CIFAR-100 from the official python-pickle archives, in grayscale.

The archives (https://www.cs.toronto.edu/~kriz/cifar.html) hold pickled dicts:
``data`` (N, 3072) uint8 in channel-major order (1024 R, 1024 G, 1024 B, each row-major
32×32) and ``labels`` (CIFAR-10) or ``fine_labels``/``coarse_labels`` (CIFAR-100), with
byte-string keys. CIFAR-10 splits training into ``data_batch_1..5`` beside
``test_batch``; CIFAR-100 has ``train`` and ``test``. Images become (N, 1, 32, 32) float32
in [0, 1] by ITU-R 601 luma, as everywhere in neuroreg.

``root`` may hold the archive (``cifar-10-python.tar.gz``) or its extracted folder
(``cifar-10-batches-py``); :func:`download` fetches the archive and checks its MD5.
"""

from __future__ import annotations

import hashlib
import pickle
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ml.data.dataset import ImageDataset

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class _Archive:
    file: str
    folder: str
    md5: str
    train: tuple[str, ...]
    test: str
    classes: int


ARCHIVES = {
    "cifar10": _Archive("cifar-10-python.tar.gz", "cifar-10-batches-py",
                        "c58f30108f718f92721af3b95e74349a",
                        tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch", 10),
    "cifar100": _Archive("cifar-100-python.tar.gz", "cifar-100-python",
                         "eb9058c3a382ffc7106e4002c42a8d85", ("train",), "test", 100),
}
URL = "https://www.cs.toronto.edu/~kriz/"


class _RestrictedUnpickler(pickle.Unpickler):
    """CIFAR batches are plain dicts of bytes, lists and NumPy arrays; refuse any other
    global so a tampered archive cannot run code."""

    ALLOWED = {
        (core, name)
        for core in ("numpy.core.multiarray", "numpy._core.multiarray",
                     "numpy.core.numeric", "numpy._core.numeric")
        for name in ("_reconstruct", "_frombuffer")
    } | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"CIFAR batch refers to {module}.{name}; refusing it")


class CifarError(ValueError):
    """A CIFAR file that is not what the format says; the message names the file."""


def _unpickle(raw: bytes, what: str) -> tuple[str, dict[bytes, Any]]:
    """(``what``, the batch): a pickled dict with a ``data`` entry, or a CifarError."""
    import io

    if not raw:
        raise CifarError(f"{what}: the file is empty")
    try:
        batch = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, ImportError) as exc:  # what a damaged pickle raises
        raise CifarError(f"{what}: not a readable CIFAR batch ({type(exc).__name__}: "
                         f"{exc or 'truncated'}); re-extract or re-download it") from None
    if not isinstance(batch, dict) or b"data" not in batch:
        raise CifarError(f"{what}: not a CIFAR batch (no b'data' entry)")
    return what, batch


def _read_members(root: Path, archive: _Archive,
                  names: tuple[str, ...]) -> list[tuple[str, dict[bytes, Any]]]:
    folder = root / archive.folder
    if folder.is_dir():
        out = []
        for n in names:
            path = folder / n
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing from the extracted CIFAR folder")
            out.append(_unpickle(path.read_bytes(), str(path)))
        return out
    tar_path = root / archive.file
    if not tar_path.is_file():
        raise FileNotFoundError(
            f"neither {folder} nor {tar_path} exists; download the archive from {URL} "
            "or call ml.data.cifar.download(root)"
        )
    try:
        with tarfile.open(tar_path, "r:gz") as tar:
            out = []
            for n in names:
                member = f"{archive.folder}/{n}"
                try:
                    fh = tar.extractfile(member)
                except KeyError:
                    raise FileNotFoundError(f"{tar_path} has no {member}") from None
                if fh is None:
                    raise FileNotFoundError(f"{tar_path}: {member} is not a file")
                out.append(_unpickle(fh.read(), f"{tar_path}:{member}"))
            return out
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise CifarError(f"{tar_path}: not a readable .tar.gz ({type(exc).__name__}: "
                         f"{exc}); re-download it (its MD5 is checked)") from None


def _to_gray(batches: list[tuple[str, dict[bytes, Any]]], label_key: bytes,
             classes: int) -> tuple[torch.Tensor, ...]:
    datas, labelss = [], []
    for what, b in batches:  # each file checked on its own, so the error can name it
        data = np.asarray(b[b"data"])
        if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
            raise CifarError(f"{what}: expected (N, 3072) uint8 rows, got {data.shape} "
                             f"{data.dtype}")
        if label_key not in b:
            raise CifarError(f"{what}: no {label_key.decode()!r} entry (it has "
                             f"{sorted(k.decode(errors='replace') for k in b)})")
        try:
            labels = np.asarray(b[label_key], dtype=np.int64)
        except (TypeError, ValueError):
            raise CifarError(f"{what}: {label_key.decode()!r} are not integers") from None
        if labels.shape != (len(data),):
            raise CifarError(f"{what}: {len(data)} images but labels of shape "
                             f"{labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise CifarError(f"{what}: labels outside 0..{classes - 1} (from "
                             f"{labels.min()} to {labels.max()})")
        datas.append(data)
        labelss.append(labels)
    data, labels = np.concatenate(datas), np.concatenate(labelss)
    rgb = data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0  # (N, 3, 32, 32)
    gray = np.einsum("c,nchw->nhw", LUMA, rgb)[:, None]  # (N, 1, 32, 32), ITU-R 601 luma
    return torch.from_numpy(np.ascontiguousarray(gray)), torch.from_numpy(labels)


def load_cifar(root: str | Path, which: Literal["cifar10", "cifar100"] = "cifar10", *,
               labels: Literal["fine", "coarse"] = "fine") -> ImageDataset:
    """Grayscale CIFAR-10/100 from the official archive or its extracted folder.

    Args:
        root: folder holding ``cifar-10-python.tar.gz`` / ``cifar-10-batches-py`` (or the
            CIFAR-100 equivalents).
        which: ``cifar10`` or ``cifar100``.
        labels: CIFAR-100's 100 ``fine`` classes or 20 ``coarse`` superclasses.

    Returns:
        An :class:`ImageDataset` named ``cifar10-gray`` / ``cifar100-gray``.
    """
    if which not in ARCHIVES:
        raise ValueError(f"which: {which!r} is not one of {sorted(ARCHIVES)}")
    archive = ARCHIVES[which]
    key, classes = b"labels", archive.classes
    if which == "cifar100":
        key = b"fine_labels" if labels == "fine" else b"coarse_labels"
        classes = 100 if labels == "fine" else 20
    root = Path(root)
    train = _to_gray(_read_members(root, archive, archive.train), key, classes)
    test = _to_gray(_read_members(root, archive, (archive.test,)), key, classes)
    return ImageDataset(f"{which}-gray", train[0], train[1], test[0], test[1], classes)


def locate(root: str | Path, which: str) -> Path | None:
    """The extracted folder or archive of ``which`` under ``root``, or None if absent."""
    archive = ARCHIVES[which]
    for path in (Path(root) / archive.folder, Path(root) / archive.file):
        if path.exists():
            return path
    return None


def md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(root: str | Path, which: Literal["cifar10", "cifar100"] = "cifar10",
             *, url: str = URL) -> Path:
    """Fetch the official archive into ``root`` (if absent) and verify its MD5.

    Raises:
        ValueError: when the file's checksum differs (the file is removed).
    """
    archive = ARCHIVES[which]
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / archive.file
    if not path.exists():
        tmp = path.with_suffix(".part")
        urllib.request.urlretrieve(url + archive.file, tmp)  # noqa: S310 (fixed https URL)
        tmp.replace(path)
    if (got := md5(path)) != archive.md5:
        path.unlink()
        raise ValueError(f"{path}: MD5 {got} does not match the published {archive.md5}")
    return path
