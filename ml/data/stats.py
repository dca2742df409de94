"""Image statistics that say whether a dataset is natural-image-like ("full-band"):
the slope of its power spectrum, how much of its variance a few principal components
hold, and how many of its pixels sit at the ends of [0, 1].

``bench/task_stats.py`` prints them for the offline datasets and
``tests/ml/data/test_fullband.py`` checks them, from this one definition.
"""

from __future__ import annotations

import numpy as np

SLOPE_BAND = (2.0, 14.0)
"""Frequencies (cycles per image) over which :func:`spectrum_slope` fits its line: above
the lowest ones (the window's leak and the image's mean) and below the Nyquist corner of a
32×32 image (16)."""


def _flat(images: np.ndarray) -> np.ndarray:
    """(N, H, W) float64 from (N, 1, H, W) or (N, H, W) images (a tensor works too)."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 4:
        if x.shape[1] != 1:
            raise ValueError(f"images: one channel expected, got shape {x.shape}")
        x = x[:, 0]
    if x.ndim != 3 or len(x) == 0:
        raise ValueError(f"images: (N, 1, H, W) or (N, H, W) with N > 0, got {x.shape}")
    return x


def radial_spectrum(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The radially averaged power spectrum of ``images`` (square, H = W).

    Each image has its mean subtracted and is multiplied by a 2-D Hann window; the power
    |FFT|² is averaged over the images and then over the rings of integer radius
    round(√(fx² + fy²)) (fx, fy in cycles per image).

    Returns:
        (frequencies 1 … H/2 in cycles per image, mean power at each).
    """
    x = _flat(images)
    n, h, w = x.shape
    if h != w:
        raise ValueError(f"radial_spectrum: square images expected, got {h}×{w}")
    x = x - x.mean(axis=(1, 2), keepdims=True)
    window = np.outer(np.hanning(h), np.hanning(w))
    power = np.zeros((h, w))
    for i in range(0, n, 1000):  # bounded memory for large sets
        power += (np.abs(np.fft.fft2(x[i:i + 1000] * window)) ** 2).sum(0)
    power /= n
    f = np.fft.fftfreq(h, d=1.0 / h)  # cycles per image
    radius = np.rint(np.hypot(f[:, None], f[None, :])).astype(int)
    freqs = np.arange(1, h // 2 + 1)
    mean = np.array([power[radius == k].mean() for k in freqs])
    return freqs.astype(np.float64), mean


def spectrum_slope(images: np.ndarray, band: tuple[float, float] = SLOPE_BAND) -> float:
    """The least-squares slope of log power against log frequency over ``band`` (cycles
    per image, both ends included) of :func:`radial_spectrum`: about −2 for natural
    images (power ∝ 1/f²)."""
    freqs, power = radial_spectrum(images)
    sel = (freqs >= band[0]) & (freqs <= band[1])
    if sel.sum() < 2 or np.any(power[sel] <= 0):
        raise ValueError(f"spectrum_slope: no positive power over {band} cycles/image")
    slope, _ = np.polyfit(np.log(freqs[sel]), np.log(power[sel]), 1)
    return float(slope)


def top_pc_share(images: np.ndarray, k: int = 64) -> float:
    """The share of the images' total variance (pixels flattened, mean image removed)
    that their ``k`` leading principal components hold: 1.0 when the images span at most
    ``k`` dimensions."""
    x = _flat(images).reshape(len(images), -1)
    x = x - x.mean(0)
    # the nonzero eigenvalues of XᵀX (D × D) are those of XXᵀ (N × N): take the smaller
    gram = x @ x.T if len(x) < x.shape[1] else x.T @ x  # the scale cancels in the share
    eig = np.clip(np.linalg.eigvalsh(gram), 0.0, None)[::-1]
    total = eig.sum()
    if total <= 0:
        raise ValueError("top_pc_share: the images do not vary")
    return float(eig[:k].sum() / total)


def saturated_share(images: np.ndarray) -> float:
    """The fraction of pixels that are exactly 0 or exactly 1."""
    x = np.asarray(images)
    return float(np.mean((x == 0) | (x == 1)))
