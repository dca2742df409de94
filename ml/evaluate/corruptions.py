"""Common corruptions with CIFAR-10-C's own severities (Hendrycks & Dietterich 2019).

The 15 benchmark corruptions and the 4 extra ones, each at 5 severities, generated
offline from any 32×32 test split: the operations and the per-severity parameters of
CIFAR-10-C's generator (``make_cifar_c.py`` in hendrycks/robustness), not ImageNet-C's.
The ``imagecorruptions`` package implements ImageNet-C's parameters, which differ for
every corruption at 32×32 (e.g. Gaussian noise σ 0.04–0.10 here against 0.08–0.38 there,
JPEG quality 80–40 against 25–7, defocus radius 0.3–1.5 against 3–10), so it is not used.

As CIFAR-10-C does: each image is quantised to 8 bits, corrupted, and truncated back to
8 bits (``np.uint8`` of the float result); frost overlays CIFAR-10-C's five frost
photographs (ImageNet-C's files, resized ×0.2 as its generator does, shipped in
``frost.npz``); glass blur's "swap" copies the neighbour into the pixel, as the
generator's tuple assignment of NumPy views does.

Where CIFAR-10-C calls ImageMagick (motion blur, the snow streaks), ImageMagick's motion
blur is computed here: a one-sided Gaussian line kernel of width 2⌈radius⌉ + 1 along the
angle, the edge pixel repeated outside the image.

Grayscale images: the channel-wise operations (noise, blur, zoom, fog, contrast, elastic,
pixelate, JPEG, glass) run on the one channel; the colour ones (brightness, saturate,
frost, snow, spatter) run on the gray image repeated into RGB and return its luma
(0.299 R + 0.587 G + 0.114 B). Saturation of a gray image is 0, so ``saturate`` changes
a grayscale image only at severities 4 and 5 (its additive term).

Every image draws from its own generator, seeded by (seed, corruption, severity, sample
id): the same image gets the same corruption in any batch, on any machine, for every
model.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from io import BytesIO
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)
"""Each corruption's accuracies: the worker sends this logger's records to the run's log."""

Rng = np.random.Generator
Op = Callable[[np.ndarray, Any, Rng], np.ndarray]  # (H, W, C) float 0–255 → same


@dataclass(frozen=True)
class Corruption:
    name: str
    label: str
    severities: tuple[Any, ...]  # CIFAR-10-C's parameters, severity 1..5
    op: Op
    colour: bool = False  # needs RGB: a grayscale image goes through RGB and back
    extra: bool = False   # one of the 4 held-out corruptions, not in mCE


def _gaussian(x: np.ndarray, sigma: float, **kw: Any) -> np.ndarray:
    from skimage.filters import gaussian

    return gaussian(x, sigma=sigma, channel_axis=-1 if x.ndim == 3 else None, **kw)


def _gaussian_noise(x: np.ndarray, c: float, rng: Rng) -> np.ndarray:
    x = x / 255.0
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1) * 255


def _shot_noise(x: np.ndarray, c: float, rng: Rng) -> np.ndarray:
    x = x / 255.0
    return np.clip(rng.poisson(x * c) / c, 0, 1) * 255


def _impulse_noise(x: np.ndarray, c: float, rng: Rng) -> np.ndarray:
    from skimage.util import random_noise

    return np.clip(random_noise(x / 255.0, mode="s&p", amount=c, rng=rng), 0, 1) * 255


def _speckle_noise(x: np.ndarray, c: float, rng: Rng) -> np.ndarray:
    x = x / 255.0
    return np.clip(x + x * rng.normal(size=x.shape, scale=c), 0, 1) * 255


def _gaussian_blur(x: np.ndarray, c: float, rng: Rng) -> np.ndarray:
    return np.clip(_gaussian(x / 255.0, c), 0, 1) * 255


@functools.cache
def _glass_loop() -> Callable[[np.ndarray, np.ndarray, int], None]:
    from numba import njit

    @njit(cache=True)  # type: ignore[misc]
    def loop(x: np.ndarray, offsets: np.ndarray, delta: int) -> None:
        h_n, w_n = x.shape[0], x.shape[1]
        for it in range(offsets.shape[0]):
            for a, h in enumerate(range(h_n - delta, delta, -1)):
                for b, w in enumerate(range(w_n - delta, delta, -1)):
                    dx, dy = offsets[it, a, b, 0], offsets[it, a, b, 1]
                    x[h, w, :] = x[h + dy, w + dx, :]
    return loop  # type: ignore[no-any-return]


