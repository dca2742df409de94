"""Accuracy under additive Gaussian noise (§4.1, Fig. 4).

Noise is added to [0, 1] images and the result clipped to [0, 1]. One standard-normal draw
z per image, from the given seed, serves every σ (x + σ·z) and every model: models are
compared on identical noisy images, and the curve is smooth in σ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ml.evaluate.checks import check_images

DEFAULT_SIGMAS = (0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6)


@dataclass(frozen=True)
class NoiseCurve:
    sigmas: list[float]
    accuracy: list[float]
    n: int
    seed: int


def noise_draws(shape: Sequence[int], seed: int) -> torch.Tensor:
    """The standard-normal draws for a test set of ``shape`` (N, C, H, W): the same for a
    given seed on every machine (CPU generator)."""
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def noise_curve(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                sigmas: Sequence[float] = DEFAULT_SIGMAS, seed: int = 0, batch: int = 500,
                device: torch.device | str = "cpu") -> NoiseCurve:
    """Accuracy of ``model`` on clip(x + σ·z, 0, 1) for each σ.

    Args:
        model: a classifier taking (B, C, H, W) images in [0, 1].
        images: (N, C, H, W) float in [0, 1]; labels: (N,).
        sigmas: noise standard deviations (≥ 0), in image units.
        seed: fixes z; the same seed gives every model the same noisy images.
    """
    check_images(images, labels)
    if any(s < 0 for s in sigmas) or not sigmas:
        raise ValueError(f"noise_sigmas: need one or more σ ≥ 0, got {list(sigmas)}")
    model.eval()
    z = noise_draws(images.shape, seed)
    correct = torch.zeros(len(sigmas), dtype=torch.long)
    for i in range(0, len(images), batch):
        x = images[i:i + batch].to(device)
        y = labels[i:i + batch].to(device)
        zi = z[i:i + batch].to(device)
        for k, sigma in enumerate(sigmas):
            noisy = (x + sigma * zi).clamp_(0.0, 1.0)
            correct[k] += (model(noisy).argmax(1) == y).sum().cpu()
    acc = (correct.double() / len(images)).tolist()
    return NoiseCurve([float(s) for s in sigmas], acc, len(images), seed)
