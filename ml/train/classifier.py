"""What every training run shares: batched evaluation and self-describing checkpoints."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import IO, Any, Literal

import torch
import torch.nn.functional as F

from ml.models import TappedBackbone
from ml.models.checkpoint import checkpoint_bytes, load_network

__all__ = ["checkpoint_bytes", "evaluate", "load_model", "load_network"]


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int,
    autocast: Callable[[], Any] = contextlib.nullcontext,
) -> tuple[float, float]:
    """Accuracy and mean cross-entropy over ``images`` in batches, in eval mode."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(images), batch):
        with autocast():
            logits = model(images[i : i + batch]).float()
        loss_sum += F.cross_entropy(logits, labels[i : i + batch], reduction="sum").item()
        correct += (logits.argmax(1) == labels[i : i + batch]).sum().item()
    model.train()
    return correct / len(images), loss_sum / len(images)


def load_model(source: str | bytes | IO[bytes] | dict[str, Any], *,
               pathway: Literal["task", "stimulus"] = "task",
               ) -> tuple[TappedBackbone, Any]:
    """Rebuild a train run's network from its checkpoint (:func:`load_network`), with the
    :class:`~ml.train.joint.TrainConfig` it was trained with — every field, the defaults
    of its time filled in by the config class, never guessed by readers.

    A checkpoint written before ``stimulus_norm`` existed trained with ``shared`` (as
    migration 0004 records for its run); fields a later version dropped are left out.
    """
    from ml.train.joint import TrainConfig

    model, raw = load_network(source, pathway=pathway)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in raw.items() if k in known}
    values.setdefault("stimulus_norm", "shared")
    return model, TrainConfig(**values)
