"""CIFAR loaders on fixtures written in the official python-pickle archive format."""

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ml.data.cifar import CifarError, download, load_cifar


def _batch(rng: np.random.Generator, n: int, **labels: list[int]) -> bytes:
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    d = {b"batch_label": b"fixture", b"data": data,
         b"filenames": [f"img{i}.png".encode() for i in range(n)]}
    d.update({k.encode(): v for k, v in labels.items()})
    return pickle.dumps(d, protocol=2)


def _write_tar(path: Path, folder: str, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


@pytest.fixture
def cifar10(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    members = {f"data_batch_{i}": _batch(rng, 4, labels=[i, 0, 9, 3]) for i in range(1, 6)}
    members["test_batch"] = _batch(rng, 3, labels=[1, 2, 3])
    members["batches.meta"] = pickle.dumps({b"label_names": [b"x"] * 10}, protocol=2)
    _write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", members)
    return tmp_path


def _raw_first_image(root: Path) -> np.ndarray:
    with tarfile.open(root / "cifar-10-python.tar.gz") as tar:
        fh = tar.extractfile("cifar-10-batches-py/data_batch_1")
        assert fh is not None
        return pickle.loads(fh.read(), encoding="bytes")[b"data"][0]


def test_cifar10_archive_loads_as_grayscale_luma(cifar10: Path) -> None:
    d = load_cifar(cifar10, "cifar10")
    assert d.name == "cifar10-gray" and d.num_classes == 10
    assert d.train_images.shape == (20, 1, 32, 32) and d.test_images.shape == (3, 1, 32, 32)
    assert d.train_labels.tolist()[:4] == [1, 0, 9, 3] and d.test_labels.tolist() == [1, 2, 3]
    raw = _raw_first_image(cifar10).astype(np.float32) / 255
    r, g, b = raw[:1024], raw[1024:2048], raw[2048:]
    expect = (0.299 * r + 0.587 * g + 0.114 * b).reshape(32, 32)
    np.testing.assert_allclose(d.train_images[0, 0].numpy(), expect, atol=1e-6)
    assert d.train_images.dtype == torch.float32 and 0 <= d.train_images.min() <= 1


def test_extracted_folder_reads_the_same(cifar10: Path) -> None:
    with tarfile.open(cifar10 / "cifar-10-python.tar.gz") as tar:
        tar.extractall(cifar10 / "x", filter="data")
    a = load_cifar(cifar10, "cifar10")
    b = load_cifar(cifar10 / "x", "cifar10")
    assert torch.equal(a.train_images, b.train_images)


def test_cifar100_fine_and_coarse_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    _write_tar(tmp_path / "cifar-100-python.tar.gz", "cifar-100-python", {
        "train": _batch(rng, 5, fine_labels=[0, 99, 5, 6, 7], coarse_labels=[0, 19, 1, 1, 2]),
        "test": _batch(rng, 2, fine_labels=[3, 4], coarse_labels=[5, 6]),
    })
    fine = load_cifar(tmp_path, "cifar100")
    coarse = load_cifar(tmp_path, "cifar100", labels="coarse")
    assert fine.num_classes == 100 and fine.train_labels.tolist() == [0, 99, 5, 6, 7]
    assert coarse.num_classes == 20 and coarse.test_labels.tolist() == [5, 6]


def test_missing_and_malformed_archives_are_explained(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        load_cifar(tmp_path, "cifar10")
    rng = np.random.default_rng(2)
    _write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py",
               {"data_batch_1": _batch(rng, 2, labels=[0, 1])})
    with pytest.raises(FileNotFoundError, match="data_batch_2"):
        load_cifar(tmp_path, "cifar10")
    with pytest.raises(ValueError, match="which"):
        load_cifar(tmp_path, "cifar1000")  # type: ignore[arg-type]


def test_a_pickle_that_calls_code_is_refused(tmp_path: Path) -> None:
    import os

    evil = pickle.dumps({b"data": os.getcwd, b"labels": []}, protocol=2)
    _write_tar(tmp_path / "cifar-100-python.tar.gz", "cifar-100-python",
               {"train": evil, "test": evil})
    with pytest.raises(CifarError, match="train.*refusing"):
        load_cifar(tmp_path, "cifar100")


def _folder(root: Path, members: dict[str, bytes]) -> Path:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, raw in members.items():
        (folder / name).write_bytes(raw)
    return root


@pytest.mark.parametrize("bad, message", [
    (b"", r"cifar-100-python/test: the file is empty"),
    ("truncated", r"cifar-100-python/test: not a readable CIFAR batch \(.*re-extract"),
    ("narrow", r"cifar-100-python/test: expected \(N, 3072\) uint8 rows, got \(2, 1024\)"),
    ("no fine labels", r"cifar-100-python/test: no 'fine_labels' entry \(it has \["),
    ("bad label", r"cifar-100-python/test: labels outside 0..99 \(from 3 to 100\)"),
])
def test_a_damaged_batch_is_named_with_what_is_wrong(
    tmp_path: Path, bad: bytes | str, message: str
) -> None:
    rng = np.random.default_rng(3)
    good = _batch(rng, 2, fine_labels=[3, 4], coarse_labels=[5, 6])
    raw = {
        "truncated": good[: len(good) // 2],
        "narrow": pickle.dumps({b"data": np.zeros((2, 1024), np.uint8),
                                b"fine_labels": [0, 1]}, protocol=2),
        "no fine labels": _batch(rng, 2, coarse_labels=[5, 6]),
        "bad label": _batch(rng, 2, fine_labels=[3, 100]),
    }.get(bad, bad) if isinstance(bad, str) else bad
    root = _folder(tmp_path, {"train": good, "test": raw})
    with pytest.raises(CifarError, match=message):
        load_cifar(root, "cifar100")


def test_a_truncated_archive_is_named(cifar10: Path) -> None:
    path = cifar10 / "cifar-10-python.tar.gz"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CifarError, match=r"cifar-10-python.tar.gz: not a readable .tar.gz"):
        load_cifar(cifar10, "cifar10")


def test_download_checks_the_published_md5(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "cifar-10-python.tar.gz").write_bytes(b"not the real archive")
    dest = tmp_path / "data"
    with pytest.raises(ValueError, match="MD5"):
        download(dest, "cifar10", url=mirror.as_uri() + "/")
    assert not (dest / "cifar-10-python.tar.gz").exists()  # a bad file is not kept
