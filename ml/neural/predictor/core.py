"""The shared convolutional core (Sinz et al. 2018; neuralpredictors ``Stacked2dCore``).

Three conv → batchnorm → ELU layers with dense skips: every layer sees the outputs of
all the layers before it, so the last layer can pass simple (layer 1) features on next
to more complex ones; the output stacks the last ``readout_layers`` layers. The core is
shared by all scans; only readouts, shifters and modulators are per scan.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

# 3×3 discrete Laplacian: large where a kernel is rough, zero where it is linear.
_LAPLACE = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


class Core(nn.Module):
    """Fully convolutional feature extractor on (B, 1, H, W) images in [0, 1].

    Args:
        hidden_channels: channels of each layer.
        input_kernel: kernel size of the first (plain) convolution.
        hidden_kernel: kernel size of the later convolutions. (Depthwise-separable ones
            would be cheaper in FLOPs, but their backward pass is slow on CPU.)
        layers: number of conv layers.
        readout_layers: how many of the last layers make up the output (neuralpredictors'
            ``stack``); each channel costs the readout as much as the whole core does.
        stride: stride of the first layer; 2 computes every later layer at half resolution
            (a quarter of the cost); mouse V1 is tuned to low spatial frequencies, which a
            half-resolution map still represents.
        gamma_input: weight of the Laplace smoothness penalty on the first-layer kernels.
    """

    def __init__(
        self,
        *,
        hidden_channels: int = 16,
        input_kernel: int = 9,
        hidden_kernel: int = 3,
        layers: int = 3,
        readout_layers: int = 1,
        stride: int = 2,
        gamma_input: float = 0.0,
    ) -> None:
        super().__init__()
        if input_kernel % 2 == 0 or hidden_kernel % 2 == 0:
            raise ValueError("kernel sizes must be odd so the output stays centred")
        if not 1 <= readout_layers <= layers:
            raise ValueError(f"readout_layers must be in [1, {layers}], got {readout_layers}")
        self.readout_layers = readout_layers
        self.hidden_channels = hidden_channels
        self.input_kernel = input_kernel
        self.stride = stride
        self.gamma_input = gamma_input
        self.layers = nn.ModuleList()
        for i in range(layers):
            conv: nn.Module
            if i == 0:
                conv = nn.Conv2d(
                    1,
                    hidden_channels,
                    input_kernel,
                    stride=stride,
                    padding=input_kernel // 2,
                    bias=False,
                )
            else:  # dense skip: the input is every earlier layer's output
                conv = nn.Conv2d(
                    i * hidden_channels,
                    hidden_channels,
                    hidden_kernel,
                    padding=hidden_kernel // 2,
                    bias=False,
                )
            self.layers.append(nn.Sequential(conv, nn.BatchNorm2d(hidden_channels), nn.ELU()))
        self.register_buffer("_laplace", _LAPLACE[None, None], persistent=False)

    @property
    def first_conv(self) -> nn.Conv2d:
        return cast(nn.Conv2d, cast(nn.Sequential, self.layers[0])[0])

    @property
    def out_channels(self) -> int:
        return self.hidden_channels * self.readout_layers

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(C, H', W') of the features for an (H, W) image."""
        pad, k, s = self.input_kernel // 2, self.input_kernel, self.stride
        return (
            self.out_channels,
            (height + 2 * pad - k) // s + 1,
            (width + 2 * pad - k) // s + 1,
        )

    def extra_repr(self) -> str:
        return (
            f"stride={self.stride}, readout_layers={self.readout_layers}, "
            f"gamma_input={self.gamma_input}"
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Args: images (B, 1, H, W). Returns: features (B, out_channels, H', W')."""
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"images must be (B, 1, H, W), got {tuple(images.shape)}")
        x = images - 0.5  # centre [0, 1] pixels; batchnorm takes care of the rest
        outputs: list[torch.Tensor] = []
        for layer in self.layers:
            x = layer(torch.cat(outputs, dim=1) if outputs else x)  # (B, C, H', W')
            outputs.append(x)
        return torch.cat(outputs[-self.readout_layers :], dim=1)  # (B, C_out, H', W')

    def regularizer(self) -> torch.Tensor:
        """Laplace penalty on the first-layer kernels, relative to their norm.

        Batchnorm follows the convolution, so the kernels' scale is free: the penalty is
        ‖Δw‖² / ‖w‖² per kernel (neuralpredictors' ``LaplaceL2norm``), averaged.
        """
        weight = self.first_conv.weight  # (C, 1, k, k)
        rough = F.conv2d(weight, cast(torch.Tensor, self._laplace), padding=1)  # (C, 1, k, k)
        ratio = rough.pow(2).sum(dim=(1, 2, 3)) / weight.pow(2).sum(dim=(1, 2, 3)).clamp_min(1e-12)
        return self.gamma_input * ratio.mean()
