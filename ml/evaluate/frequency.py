"""Frequency robustness: what a model's decisions rest on, by spatial frequency.

Four measurements on [0, 1] images (frequencies in cycles per image, ideal radial filters:
:mod:`ml.evaluate._fourier`):

* **Filtered accuracy.** Accuracy on the low-pass (|f| ≤ c) and the high-pass (|f| > c,
  the image's mean added back) of each test image per cut-off c, clipped to [0, 1], the
  model's bounds as for every other evaluation (a zero-mean high-pass is no image the
  model was defined on; keeping the mean makes the high-pass at c = 0 the image itself,
  as the low-pass above the highest frequency is). Yin et al. 2019 (Fig. 4) filter with a
  square mask; the radius is used here, so a cut-off is one frequency in every direction.
* **Fourier sensitivity map** (Yin et al. 2019, "A Fourier Perspective on Model
  Robustness in Computer Vision", §3): the error rate when every image is perturbed by
  the real Fourier basis image of one frequency (f_y, f_x), x + r·ε·U, r = ±1 drawn per
  image and channel, then clipped to [0, 1]. ε is the perturbation's L2 norm over the
  whole image (ε/√C per channel; Yin et al.'s v per channel, 4 on CIFAR-10), so it reads
  as the minimal L2 perturbations do. A frequency and its mirror share one basis image:
  each pair is evaluated once.
* **Hybrid images** (Oliva, Torralba & Schyns 2006; the paper's authors built them by
  hand): the low-pass of an image of class a plus the high-pass of an image of class b
  at each cut-off, clipped; how often the model says a, b or another class. Both images
  are ones the model classifies correctly.
* **Perturbation spectrum**: each minimal adversarial perturbation's energy per radial
  band (fractions summing to 1), the median over samples per band and norm, beside the
  same for the clean images' contrast (each image minus its channel means: the mean
  would otherwise hold most of an image's energy).

Every draw comes from generators seeded by the caller's seed: the same images, signs and
pairs for every model given the seed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ml.evaluate._fourier import (
    band_energy,
    basis_image,
    high_pass,
    low_mask,
    low_pass,
    mirror_key,
)
from ml.evaluate.checks import check_images

log = logging.getLogger(__name__)

DEFAULT_CUTOFFS = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 23.0)
"""Cut-offs in cycles per image: 0 (the mean alone) to 23, above a 32×32 image's highest
radial frequency (16√2 ≈ 22.6): the low-pass curve runs from chance to clean accuracy and
the high-pass curve back."""
DEFAULT_EPS = 4.0
"""The basis perturbation's L2 norm: Yin et al.'s CIFAR-10 value."""

Progress = Callable[[float, str], None]


def expected_size(model: torch.nn.Module, input_size: Sequence[int] | None
                  ) -> tuple[int, int] | None:
    """The (H, W) a model takes: ``input_size`` if given, else the model's own
    ``input_size`` attribute, else None (a fully convolutional model takes any size)."""
    size = input_size if input_size is not None else getattr(model, "input_size", None)
    return None if size is None else (int(size[0]), int(size[1]))


def check_size(images: torch.Tensor, expected: tuple[int, int] | None) -> None:
    """Refuse images of another size than the model's: the frequencies in cycles per
    image would then name other frequencies than the model was trained on."""
    got = tuple(int(s) for s in images.shape[-2:])
    if expected is not None and got != expected:
        raise ValueError(f"frequency: the model takes {expected[0]}×{expected[1]} images, "
                         f"the data are {got[0]}×{got[1]}; evaluate it on data of its "
                         f"input size {expected[0]}×{expected[1]}")


def _predict(model: torch.nn.Module, x: torch.Tensor, device: torch.device | str
             ) -> torch.Tensor:
    return model(x.float().to(device)).argmax(1).cpu()


@torch.no_grad()
def filter_accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                    cutoffs: Sequence[float] = DEFAULT_CUTOFFS, batch: int = 500,
                    device: torch.device | str = "cpu") -> dict[str, Any]:
    """Accuracy on ideal low- and high-pass filtered images per cut-off.

    Args:
        model: a classifier on (B, C, H, W) images in [0, 1], in eval mode.
        images: (N, C, H, W) in [0, 1]; labels: (N,).
        cutoffs: in cycles per image, each ≥ 0.

    Returns:
        ``cutoffs``, ``lowpass`` and ``highpass`` (accuracy per cut-off), ``n``.
    """
    check_images(images, labels)
    h, w = images.shape[-2:]
    masks = [low_mask(h, w, c) for c in cutoffs]
    low = torch.zeros(len(cutoffs), dtype=torch.long)
    high = torch.zeros(len(cutoffs), dtype=torch.long)
    for i in range(0, len(images), batch):
        x, y = images[i:i + batch], labels[i:i + batch]
        spec = torch.fft.fft2(x.double())  # (b, C, H, W)
        mean = x.double().mean((2, 3), keepdim=True)
        for k, mask in enumerate(masks):
            lo = torch.fft.ifft2(spec * mask).real
            hi = x.double() - lo + mean  # the high-pass with the mean put back
            low[k] += (_predict(model, lo.clamp(0, 1), device) == y).sum()
            high[k] += (_predict(model, hi.clamp(0, 1), device) == y).sum()
    n = len(images)
    return {"cutoffs": [float(c) for c in cutoffs], "lowpass": (low.double() / n).tolist(),
            "highpass": (high.double() / n).tolist(), "n": n}


def map_frequencies(n: int, size: int) -> list[int]:
    """``size`` frequencies evenly over an axis of ``n`` pixels, from −n/2 up, in cycles
    per image (every one of them when ``size`` is ``n``)."""
    if not 1 <= size <= n:
        raise ValueError(f"frequency_map_size: {size} does not fit the image's {n} "
                         f"frequencies per axis; choose 1 to {n}")
    return [-(n // 2) + (i * n) // size for i in range(size)]


@dataclass(frozen=True)
class FourierMap:
    fy: list[int]              # (m,) vertical frequencies of the rows, cycles per image
    fx: list[int]              # (m,) horizontal frequencies of the columns
    error: list[list[float]]   # (m, m) error rate under the basis perturbation
    clean_error: float         # on the same images, unperturbed
    eps: float
    n: int
    seed: int

    def radial(self) -> dict[str, list[float]]:
        """The map's mean error per radial band (round(|f|)), over its cells."""
        fy, fx = np.meshgrid(self.fy, self.fx, indexing="ij")
        band = np.floor(np.hypot(fy, fx) + 0.5).astype(int)
        err = np.asarray(self.error)
        ks = sorted(set(band.flatten().tolist()))
        return {"bands": [float(k) for k in ks],
                "error": [float(err[band == k].mean()) for k in ks]}

    def summary(self) -> dict[str, Any]:
        return {"fy": self.fy, "fx": self.fx, "error": self.error,
                "clean_error": self.clean_error, "eps": self.eps, "n": self.n,
                "seed": self.seed, "mean_error": float(np.mean(self.error)),
                "radial": self.radial()}


