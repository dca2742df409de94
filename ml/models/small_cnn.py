"""A small fully convolutional classifier for quick CPU runs and the offline demo."""

from __future__ import annotations

from typing import Any

from torch import nn

from ml.models._taps import TappedBackbone


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SmallCNN(TappedBackbone):
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

    def tap_parts(self) -> list[nn.Module]:
        return list(self.features)  # taps: each conv block
