"""What every training run shares: batched evaluation and self-describing checkpoints."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import Callable
from typing import IO, Any, Literal

import torch
import torch.nn.functional as F

from ml.models import TappedBackbone, build_backbone


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


def load_model(source: str | bytes | IO[bytes] | dict[str, Any], *,
               pathway: Literal["task", "stimulus"] = "task",
               ) -> tuple[TappedBackbone, dict[str, Any]]:
    """Rebuild a network from a neuroreg checkpoint (``model.pt``/``checkpoint.pt``): a
    path, its bytes, a binary file, or the dict ``torch.load`` gave.

    ``pathway="stimulus"`` gives the network as the neural stimuli pass through it: for
    ``stimulus_norm: separate`` its BatchNorm layers hold the stimulus pathway's own
    statistics (``stimulus_bn``, :mod:`ml.train.pathway`); otherwise it is the same
    network. Use it for passes over stimuli only, never for classification.

    Returns:
        The backbone in eval mode on the CPU, and the config it was trained with.

    Raises:
        ValueError: when ``source`` is not a neuroreg checkpoint.
    """
    if isinstance(source, dict):
        ckpt = source
    else:
        raw = io.BytesIO(source) if isinstance(source, bytes) else source
        ckpt = torch.load(raw, map_location="cpu", weights_only=True)
    if not (isinstance(ckpt, dict) and "config" in ckpt and "state_dict" in ckpt):
        raise ValueError("checkpoint: not a neuroreg checkpoint (no config and state_dict)")
    cfg, state = ckpt["config"], ckpt["state_dict"]
    model = build_backbone(cfg["backbone"], num_classes=int(state["head.weight"].shape[0]),
                           width=cfg["width"])
    model.load_state_dict(state)
    if pathway == "stimulus" and cfg.get("stimulus_norm") == "separate" and ckpt.get(
            "stimulus_bn"):  # a checkpoint written without them has one pathway only
        model.load_state_dict(ckpt["stimulus_bn"], strict=False)
    return model.eval(), cfg
