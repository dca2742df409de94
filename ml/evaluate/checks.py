"""Refusals shared by the evaluations: bad images, empty sample sets, useless models."""

from __future__ import annotations

from collections.abc import Callable

import torch


def check_images(images: torch.Tensor, labels: torch.Tensor) -> None:
    """Images (N, C, H, W) in the model bounds [0, 1] with N labels, N ≥ 1."""
    if images.ndim != 4:
        raise ValueError(f"images: expected (N, C, H, W), got shape {tuple(images.shape)}")
    if len(images) == 0:
        raise ValueError("samples: the sample set is empty")
    if labels.shape != (len(images),):
        raise ValueError(f"labels: expected shape ({len(images)},), got {tuple(labels.shape)}")
    if not torch.isfinite(images).all():
        raise ValueError("images: contain NaN or infinite values")
    lo, hi = float(images.min()), float(images.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"images: values span [{lo:.4g}, {hi:.4g}], outside the model "
                         "bounds [0, 1]")


def check_model(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """Clean accuracy on the samples; refuse a constant or untrained model.

    A model that predicts one class for every sample, or whose accuracy is not above
    twice chance, has no decision boundary worth measuring: its "perturbations" would
    say nothing about robustness.
    """
    acc = float((predictions == labels).double().mean())
    if len(labels) > 1 and torch.unique(predictions).numel() == 1 and num_classes > 1:
        raise ValueError(f"model: predicts class {int(predictions[0])} for every sample; "
                         "evaluate a trained model")
    if acc <= 2.0 / num_classes:
        raise ValueError(f"model: clean accuracy {acc:.3f} on the samples is not above "
                         f"twice chance ({2 / num_classes:.3f}); evaluate a trained model")
    return acc


# An adversarial is kept only if its wrong class leads the true one by this much of the
# largest logit. A point an attack leaves on the boundary (B&B, DDN and the ε bisection all
# end there) can be misclassified in the batch that found it and classified right in
# another: a different batch size or device runs other kernels, whose float32 sums differ
# in the last bits (seen re-classifying a stored L2 adversarial on CI's CPU and B&B's
# starting points on an H200). Margins of that size make a stored adversarial one in any
# layout.
MARGIN = 1e-4
_PUSHES = (1e-4, 1e-3, 1e-2)  # how far past itself a boundary point is moved, in turn


def logit_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Best wrong logit minus the true one, over the largest |logit| (≥ 1): > 0 is wrong."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    wrong = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return (wrong - true) / logits.abs().amax(1).clamp_min(1.0)


@torch.no_grad()
def settle(model: torch.nn.Module, adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
           within: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which of ``adv`` (clamped to [0, 1]) are adversarial with a margin, after moving each
    one that is wrong by less than ``MARGIN`` a little further from x along its own
    perturbation (x + (1 + δ)(adv − x), δ = 1e-4, 1e-3, 1e-2 in turn, the first enough).

    ``within(moved, x)`` (per sample, bool) refuses a move that leaves an attack's budget.
    Returns the images, which are adversarial, and how many were moved.
    """
    adv = adv.clamp(0.0, 1.0)
    margin = logit_margin(model(adv), y)
    ok = margin > MARGIN
    near = (margin > 0) & ~ok
    moved = torch.zeros_like(ok)
    for delta in _PUSHES:
        if not near.any():
            break
        i = torch.nonzero(near).flatten()
        cand = (x[i] + (1 + delta) * (adv[i] - x[i])).clamp(0.0, 1.0)
        good = logit_margin(model(cand), y[i]) > MARGIN
        if within is not None:
            good &= within(cand, x[i]).to(good.device)
        adv[i[good]] = cand[good]
        ok[i[good]] = True
        moved[i[good]] = True
        near[i[good]] = False
    return adv, ok, moved