@torch.no_grad()
def fourier_map(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                eps: float = DEFAULT_EPS, size: int | None = None, seed: int = 0,
                batch: int = 500, device: torch.device | str = "cpu",
                progress: Progress | None = None,
                should_stop: Callable[[], bool] | None = None) -> FourierMap:
    """Error rate under single-frequency perturbations (Yin et al. 2019, §3).

    Args:
        images: (N, C, H, W) in [0, 1]; labels: (N,).
        eps: the perturbation's L2 norm over the image (before clipping).
        size: frequencies per axis of the map (default: every one, H × W); the grid is
            even over −N/2 … N/2 − 1 (:func:`map_frequencies`).
        seed: the signs r = ±1 (per frequency, image and channel).
        batch: model inputs per forward pass; (frequency, image) pairs are packed into
            them, so small sample sets still run full batches.

    Returns:
        The map (rows f_y, columns f_x, DC near the centre) with the clean error.
    """
    check_images(images, labels)
    if not eps > 0:
        raise ValueError(f"frequency_eps: need ε > 0, got {eps}")
    n, c, h, w = images.shape
    fy = map_frequencies(h, size or h)
    fx = map_frequencies(w, size or w)
    keys = {(a, b): mirror_key(h, w, a, b) for a in fy for b in fx}
    unique = sorted(set(keys.values()))
    index = {k: i for i, k in enumerate(unique)}
    basis = torch.stack([basis_image(h, w, a, b) for a, b in unique]).float()  # (U, H, W)
    gen = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (len(unique), n, c), generator=gen).float() * 2 - 1
    scale = eps / c ** 0.5  # per channel: ε over the whole image
    wrong = torch.zeros(len(unique), dtype=torch.long)
    pairs = len(unique) * n
    step = max(batch, 1)
    for start in range(0, pairs, step):
        if should_stop is not None and should_stop():
            from ml.recorder import Cancelled

            raise Cancelled("stopped during the Fourier map")
        p = torch.arange(start, min(start + step, pairs))
        u, i = p // n, p % n  # frequency, image
        delta = scale * signs[u, i][:, :, None, None] * basis[u][:, None]  # (b, C, H, W)
        x = (images[i] + delta).clamp(0, 1)
        wrong.index_add_(0, u, (_predict(model, x, device) != labels[i]).long())
        if progress is not None:
            progress(min(start + step, pairs) / pairs, "Fourier map")
    rate = (wrong.double() / n).tolist()
    clean = float((torch.cat([_predict(model, images[j:j + step], device)
                              for j in range(0, n, step)]) != labels).double().mean())
    error = [[rate[index[keys[a, b]]] for b in fx] for a in fy]
    return FourierMap(fy, fx, error, clean, float(eps), n, seed)


