"""ResNet18/34 for 1-channel 32×32 images (CIFAR-style: 3×3 stem, no max-pool), with
timm-like taps: ``feature_info`` and ``forward_intermediates``.

Taps are the stem and each stage's output. In ResNet18 these are conv layers 1, 5, 9, 13
and 17 counted in order (the paper's "layer 1, 5, 9, 13, 17"; 1×1 shortcut convs are not
counted); ResNet34 taps the same places (layers 1, 7, 15, 27, 33). Everything before the
pool is convolutional, so the 36×64 neural stimuli pass through the same weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ml.models._taps import TappedBackbone


class BasicBlock(nn.Module):
    """Two 3×3 convs with a residual connection (He et al. 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + self.shortcut(x))


class ResNet(TappedBackbone):
    """A CIFAR-style ResNet of :class:`BasicBlock` stages.

    Args:
        blocks: blocks per stage, e.g. (2, 2, 2, 2) for ResNet18.
        num_classes: size of the classifier output.
        width: channels of the stem and first stage; later stages double it.
        in_channels: 1 for grayscale.
    """

    def __init__(self, blocks: Sequence[int], *, num_classes: int, width: int = 64,
                 in_channels: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        stages, c_in, layer = [], width, 1
        self.feature_info: list[dict[str, Any]] = [
            {"num_chs": width, "reduction": 1, "module": "stem", "layer": layer}
        ]
        for k, n in enumerate(blocks):
            c_out, stride = width * 2**k, 1 if k == 0 else 2
            stage = nn.Sequential(*[
                BasicBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1)
                for i in range(n)
            ])
            stages.append(stage)
            layer += 2 * n  # two counted 3×3 convs per block
            self.feature_info.append({
                "num_chs": c_out, "reduction": 2**k, "module": f"stages.{k}", "layer": layer,
            })
            c_in = c_out
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(c_in, num_classes)
        self.num_features = c_in

    def tap_parts(self) -> list[nn.Module]:
        return [self.stem, *self.stages]  # taps: stem (0) and stages 1–4


def resnet18(*, num_classes: int, width: int = 64, in_channels: int = 1) -> ResNet:
    return ResNet((2, 2, 2, 2), num_classes=num_classes, width=width, in_channels=in_channels)


def resnet34(*, num_classes: int, width: int = 64, in_channels: int = 1) -> ResNet:
    return ResNet((3, 4, 6, 3), num_classes=num_classes, width=width, in_channels=in_channels)