def _glass_blur(x: np.ndarray, c: tuple[float, int, int], rng: Rng) -> np.ndarray:
    sigma, delta, iterations = c
    x = (_gaussian(x / 255.0, sigma) * 255).astype(np.uint8)  # truncated
    h, w = x.shape[:2]
    n_h, n_w = len(range(h - delta, delta, -1)), len(range(w - delta, delta, -1))
    offsets = rng.integers(-delta, delta, size=(iterations, n_h, n_w, 2))
    _glass_loop()(x, offsets, delta)
    return np.clip(_gaussian(x / 255.0, sigma), 0, 1) * 255


def _disk(radius: float, alias_blur: float) -> np.ndarray:
    import cv2

    size, ksize = (8, (3, 3)) if radius <= 8 else (int(radius), (5, 5))
    ax = np.arange(-size, size + 1)
    xx, yy = np.meshgrid(ax, ax)
    disk = np.array((xx ** 2 + yy ** 2) <= radius ** 2, dtype=np.float32)
    disk /= disk.sum()
    return cv2.GaussianBlur(disk, ksize=ksize, sigmaX=alias_blur)  # type: ignore[no-any-return]


def _defocus_blur(x: np.ndarray, c: tuple[float, float], rng: Rng) -> np.ndarray:
    import cv2

    kernel = _disk(c[0], c[1])
    x = x / 255.0
    out = np.stack([cv2.filter2D(x[:, :, d], -1, kernel) for d in range(x.shape[2])], -1)
    return np.clip(out, 0, 1) * 255


def _motion_kernel(x: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """ImageMagick's MotionBlurImage on (H, W, C): Σᵢ kᵢ · x(p + offsetᵢ), kᵢ ∝
    exp(−i²/2σ²) for i < 2⌈radius⌉ + 1, offsetᵢ = i·(cos, sin)(angle) rounded, edge
    pixels repeated."""
    width = 2 * math.ceil(radius) + 1
    k = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2))
    k /= k.sum()
    a = math.radians(angle)
    h, w = x.shape[:2]
    out = np.zeros_like(x, dtype=np.float64)
    rows, cols = np.arange(h), np.arange(w)
    for i in range(width):
        ox = math.ceil(i * math.cos(a) - 0.5)
        oy = math.ceil(i * math.sin(a) - 0.5)
        r = np.clip(rows + oy, 0, h - 1)
        cc = np.clip(cols + ox, 0, w - 1)
        out += k[i] * x[r][:, cc]
    return out


def _motion_blur(x: np.ndarray, c: tuple[float, float], rng: Rng) -> np.ndarray:
    out = _motion_kernel(x, c[0], c[1], float(rng.uniform(-45, 45)))
    return np.clip(np.round(out), 0, 255)  # ImageMagick writes 8-bit PNG


def _clipped_zoom(img: np.ndarray, zoom: float) -> np.ndarray:
    from scipy.ndimage import zoom as scizoom

    h = img.shape[0]
    ch = int(np.ceil(h / zoom))
    top = (h - ch) // 2
    img = scizoom(img[top:top + ch, top:top + ch], (zoom, zoom, 1), order=1)
    trim = (img.shape[0] - h) // 2
    return img[trim:trim + h, trim:trim + h]


def _zoom_blur(x: np.ndarray, c: np.ndarray, rng: Rng) -> np.ndarray:
    x = (x / 255.0).astype(np.float32)
    out = np.zeros_like(x)
    for z in c:
        out += _clipped_zoom(x, float(z))
    return np.clip((x + out) / (len(c) + 1), 0, 1) * 255


