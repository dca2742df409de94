"""Stimuli that need no download, grayscale, 36×64 like the paper's downsampled ImageNet
images: patches of the photographs bundled with scikit-image (the default), or dead-leaves
scenes of the process the ``leaves32`` task draws from (:mod:`ml.data.leaves`) — never one
of its images — so the stimuli and the task are the same kind of image, as ImageNet and
CIFAR were in the paper."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# photographs (not diagrams or synthetic images) shipped inside scikit-image's wheel
PHOTOGRAPHS = (
    "astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "brick",
    "grass", "gravel", "hubble_deep_field", "clock", "cell", "retina",
    "immunohistochemistry",
)


def _grayscale(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:  # ITU-R 601 luma, as every image in neuroreg
        img = img[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return img / 255.0


def photographs() -> list[np.ndarray]:
    """The bundled photographs as float32 grayscale in [0, 1]."""
    from skimage import data

    return [_grayscale(getattr(data, name)()) for name in PHOTOGRAPHS]


def natural_patches(n: int, seed: int, shape: tuple[int, int] = (36, 64)) -> np.ndarray:
    """``n`` distinct patches: random photo, scale, position and mirror, area-downsampled.

    Each patch is stretched to its 1st–99th percentile so contrast is comparable across
    photographs (the paper's stimuli were ImageNet images of normal contrast).

    Args:
        n: number of patches.
        seed: makes the set reproducible.
        shape: (H, W) of a patch.

    Returns:
        (n, 1, H, W) float32 in [0, 1].
    """
    from skimage.transform import resize

    rng = np.random.default_rng(seed)
    photos = photographs()
    h, w = shape
    out = np.empty((n, 1, h, w), dtype=np.float32)
    for k in range(n):
        photo = photos[rng.integers(len(photos))]
        max_scale = min(photo.shape[0] / h, photo.shape[1] / w)
        scale = rng.uniform(1.0, max(1.0, min(max_scale, 6.0)))
        ch, cw = int(h * scale), int(w * scale)
        y = rng.integers(photo.shape[0] - ch + 1)
        x = rng.integers(photo.shape[1] - cw + 1)
        crop = photo[y:y + ch, x:x + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        patch = resize(crop, (h, w), anti_aliasing=True, preserve_range=True)
        lo, hi = np.percentile(patch, [1, 99])
        out[k, 0] = np.clip((patch - lo) / max(hi - lo, 1e-3), 0.0, 1.0)
    return out


def leaves_scenes(n: int, seed: int, shape: tuple[int, int] = (36, 64)) -> np.ndarray:
    """``n`` dead-leaves scenes from :func:`ml.data.leaves.scenes` (its stream is
    disjoint from the task's images), (n, 1, H, W) float32 in [0, 1]."""
    from ml.data.leaves import scenes

    return scenes(n, seed=seed, shape=shape)


STIMULUS_SETS: dict[str, Callable[[int, int], np.ndarray]] = {
    "photographs": lambda n, seed: natural_patches(n, seed=seed),
    "leaves": lambda n, seed: leaves_scenes(n, seed=seed),
}
"""The simulation's stimulus sets by name (:attr:`SimulationConfig.stimuli`)."""
