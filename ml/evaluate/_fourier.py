"""The signal processing under :mod:`ml.evaluate.frequency`: radial frequencies, ideal
filters, real Fourier basis images and energy per radial band.

Frequencies are in cycles per image along each axis (integers, the FFT's own grid:
−H/2 … H/2 − 1 for even H), the radius |f| = √(f_y² + f_x²). Filters are ideal (a hard
mask on the radius, no taper): a low-pass and the matching high-pass add up to the image
exactly, and the energy on either side of a cut-off is exactly the spectrum's there
(Parseval). Their price is ringing (Gibbs) near edges, the same for every model.
"""

from __future__ import annotations

import math

import torch


def frequencies(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The FFT's frequencies of an H×W image in cycles per image: (H,) and (W,), float64,
    in FFT order (0 first)."""
    return (torch.fft.fftfreq(h, d=1.0 / h, dtype=torch.float64),
            torch.fft.fftfreq(w, d=1.0 / w, dtype=torch.float64))


def radius(h: int, w: int) -> torch.Tensor:
    """|f| per FFT bin of an H×W image, (H, W) float64 in cycles per image."""
    fy, fx = frequencies(h, w)
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def highest_radius(h: int, w: int) -> float:
    """The largest |f| on the grid (the corner, √2 · N/2 for an even N×N image): a low-pass
    at or above it keeps every frequency."""
    return float(radius(h, w).max())


def low_mask(h: int, w: int, cutoff: float) -> torch.Tensor:
    """(H, W) bool: the bins an ideal low-pass at ``cutoff`` keeps, |f| ≤ cutoff (the mean,
    |f| = 0, always). Symmetric under f → −f, so a filtered real image stays real."""
    return radius(h, w) <= cutoff + 1e-9


def low_pass(images: torch.Tensor, cutoff: float) -> torch.Tensor:
    """The ideal low-pass of (N, C, H, W) images at ``cutoff`` cycles per image, float64,
    unclipped: cut-off 0 gives each channel's mean, one at or above
    :func:`highest_radius` the images."""
    h, w = images.shape[-2:]
    spec = torch.fft.fft2(images.double())
    return torch.fft.ifft2(spec * low_mask(h, w, cutoff)).real


def high_pass(images: torch.Tensor, cutoff: float) -> torch.Tensor:
    """The ideal high-pass at ``cutoff`` (|f| > cutoff kept), float64, unclipped and zero-mean
    (the mean is a low frequency): ``low_pass(x, c) + high_pass(x, c) == x``."""
    return images.double() - low_pass(images, cutoff)


def basis_image(h: int, w: int, fy: int, fx: int) -> torch.Tensor:
    """The real Fourier basis image of frequency (f_y, f_x), (H, W) float64, unit L2 norm.

    Yin et al. 2019 (§3, "Fourier heat map"; google-research/frequency_analysis): the
    inverse FFT of (1 + i)/2 at (f_y, f_x) and (1 − i)/2 at its mirror (−f_y, −f_x),
    i.e. ∝ cos θ − sin θ with θ = 2π(f_y·y/H + f_x·x/W); a frequency that is its own
    mirror (the mean, the Nyquist rows and columns' corners) gets cos θ. Its spectrum is
    nonzero at (f_y, f_x) and its mirror only; both give the very same image (built from
    :func:`mirror_key`'s representative, as Yin et al. store one image for the pair).
    """
    ky, kx = mirror_key(h, w, fy, fx)
    y = torch.arange(h, dtype=torch.float64)[:, None]
    x = torch.arange(w, dtype=torch.float64)[None, :]
    theta = 2 * math.pi * (ky * y / h + kx * x / w)
    own_mirror = (2 * fy) % h == 0 and (2 * fx) % w == 0
    b = torch.cos(theta) if own_mirror else torch.cos(theta) - torch.sin(theta)
    return b / b.norm()


def mirror_key(h: int, w: int, fy: int, fx: int) -> tuple[int, int]:
    """One key for a frequency and its mirror (they share a basis image): the smaller of
    (f_y mod H, f_x mod W) and (−f_y mod H, −f_x mod W)."""
    return min((fy % h, fx % w), (-fy % h, -fx % w))


def bands(h: int, w: int) -> torch.Tensor:
    """(H, W) long: each FFT bin's radial band, round(|f|) (band k holds k − ½ ≤ |f| <
    k + ½; band 0 is the mean alone)."""
    return torch.floor(radius(h, w) + 0.5).long()


def band_energy(images: torch.Tensor) -> torch.Tensor:
    """Energy per radial band of each of (N, C, H, W) images, summed over channels:
    (N, K) float64 with K = the number of bands. By Parseval each row sums to
    ‖image‖² · H · W (numpy's unnormalized FFT); divide by the row sum for fractions."""
    h, w = images.shape[-2:]
    power = torch.fft.fft2(images.double()).abs().square().sum(1).flatten(1)  # (N, H·W)
    index = bands(h, w).flatten()
    out = torch.zeros(len(images), int(index.max()) + 1, dtype=torch.float64)
    return out.index_add_(1, index, power)
