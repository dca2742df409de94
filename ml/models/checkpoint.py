"""Self-describing checkpoints (``model.pt``/``checkpoint.pt``): weights with the config
that built them, so a file rebuilds its own network. Below :mod:`ml.train` and
:mod:`ml.regularize`, which both read them (:mod:`ml.train.classifier` adds the config
object on top)."""

from __future__ import annotations

import dataclasses
import io
from typing import IO, Any, Literal

import torch

from ml.models._taps import TappedBackbone
from ml.models.registry import build_backbone


def checkpoint_bytes(model: torch.nn.Module, config: Any, **extra: Any) -> bytes:
    """Serialize weights with the full config, so a checkpoint rebuilds its own model."""
    buf = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"config": dataclasses.asdict(config), "state_dict": state, **extra}, buf)
    return buf.getvalue()


def read_checkpoint(source: str | bytes | IO[bytes]) -> dict[str, Any]:
    """A checkpoint's dict from a path, its bytes or a binary file: tensors, numbers,
    strings and containers only (``weights_only``), so a stored file is data, never code."""
    raw = io.BytesIO(source) if isinstance(source, bytes) else source
    ckpt: dict[str, Any] = torch.load(raw, map_location="cpu", weights_only=True)
    return ckpt


def stimulus_stats_updated(state: dict[str, Any] | None) -> bool:
    """Whether a checkpoint's ``stimulus_bn`` statistics were ever updated. A model that
    never passed stimuli (None, or α = 0) stores them as they started (mean 0, variance 1,
    no batch tracked): they describe nothing, and its stimuli pass through the network as
    everything else does (the classification pathway's statistics)."""
    if not state:
        return False
    counts = [v for k, v in state.items() if k.endswith("num_batches_tracked")]
    return not counts or any(int(v) > 0 for v in counts)


def load_network(source: str | bytes | IO[bytes] | dict[str, Any], *,
               pathway: Literal["task", "stimulus"] = "task",
               ) -> tuple[TappedBackbone, dict[str, Any]]:
    """Rebuild a network from a neuroreg checkpoint (``model.pt``/``checkpoint.pt``): a
    path, its bytes, a binary file, or the dict ``torch.load`` gave.

    ``pathway="stimulus"`` gives the network as the neural stimuli pass through it: for
    ``stimulus_norm: separate`` its BatchNorm layers hold the stimulus pathway's own
    statistics (``stimulus_bn``, :mod:`ml.train.pathway`) when training updated them
    (:func:`stimulus_stats_updated`; a None model's never were); otherwise it is the same
    network. Use it for passes over stimuli only, never for classification.

    Returns:
        The backbone in eval mode on the CPU, and the config dict it was saved with
        (:func:`ml.train.classifier.load_model` gives the config object).

    Raises:
        ValueError: when ``source`` is not a neuroreg checkpoint.
    """
    ckpt = source if isinstance(source, dict) else read_checkpoint(source)
    if not (isinstance(ckpt, dict) and "config" in ckpt and "state_dict" in ckpt):
        raise ValueError("checkpoint: not a neuroreg checkpoint (no config and state_dict)")
    cfg, state = ckpt["config"], ckpt["state_dict"]
    model = build_backbone(cfg["backbone"], num_classes=int(state["head.weight"].shape[0]),
                           width=cfg["width"])
    model.load_state_dict(state)
    if pathway == "stimulus" and cfg.get("stimulus_norm") == "separate" and \
            stimulus_stats_updated(ckpt.get("stimulus_bn")):  # else: one pathway only
        model.load_state_dict(ckpt["stimulus_bn"], strict=False)
    return model.eval(), cfg