def hybrid_pairs(labels: torch.Tensor, correct: torch.Tensor, k: int, seed: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``k`` pairs (a, b) of correctly classified images of different classes: a gives the
    low frequencies, b the high. Drawn with replacement from the seed."""
    pool = np.flatnonzero(correct.numpy())
    y = labels.numpy()
    if len(np.unique(y[pool])) < 2:
        raise ValueError("hybrid_pairs: the model classifies images of fewer than two "
                         "classes correctly; no pair of classes to mix")
    rng = np.random.default_rng(seed)
    a, b = rng.choice(pool, size=k), rng.choice(pool, size=k)
    same = y[a] == y[b]
    while same.any():  # redraw b where it has a's class
        b[same] = rng.choice(pool, size=int(same.sum()))
        same = y[a] == y[b]
    return a, b


def hybrid(low_source: torch.Tensor, high_source: torch.Tensor, cutoff: float
           ) -> torch.Tensor:
    """The hybrid of (N, C, H, W) images: the low-pass (|f| ≤ cutoff, with the mean) of
    ``low_source`` plus the high-pass of ``high_source``, clipped to [0, 1], float32."""
    return (low_pass(low_source, cutoff) + high_pass(high_source, cutoff)).clamp(0, 1).float()


@torch.no_grad()
def hybrid_outcomes(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                    cutoffs: Sequence[float] = DEFAULT_CUTOFFS, pairs: int = 500,
                    seed: int = 0, batch: int = 500, device: torch.device | str = "cpu"
                    ) -> dict[str, Any]:
    """What the model says of hybrid images, per cut-off.

    Returns:
        ``cutoffs``; ``low``, ``high``, ``other``: the fraction of pairs classified as the
        low-frequency image's class, the high-frequency image's, or neither (they sum to
        1 per cut-off); ``n`` pairs; ``seed``; ``pairs``: (a, b) per pair, indices into
        ``images``.
    """
    check_images(images, labels)
    pred = torch.cat([_predict(model, images[j:j + batch], device)
                      for j in range(0, len(images), batch)])
    a, b = hybrid_pairs(labels, pred == labels, pairs, seed)
    ya, yb = labels[a], labels[b]
    low = torch.zeros(len(cutoffs), dtype=torch.long)
    high = torch.zeros(len(cutoffs), dtype=torch.long)
    for s in range(0, pairs, batch):
        xa, xb = images[a[s:s + batch]], images[b[s:s + batch]]
        for k, cut in enumerate(cutoffs):
            p = _predict(model, hybrid(xa, xb, cut), device)
            low[k] += (p == ya[s:s + batch]).sum()
            high[k] += (p == yb[s:s + batch]).sum()
    lo, hi = (low.double() / pairs), (high.double() / pairs)
    return {"cutoffs": [float(c) for c in cutoffs], "low": lo.tolist(), "high": hi.tolist(),
            "other": (1 - lo - hi).clamp_min(0).tolist(), "n": pairs, "seed": seed,
            "pairs": np.stack([a, b], 1).tolist()}


def energy_fractions(images: torch.Tensor) -> np.ndarray:
    """(N, K) each image's share of its energy per radial band (rows sum to 1; NaN for
    an all-zero image)."""
    e = band_energy(images)
    total = e.sum(1, keepdim=True)
    return (e / torch.where(total > 0, total, torch.nan)).numpy()


def _centroid(frac: np.ndarray) -> np.ndarray:
    """Per row the energy-weighted mean band (cycles per image)."""
    return frac @ np.arange(frac.shape[1], dtype=np.float64)


def perturbation_spectrum(clean: torch.Tensor, adversarials: Mapping[str, np.ndarray],
                          distances: Mapping[str, np.ndarray]
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Where each minimal perturbation's energy sits in frequency, per norm.

    Args:
        clean: (N, C, H, W) the attacked images in [0, 1].
        adversarials: norm → (N, C, H, W) the minimal adversarial per sample.
        distances: norm → (N,) its distance (0: misclassified already, inf: unbroken);
            samples with a finite, positive distance count.

    Returns:
        The summary: ``bands`` (cycles per image, band k = round(|f|)), ``clean`` (the
        clean images' contrast: ``median`` and ``mean`` fraction per band, ``centroid``
        median), ``norms`` (per norm the same over its perturbations, with ``n``); and
        the per-sample fractions and centroids, for an artifact.
    """
    contrast = clean.double() - clean.double().mean((2, 3), keepdim=True)
    frac = energy_fractions(contrast)
    cen = _centroid(frac)
    out: dict[str, Any] = {"bands": [float(k) for k in range(frac.shape[1])],
                           "clean": _bands_summary(frac, cen), "norms": {}}
    detail: dict[str, Any] = {"clean": {"fractions": frac.tolist(), "centroid": cen.tolist()}}
    for norm, adv in adversarials.items():
        keep = np.flatnonzero(np.isfinite(distances[norm]) & (distances[norm] > 0))
        if not len(keep):
            out["norms"][norm] = None
            continue
        delta = torch.from_numpy(np.asarray(adv)[keep]).double() - clean[keep].double()
        f = energy_fractions(delta)
        ok = ~np.isnan(f).any(1)
        f, idx = f[ok], keep[ok]
        c = _centroid(f)
        out["norms"][norm] = _bands_summary(f, c)
        detail[norm] = {"samples": idx.tolist(), "fractions": f.tolist(), "centroid": c.tolist()}
    return out, detail


def _bands_summary(frac: np.ndarray, centroid: np.ndarray) -> dict[str, Any]:
    ok = ~np.isnan(frac).any(1)
    frac, centroid = frac[ok], centroid[ok]
    return {"n": int(len(frac)), "median": np.median(frac, 0).tolist(),
            "mean": frac.mean(0).tolist(), "centroid": float(np.median(centroid))}


def stored_perturbations(npz: bytes, test_images: torch.Tensor
                         ) -> tuple[torch.Tensor, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The minimal part's adversarials as :func:`perturbation_spectrum` takes them, from an
    evaluation's stored ``adversarials.npz`` and the test split it attacked."""
    import io

    with np.load(io.BytesIO(npz)) as data:
        ids = data["sample_ids"]
        norms = [k.removeprefix("adversarial_") for k in data.files
                 if k.startswith("adversarial_")]
        adv = {n: data[f"adversarial_{n}"] for n in norms}
        dist = {n: data[f"distance_{n}"] for n in norms}
    return test_images[torch.from_numpy(ids)], adv, dist
