"""Backbones by name, all with the same taps (``feature_info``, ``forward_intermediates``)."""

from ml.models._taps import TappedBackbone, resolve_taps
from ml.models.registry import BACKBONES, build_backbone

__all__ = ["BACKBONES", "TappedBackbone", "build_backbone", "resolve_taps"]