def _plasma_fractal(rng: Rng, mapsize: int, wibbledecay: float) -> np.ndarray:
    """The diamond-square height map CIFAR-10-C's fog uses, in [0, 1]."""
    grid = np.empty((mapsize, mapsize), dtype=np.float64)
    grid[0, 0] = 0
    step, wibble = mapsize, 100.0

    def wibbled(a: np.ndarray) -> np.ndarray:
        return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

    while step >= 2:
        half = step // 2
        corners = grid[0:mapsize:step, 0:mapsize:step]
        sq = corners + np.roll(corners, shift=-1, axis=0)
        sq += np.roll(sq, shift=-1, axis=1)
        grid[half:mapsize:step, half:mapsize:step] = wibbled(sq)
        dr = grid[half:mapsize:step, half:mapsize:step]
        ul = grid[0:mapsize:step, 0:mapsize:step]
        lt = dr + np.roll(dr, 1, axis=0) + ul + np.roll(ul, -1, axis=1)
        grid[0:mapsize:step, half:mapsize:step] = wibbled(lt)
        tt = dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=0)
        grid[half:mapsize:step, 0:mapsize:step] = wibbled(tt)
        step //= 2
        wibble /= wibbledecay
    grid -= grid.min()
    return grid / grid.max()


def _fog(x: np.ndarray, c: tuple[float, float], rng: Rng) -> np.ndarray:
    x = x / 255.0
    top = x.max()
    h, w = x.shape[:2]
    x += c[0] * _plasma_fractal(rng, 32, c[1])[:h, :w][..., None]  # CIFAR-10-C's map size
    return np.clip(x * top / (top + c[0]), 0, 1) * 255


@functools.cache
def _frost_images() -> list[np.ndarray]:
    with resources.files("ml.evaluate").joinpath("frost.npz").open("rb") as f:
        data = np.load(f, allow_pickle=False)  # our own package data
        return [data[f"frost{i}"] for i in range(1, 6)]


def _frost(x: np.ndarray, c: tuple[float, float], rng: Rng) -> np.ndarray:
    frost = _frost_images()[int(rng.integers(5))]  # CIFAR-10-C draws from the first 5
    h, w = x.shape[:2]
    top, left = rng.integers(0, frost.shape[0] - h), rng.integers(0, frost.shape[1] - w)
    return np.clip(c[0] * x + c[1] * frost[top:top + h, left:left + w], 0, 255)


