"""The published CIFAR-10-C format (one uint8 (5·N, 32, 32, 3) .npy per corruption,
severities in blocks of the test split, labels.npy), read on fixtures written in it."""

import numpy as np
import pytest
import torch

from ml.data.cifar_c import PublishedError, locate, missing, published_source
from ml.evaluate.corruptions import corrupt
from ml.evaluate.run import EvaluateConfig, evaluate_model
from ml.recorder import MemoryRecorder
from tests.floats import assert_within, two_paths

NAMES = ("fog", "gaussian_noise")


def _hwc(images: torch.Tensor) -> np.ndarray:
    """(N, 1, 32, 32) in [0, 1] → uint8 (N, 32, 32, 3), as the published files hold them."""
    u8 = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return np.repeat(u8, 3, axis=3) if u8.shape[3] == 1 else u8


def write_published(root, images: torch.Tensor, labels: torch.Tensor, names=NAMES):
    """A CIFAR-10-C folder whose files hold our own generated corruptions of ``images``."""
    folder = root / "CIFAR-10-C"
    folder.mkdir()
    for name in names:
        blocks = [_hwc(corrupt(images, name, sev, seed=0)) for sev in range(1, 6)]
        np.save(folder / f"{name}.npy", np.concatenate(blocks))
    np.save(folder / "labels.npy", np.tile(labels.numpy().astype(np.uint8), 5))
    return folder


def test_published_files_are_read_block_by_severity_in_luma(tmp_path, trained):
    _, x, y = trained
    folder = write_published(tmp_path, x, y)
    assert locate(tmp_path, "cifar10") == folder and locate(tmp_path, "digits32") is None
    assert missing(folder, ("fog", "frost")) == ["frost.npy"]
    load = published_source(folder, channels=1, test_labels=y)
    got = load("fog", 3, 10)
    assert got.shape == (10, 1, 32, 32) and got.dtype == torch.float32
    # gray RGB through ITU-R 601 luma is the gray image (the weights sum to 1): within the
    # roundings of the /255, the three float32 weights, their products and two additions
    want = torch.from_numpy(_hwc(corrupt(x, "fog", 3, seed=0))[:10, :, :, 0]).float() / 255
    assert_within(got[:, 0], want, two_paths(7, want, np.float32))
    rgb = published_source(folder, channels=3, test_labels=y)("fog", 1, 4)
    assert rgb.shape == (4, 3, 32, 32)


def test_files_of_another_split_or_format_are_refused_by_path(tmp_path, trained):
    _, x, y = trained
    folder = write_published(tmp_path, x, y)
    other = published_source(folder, channels=1, test_labels=torch.roll(y, 1))
    with pytest.raises(PublishedError, match="labels.npy: the labels are not this test split"):
        other("fog", 1, 5)
    np.save(folder / "fog.npy", np.zeros((10, 32, 32, 3), np.uint8))
    load = published_source(folder, channels=1, test_labels=y)
    with pytest.raises(PublishedError, match=r"fog.npy: expected uint8 \(\d+, 32, 32, 3\)"):
        load("fog", 1, 5)
    with pytest.raises(PublishedError, match="frost.npy: missing"):
        load("frost", 1, 5)


def test_an_evaluation_on_the_published_files_scores_what_they_hold(tmp_path, trained):
    model, x, y = trained
    folder = write_published(tmp_path, x, y)
    base = {"parts": ("corruptions",), "corruptions": NAMES, "corruption_severities": (1, 5),
            "corruption_samples": 60, "device": "cpu"}
    generated = evaluate_model(EvaluateConfig(**base), MemoryRecorder(), model, x, y,
                               num_classes=10)["corruptions"]
    cfg = EvaluateConfig(**base, corruption_source="published")
    with pytest.raises(ValueError, match="corruption_source: published needs"):
        evaluate_model(cfg, MemoryRecorder(), model, x, y, num_classes=10)
    out = evaluate_model(cfg, MemoryRecorder(), model, x, y, num_classes=10,
                         published=published_source(folder, channels=1, test_labels=y))
    cor = out["corruptions"]
    assert cor["source"] == "published" and cor["seed"] is None and cor["n"] == 60
    assert generated["source"] == "generated"
    # the files hold our generated images, rounded to uint8 as published: same accuracies
    for name in NAMES:
        np.testing.assert_allclose(cor["accuracy"][name], generated["accuracy"][name],
                                   atol=1 / 60 + 1e-9)  # a luma ulp may flip one
