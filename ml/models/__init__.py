"""Backbones by name."""

from ml.models.registry import BACKBONES, build_backbone

__all__ = ["BACKBONES", "build_backbone"]
