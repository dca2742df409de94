"""Refusals shared by the evaluations: bad images, empty sample sets, useless models."""

from __future__ import annotations

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