def _luma(x: np.ndarray) -> np.ndarray:
    return (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[..., None]


def _snow(x: np.ndarray, c: tuple[float, ...], rng: Rng) -> np.ndarray:
    x = (x / 255.0).astype(np.float32)
    h, w = x.shape[:2]
    layer = rng.normal(size=(h, w), loc=c[0], scale=c[1])
    layer = _clipped_zoom(layer[..., None], c[2])
    layer[layer < c[3]] = 0
    layer8 = (np.clip(layer.squeeze(), 0, 1) * 255).astype(np.uint8)[..., None]
    streaks = np.clip(np.round(_motion_kernel(layer8.astype(np.float64), c[4], c[5],
                                              float(rng.uniform(-135, -45)))), 0, 255) / 255.0
    x = c[6] * x + (1 - c[6]) * np.maximum(x, _luma(x) * 1.5 + 0.5)
    return np.clip(x + streaks + np.rot90(streaks, k=2), 0, 1) * 255


def _spatter(x: np.ndarray, c: tuple[float, ...], rng: Rng) -> np.ndarray:
    import cv2

    x = (x / 255.0).astype(np.float32)
    liquid = _gaussian(rng.normal(size=x.shape[:2], loc=c[0], scale=c[1]), c[2])
    liquid[liquid < c[3]] = 0
    if c[5] == 0:  # water
        liquid8 = (liquid * 255).astype(np.uint8)
        dist = 255 - cv2.Canny(liquid8, 50, 150)
        dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        ker = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
        dist = cv2.filter2D(dist, cv2.CV_8U, ker)
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        m = (liquid8 * dist)[..., None].repeat(3, -1)
        m /= np.max(m, axis=(0, 1))
        m *= c[4]
        colour = np.array([175, 238, 238], dtype=np.float32) / 255  # pale turquoise
        return np.clip(x + m * colour, 0, 1) * 255
    m = _gaussian(np.where(liquid > c[3], 1, 0).astype(np.float32), c[4])  # mud
    m[m < 0.8] = 0
    colour = np.array([63, 42, 20], dtype=np.float32) / 255 * m[..., None]
    return np.clip(x * (1 - m[..., None]) + colour, 0, 1) * 255


def _contrast(x: np.ndarray, c: float, rng: Rng) -> np.ndarray:
    x = x / 255.0
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def _hsv(x: np.ndarray, channel: int, f: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(x / 255.0)
    hsv[:, :, channel] = np.clip(f(hsv[:, :, channel]), 0, 1)
    return np.clip(hsv2rgb(hsv), 0, 1) * 255


def _brightness(x: np.ndarray, c: float, rng: Rng) -> np.ndarray:
    return _hsv(x, 2, lambda v: v + c)


def _saturate(x: np.ndarray, c: tuple[float, float], rng: Rng) -> np.ndarray:
    return _hsv(x, 1, lambda s: s * c[0] + c[1])


def _pil(x: np.ndarray) -> Any:
    from PIL import Image

    a = np.asarray(x).astype(np.uint8)
    return Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)


def _from_pil(img: Any, channels: int) -> np.ndarray:
    a = np.asarray(img, dtype=np.float64)
    return a[..., None] if a.ndim == 2 else a[..., :channels]


def _jpeg(x: np.ndarray, c: int, rng: Rng) -> np.ndarray:
    from PIL import Image

    buf = BytesIO()
    _pil(x).save(buf, "JPEG", quality=c)
    return _from_pil(Image.open(buf), x.shape[2])


def _pixelate(x: np.ndarray, c: float, rng: Rng) -> np.ndarray:
    from PIL import Image

    h, w = x.shape[:2]
    img = _pil(x).resize((int(w * c), int(h * c)), Image.Resampling.BOX)
    return _from_pil(img.resize((w, h), Image.Resampling.BOX), x.shape[2])


def _elastic(x: np.ndarray, c: tuple[float, float, float], rng: Rng) -> np.ndarray:
    import cv2
    from scipy.ndimage import map_coordinates

    image = (x / 255.0).astype(np.float32)
    shape = image.shape
    size = shape[:2]
    centre = np.array(size, dtype=np.float32) // 2
    sq = min(size) // 3
    pts1 = np.array([centre + sq, [centre[0] + sq, centre[1] - sq], centre - sq],
                    dtype=np.float32)
    pts2 = pts1 + rng.uniform(-c[2], c[2], size=pts1.shape).astype(np.float32)
    warp = cv2.getAffineTransform(pts1, pts2)  # type: ignore[call-overload]
    image = cv2.warpAffine(  # type: ignore[assignment]
        image, warp, size[::-1], borderMode=cv2.BORDER_REFLECT_101)
    image = image.reshape(shape)  # OpenCV drops a single channel
    dx = (_gaussian(rng.uniform(-1, 1, size=size), c[1], mode="reflect", truncate=3)
          * c[0]).astype(np.float32)[..., None]
    dy = (_gaussian(rng.uniform(-1, 1, size=size), c[1], mode="reflect", truncate=3)
          * c[0]).astype(np.float32)[..., None]
    xx, yy, zz = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    ind = np.reshape(yy + dy, (-1, 1)), np.reshape(xx + dx, (-1, 1)), np.reshape(zz, (-1, 1))
    out = map_coordinates(image, ind, order=1, mode="reflect").reshape(shape)
    return np.clip(out, 0, 1) * 255


_S = 32  # CIFAR-10-C's elastic parameters are fractions of its image size
CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in (
    Corruption("gaussian_noise", "Gaussian noise", (0.04, 0.06, .08, .09, .10), _gaussian_noise),
    Corruption("shot_noise", "shot noise", (500, 250, 100, 75, 50), _shot_noise),
    Corruption("impulse_noise", "impulse noise", (.01, .02, .03, .05, .07), _impulse_noise),
    Corruption("defocus_blur", "defocus blur",
               ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)), _defocus_blur),
    Corruption("glass_blur", "glass blur",
               ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
               _glass_blur),
    Corruption("motion_blur", "motion blur",
               ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)), _motion_blur),
    Corruption("zoom_blur", "zoom blur", tuple(np.arange(1, top, 0.01) for top in
                                               (1.06, 1.11, 1.16, 1.21, 1.26)), _zoom_blur),
    Corruption("snow", "snow", ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
                                (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
                                (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
                                (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)), _snow, colour=True),
    Corruption("frost", "frost", ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
               _frost, colour=True),
    Corruption("fog", "fog", ((.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)), _fog),
    Corruption("brightness", "brightness", (.05, .1, .15, .2, .3), _brightness, colour=True),
    Corruption("contrast", "contrast", (.75, .5, .4, .3, 0.15), _contrast),
    Corruption("elastic_transform", "elastic", tuple(
        (_S * a, _S * b, _S * c) for a, b, c in ((0, 0, 0.08), (0.05, 0.2, 0.07),
                                                  (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                                                  (0.1, 0.03, 0.03))), _elastic),
    Corruption("pixelate", "pixelate", (0.95, 0.9, 0.85, 0.75, 0.65), _pixelate),
    Corruption("jpeg_compression", "JPEG", (80, 65, 58, 50, 40), _jpeg),
    Corruption("speckle_noise", "speckle noise", (.06, .1, .12, .16, .2), _speckle_noise,
               extra=True),
    Corruption("gaussian_blur", "Gaussian blur", (.4, .6, 0.7, .8, 1), _gaussian_blur,
               extra=True),
    Corruption("spatter", "spatter", ((0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0),
                                      (0.65, 0.3, 1, 0.69, 0.5, 0),
                                      (0.65, 0.1, 0.7, 0.69, 0.6, 1),
                                      (0.65, 0.1, 0.5, 0.68, 0.6, 1)), _spatter,
               colour=True, extra=True),
    Corruption("saturate", "saturate", ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
               _saturate, colour=True, extra=True),
)}
"""CIFAR-10-C's 15 benchmark corruptions, then its 4 extra ones, in its order."""
BENCHMARK = tuple(n for n, c in CORRUPTIONS.items() if not c.extra)
EXTRA = tuple(n for n, c in CORRUPTIONS.items() if c.extra)
SEVERITIES = (1, 2, 3, 4, 5)
SIZE = (32, 32)


