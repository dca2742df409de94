"""What every training run shares: batched evaluation and self-describing checkpoints."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F


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


def checkpoint_bytes(model: torch.nn.Module, config: Any, **extra: Any) -> bytes:
    """Serialize weights with the full config, so a checkpoint rebuilds its own model."""
    buf = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"config": dataclasses.asdict(config), "state_dict": state, **extra}, buf)
    return buf.getvalue()
