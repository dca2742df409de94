"""Recorded stimulus frames → the Scan's (1, 36, 64) float32 in [0, 1]."""

from __future__ import annotations

import numpy as np

from ml.neural.scan import STIMULUS_SHAPE, RecordingError

_, HEIGHT, WIDTH = STIMULUS_SHAPE
# 144×256 and 72×128 are exactly 9:16; anything further off would be stretched
ASPECT_TOLERANCE = 0.02


def fit_aspect(arr: np.ndarray, fit: str) -> np.ndarray:
    """(H, W) pixels brought to 9:16: ``crop`` keeps the centred 9:16 window (a 4:3
    monitor's frame loses its top and bottom), ``pad`` adds rows or columns of the
    frame's mean grey on both sides (the whole picture, smaller)."""
    h, w = arr.shape
    if fit == "crop":
        if h * WIDTH > w * HEIGHT:  # too tall
            keep = round(w * HEIGHT / WIDTH)
            top = (h - keep) // 2
            return arr[top:top + keep]
        keep = round(h * WIDTH / HEIGHT)
        left = (w - keep) // 2
        return arr[:, left:left + keep]
    grey = float(np.nanmean(arr))
    if h * WIDTH > w * HEIGHT:  # too tall: pad the sides
        total = round(h * WIDTH / HEIGHT) - w
        return np.pad(arr.astype(np.float64), ((0, 0), (total // 2, total - total // 2)),
                      constant_values=grey)
    total = round(w * HEIGHT / WIDTH) - h
    return np.pad(arr.astype(np.float64), ((total // 2, total - total // 2), (0, 0)),
                  constant_values=grey)


def to_stimulus(frame: np.ndarray, *, scale: float, where: str,
                fit: str = "refuse") -> np.ndarray:
    """Downsample one grayscale frame to the paper's 36×64 by area averaging.

    An integer factor (144×256 → 36×64 is 4) takes the exact block mean; other sizes go
    through ``skimage.transform.resize`` with a Gaussian anti-aliasing pre-filter.

    Args:
        frame: (H, W) or (1, H, W) grayscale pixels.
        scale: the pixel value that means white (255 for 8-bit frames, 1 for [0, 1]).
        where: names the frame (file, table row) in error messages.
        fit: a frame of another aspect ratio is refused (``refuse``), centre-cropped to
            9:16 (``crop``) or padded with its mean grey (``pad``).

    Returns:
        (1, 36, 64) float32 in [0, 1].
    """
    arr = np.asarray(frame)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise RecordingError(
            f"{where}: expected a grayscale (H, W) or (1, H, W) image, got shape {arr.shape}"
        )
    h, w = arr.shape
    if abs(h * WIDTH - w * HEIGHT) > ASPECT_TOLERANCE * w * HEIGHT:
        if fit == "refuse":
            raise RecordingError(
                f"{where}: a {h}×{w} image does not have the {HEIGHT}×{WIDTH} (9:16) aspect "
                "ratio; pass frame_fit='crop' (centred 9:16 window) or 'pad' (mean grey "
                "borders) rather than have it stretched")
        arr = fit_aspect(arr, fit)
        h, w = arr.shape
    pixels = arr.astype(np.float64) / scale
    lo, hi = float(np.nanmin(pixels)), float(np.nanmax(pixels))
    if lo < 0.0 or hi > 1.0:
        raise RecordingError(
            f"{where}: pixel values in [{lo * scale:.4g}, {hi * scale:.4g}] are outside "
            f"the expected 0–{scale:g} range"
        )
    f = h // HEIGHT
    if h == f * HEIGHT and w == f * WIDTH:
        small = pixels.reshape(HEIGHT, f, WIDTH, f).mean(axis=(1, 3))  # exact area mean
    else:
        from skimage.transform import resize  # only odd sizes need it; skimage imports slowly

        small = resize(
            pixels, (HEIGHT, WIDTH), order=1, anti_aliasing=h > HEIGHT, preserve_range=True
        )
    return small[None].astype(np.float32)
