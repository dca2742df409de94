"""The offline full-band candidates, leaves32 and photodigits32: fixed, well-formed splits,
and images measurably closer to natural ones than digits32's (ml.data.stats, the
definitions bench/task_stats.py prints)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from ml.data import leaves, load_dataset, photodigits
from ml.data.stats import (
    radial_spectrum,
    saturated_share,
    spectrum_slope,
    top_pc_share,
)

CANDIDATES = ("leaves32", "photodigits32")


def _hashes(images: torch.Tensor | np.ndarray) -> set[bytes]:
    x = np.ascontiguousarray(np.asarray(images, dtype=np.float32))
    return {hashlib.sha1(img.tobytes()).digest() for img in x}


@pytest.mark.parametrize("name", CANDIDATES)
def test_shapes_range_balance_and_disjoint_split(name: str) -> None:
    d = load_dataset(name, seed=3)
    assert d.name == name and d.num_classes == 10
    for x, y in ((d.train_images, d.train_labels), (d.test_images, d.test_labels)):
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 32, 32)
        assert y.dtype == torch.int64 and y.shape == (len(x),)
        assert x.min() >= 0 and x.max() <= 1 and x.std() > 0.1
        share = torch.bincount(y, minlength=10).double() / len(y)
        assert share.sub(0.1).abs().max() <= 0.01, share  # balanced within 1 %
    assert not _hashes(d.train_images) & _hashes(d.test_images)
    assert len(_hashes(d.train_images)) == len(d.train_images)  # no repeated image


@pytest.mark.parametrize("name", CANDIDATES)
def test_split_is_fixed_for_every_training_seed(name: str) -> None:
    a, b = load_dataset(name, seed=0), load_dataset(name, seed=5)
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(a, field), getattr(b, field))


def test_leaves_is_deterministic_from_its_seed() -> None:
    """Generated again, uncached, the test split comes out bit for bit (the train split
    is the same code on another spawn key)."""
    d = load_dataset("leaves32", seed=0)
    x, y = leaves._generate(leaves._stream(leaves.SEED, 0, 1), leaves.N_TEST,
                            (leaves.SIZE, leaves.SIZE))
    assert np.array_equal(x, d.test_images.numpy()) and np.array_equal(y, d.test_labels)
    assert len(d.train_images) == leaves.N_TRAIN and len(d.test_images) == leaves.N_TEST
    other = leaves._generate(leaves._stream(leaves.SEED + 1, 0, 1), 50, (32, 32))[0]
    assert not _hashes(other) & _hashes(
        leaves._generate(leaves._stream(leaves.SEED, 0, 1), 50, (32, 32))[0])


def test_photodigits_is_deterministic_and_keeps_digits32s_split() -> None:
    a = load_dataset("photodigits32", seed=0)
    photodigits._split.cache_clear()
    b = photodigits.load_photodigits32()
    assert torch.equal(a.train_images, b.train_images)
    assert torch.equal(a.test_images, b.test_images)
    digits = load_dataset("digits32", seed=0)
    assert torch.equal(a.train_labels, digits.train_labels)
    assert torch.equal(a.test_labels, digits.test_labels)
    # composited: where a digit is opaque its pixels are one flat gray, elsewhere a photo
    x, alpha = a.train_images.numpy()[:, 0], digits.train_images.numpy()[:, 0]
    assert not np.array_equal(x, alpha)
    checked = 0
    for img, a_img in zip(x[:200], alpha[:200], strict=True):
        opaque = img[a_img >= 1.0]
        if len(opaque) >= 5:
            assert np.ptp(opaque) < 1e-6
            checked += 1
    assert checked > 20


def test_photodigits_backgrounds_are_not_the_simulated_v1s_photographs() -> None:
    from ml.neural.stimuli import PHOTOGRAPHS

    names = {p.rsplit(".", 1)[0] for p in photodigits.PHOTOS}
    assert names and not names & set(PHOTOGRAPHS)


def test_scenes_are_deterministic_and_share_no_image_with_the_task() -> None:
    a = leaves.scenes(40, seed=7)
    assert a.shape == (40, 1, 36, 64) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1 and a.std() > 0.1
    assert np.array_equal(a, leaves.scenes(40, seed=7))
    assert not np.array_equal(a, leaves.scenes(40, seed=8))
    # at the task's size and from the task's own seed: still none of its images
    same = leaves.scenes(300, seed=leaves.SEED, shape=(32, 32))
    d = load_dataset("leaves32", seed=0)
    task = _hashes(d.train_images) | _hashes(d.test_images)
    assert not _hashes(same) & task
    with pytest.raises(ValueError, match="n must be"):
        leaves.scenes(0, seed=0)


def test_leaves_classes_are_distinct_shapes() -> None:
    """Every class draws a different object: on a flat background with no occluder, the
    objects' masks at the same pose (circumradius 10 px) differ by over 15 px² between
    any two classes (the closest pair, disk and hexagon, by 17)."""
    yy = (np.arange(32, dtype=np.float32) + 0.5)[:, None] - 16
    xx = (np.arange(32, dtype=np.float32) + 0.5)[None, :] - 16
    masks = []
    for name in leaves.CLASSES:
        base, _ = leaves.ROTATION[name]
        c, s = np.cos(base), np.sin(base)
        u, v = (c * xx - s * yy) / 10, (-s * xx - c * yy) / 10
        masks.append(np.clip(0.5 - leaves._shape_sdf(name, u, v) * 10, 0, 1))
    for i in range(len(masks)):
        for j in range(i):
            assert np.abs(masks[i] - masks[j]).sum() > 15, (leaves.CLASSES[i],
                                                            leaves.CLASSES[j])


# ---- the measured property: natural-image-like statistics, on subsets (seconds) ----

def test_stats_on_known_images() -> None:
    rng = np.random.default_rng(0)
    white = rng.random((200, 1, 32, 32))
    assert -0.3 < spectrum_slope(white) < 0.3  # flat spectrum
    freqs, power = radial_spectrum(white)
    assert freqs[0] == 1 and len(freqs) == len(power) == 16
    low = rng.random((300, 1, 8, 8)).repeat(4, axis=2).repeat(4, axis=3)  # 64-dim
    assert top_pc_share(low, 64) > 0.999999 and top_pc_share(white, 64) < 0.5
    assert saturated_share(np.array([0.0, 1.0, 0.5, 0.25])) == 0.5


@pytest.fixture(scope="module")
def digits_top64() -> float:
    return top_pc_share(load_dataset("digits32", seed=0).train_images.numpy(), 64)


@pytest.mark.parametrize("name", CANDIDATES)
def test_fewer_images_in_64_components_than_digits32(name: str,
                                                     digits_top64: float) -> None:
    d = load_dataset(name, seed=0)
    share = top_pc_share(d.train_images[:1000].numpy(), 64)
    assert share < digits_top64 - 0.01, (share, digits_top64)


@pytest.mark.parametrize("name", [
    "leaves32",
    pytest.param("photodigits32", marks=pytest.mark.xfail(
        strict=True, reason="measured −4.0 (bench/task_stats.py): the 8×8 digits, "
        "upsampled, carry almost no power above 4 cycles/image and dominate the "
        "spectrum; even on the finest photo scale alone it is −3.5")),
])
def test_power_spectrum_slope_is_natural_like(name: str) -> None:
    d = load_dataset(name, seed=0)
    slope = spectrum_slope(d.test_images[:500].numpy())
    assert -3.0 <= slope <= -1.0, slope


def test_digits32_is_not_full_band() -> None:
    """The property the candidates are built for: digits32 fails it (slope ≈ −6)."""
    d = load_dataset("digits32", seed=0)
    assert spectrum_slope(d.test_images.numpy()) < -3.0
