"""A small fully convolutional classifier for quick CPU runs and the offline demo."""

from __future__ import annotations

import torch
from torch import nn


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        h = self.features(x)  # (B, 4w, H/4, W/4)
        return self.head(h.mean(dim=(2, 3)))