def check_choice(names: Sequence[str], severities: Sequence[int]) -> None:
    """Known corruption names and severities 1–5, else a ValueError naming the field."""
    bad = [n for n in names if n not in CORRUPTIONS]
    if bad or not names:
        raise ValueError(f"corruptions: {bad or 'none'} given; choose from "
                         f"{list(CORRUPTIONS)}")
    badsev = [s for s in severities if isinstance(s, bool) or s not in SEVERITIES]
    if badsev or not severities:
        raise ValueError(f"corruption_severities: {badsev or 'none'} given; each is one of "
                         f"{list(SEVERITIES)}")


def corrupt_one(image: np.ndarray, name: str, severity: int, rng: Rng) -> np.ndarray:
    """One (H, W, C) uint8 image corrupted; uint8 back (truncated, as CIFAR-10-C)."""
    spec = CORRUPTIONS[name]
    x = image.astype(np.float64)
    gray = x.shape[2] == 1
    if gray and spec.colour:
        x = x.repeat(3, axis=2)
    out = spec.op(x, spec.severities[severity - 1], rng)
    if gray and spec.colour:
        out = _luma(np.asarray(out, dtype=np.float64))
    return np.clip(out, 0, 255).astype(np.uint8)  # truncated, as CIFAR-10-C


def corrupt(images: torch.Tensor, name: str, severity: int, *, seed: int,
            ids: Sequence[int] | np.ndarray | None = None) -> torch.Tensor:
    """(N, C, H, W) images in [0, 1] (C = 1 or 3, H = W = 32) corrupted, in [0, 1].

    ``ids`` (default 0..N−1) name each image's own generator with ``seed``: an image
    gets the same corruption whichever batch it comes in.
    """
    check_choice([name], [severity])
    if images.ndim != 4 or images.shape[1] not in (1, 3) or tuple(images.shape[2:]) != SIZE:
        raise ValueError(f"images: CIFAR-10-C's severities are defined for (N, 1 or 3, 32, "
                         f"32) images, got shape {tuple(images.shape)}")
    sample_ids = np.arange(len(images)) if ids is None else np.asarray(ids)
    index = list(CORRUPTIONS).index(name)
    hwc = (images.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(
        0, 2, 3, 1).numpy()
    key = (hashlib.sha1(np.ascontiguousarray(hwc).tobytes() + sample_ids.astype(np.int64)
                        .tobytes()).hexdigest(), name, severity, seed)
    out = _CACHE.get(key)
    if out is None:
        out = np.empty_like(hwc)
        for i, (img, sid) in enumerate(zip(hwc, sample_ids, strict=True)):
            rng = np.random.default_rng([seed, index, severity, int(sid)])
            out[i] = corrupt_one(img, name, severity, rng)
        _CACHE.put(key, out)
    return torch.from_numpy(out.copy()).permute(0, 3, 1, 2).float().div_(255.0).contiguous()


class _Cache:
    """The corrupted images last made, up to ``limit`` bytes: every model a worker
    evaluates sees the same corrupted test images, so a study generates them once per
    worker process (least recently used dropped first)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.items = limit, OrderedDict[Any, np.ndarray]()

    def get(self, key: Any) -> np.ndarray | None:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        return None

    def put(self, key: Any, value: np.ndarray) -> None:
        value.setflags(write=False)
        self.items[key] = value
        while sum(v.nbytes for v in self.items.values()) > self.limit and len(self.items) > 1:
            self.items.popitem(last=False)


_CACHE = _Cache(1 << 30)


def corruption_accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                        *, names: Sequence[str] = tuple(CORRUPTIONS),
                        severities: Sequence[int] = SEVERITIES, seed: int = 0,
                        batch: int = 250, device: torch.device | str = "cpu",
                        progress: Callable[[float, str], None] | None = None,
                        should_stop: Callable[[], bool] | None = None,
                        source: Callable[[str, int], torch.Tensor] | None = None
                        ) -> dict[str, Any]:
    """Accuracy of ``model`` on every chosen corruption × severity of ``images``.

    ``source`` (corruption, severity) → the corrupted ``images`` from elsewhere (the
    published CIFAR-10-C files, :mod:`ml.data.cifar_c`) instead of generating them here.

    Returns:
        ``names``, ``severities``, ``accuracy`` (corruption → accuracy per severity),
        ``mean_accuracy`` (over the benchmark corruptions chosen and every severity; over
        all chosen when none of the 15 is), ``clean_accuracy`` (the same images), ``n``,
        ``seed``.
    """
    check_choice(names, severities)
    device = torch.device(device)
    model = model.eval()

    @torch.no_grad()
    def accuracy(x: torch.Tensor) -> float:
        hits = sum(int((model(x[i:i + batch].to(device)).argmax(1).cpu()
                        == labels[i:i + batch]).sum()) for i in range(0, len(x), batch))
        return hits / len(x)

    out: dict[str, list[float]] = {}
    total, done = len(names) * len(severities), 0
    for name in names:
        out[name] = []
        for sev in severities:
            if should_stop is not None and should_stop():
                from ml.recorder import Cancelled

                raise Cancelled(f"stopped during the corruption {name} ({sev})")
            made = corrupt(images, name, sev, seed=seed) if source is None else source(name, sev)
            if made.shape != images.shape:
                raise ValueError(f"corruption {name} ({sev}): {tuple(made.shape)} images for "
                                 f"{tuple(images.shape)} test images")
            out[name].append(accuracy(made))
            done += 1
            if progress is not None:
                progress(done / total, f"corruption {CORRUPTIONS[name].label}, severity {sev}")
        log.info("corruption %s: accuracy %s at severities %s (%d images)",
                 CORRUPTIONS[name].label, " ".join(f"{a:.3f}" for a in out[name]),
                 " ".join(map(str, severities)), len(images))
    bench = [n for n in names if n in BENCHMARK] or list(names)
    return {"names": list(names), "severities": list(severities), "accuracy": out,
            "mean_accuracy": float(np.mean([out[n] for n in bench])),
            "clean_accuracy": accuracy(images), "n": len(images),
            "seed": seed if source is None else None,
            "source": "generated" if source is None else "published"}
