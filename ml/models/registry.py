"""Backbone registry: requests carry a name, an unknown name lists the known ones."""

from __future__ import annotations

from collections.abc import Callable

from ml.models._taps import TappedBackbone
from ml.models.resnet import resnet18, resnet34
from ml.models.small_cnn import SmallCNN

BACKBONES: dict[str, Callable[..., TappedBackbone]] = {
    "small_cnn": SmallCNN,
    "resnet18": resnet18,
    "resnet34": resnet34,
}


def build_backbone(name: str, *, num_classes: int, width: int,
                   in_channels: int = 1) -> TappedBackbone:
    """Instantiate a registered backbone."""
    try:
        factory = BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)}") from None
    return factory(num_classes=num_classes, width=width, in_channels=in_channels)
