"""A small fully convolutional classifier for quick CPU runs and the offline demo."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ml.models._taps import run_taps


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Three conv stages (width, 2·width, 4·width; strides 1, 2, 2), global pool, linear.

    Fully convolutional before the pool, so any input size ≥ 4×4 works.
    """

    def __init__(self, *, num_classes: int, width: int = 16, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(in_channels, width, 1),
            _block(width, 2 * width, 2),
            _block(2 * width, 4 * width, 2),
        )
        self.head = nn.Linear(4 * width, num_classes)
        self.num_features = 4 * width
        self.feature_info: list[dict[str, Any]] = [
            {"num_chs": c, "reduction": r, "module": f"features.{i}", "layer": i + 1}
            for i, (c, r) in enumerate([(width, 1), (2 * width, 2), (4 * width, 4)])
        ]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 4w, H/4, W/4)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self, x: torch.Tensor, indices: Sequence[int] | None = None, *,
        intermediates_only: bool = False, stop_early: bool = False,
    ) -> Any:
        """Each conv block's output as a tap (see :func:`ml.models._taps.run_taps`)."""
        return run_taps(list(self.features), x, indices, intermediates_only, stop_early)
