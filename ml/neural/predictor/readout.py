"""Per-neuron linear readouts from the core's feature map (one readout per scan).

``gaussian`` (Lurz et al. 2021, neuralpredictors ``FullGaussian2d``): each neuron reads
the feature vector at one learned position, sampled around it while training.
``factorized`` (Klindt et al. 2017): each neuron has a spatial mask and a feature vector.
Both take an optional per-trial shift from the shifter (eye position moves the image on
the retina, so it moves every receptive field alike). Shifts are in grid units,
(x, y) order like ``F.grid_sample``: (-1, -1) is the top-left corner, (1, 1) bottom-right.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

ReadoutName = Literal["gaussian", "factorized"]
READOUTS: tuple[str, ...] = ("gaussian", "factorized")


def _initial_bias(mean_response: torch.Tensor | None, n_neurons: int) -> torch.Tensor:
    """The pre-nonlinearity value whose ``elu(x) + 1`` is each neuron's mean response."""
    if mean_response is None:
        return torch.zeros(n_neurons)
    m = mean_response.float().clamp_min(1e-3)
    return torch.where(m > 1, m - 1, m.log())


class GaussianReadout(nn.Module):
    """Reads each neuron's feature vector at a learned position.

    Training samples each trial's position from N(μ, σ²) so the gradient explores the
    neighbourhood (and σ shrinks where that hurts); evaluation reads at μ.

    Args:
        in_channels: channels C of the core's output.
        n_neurons: A.
        gamma: weight of the L1 penalty on the feature weights.
        init_mu_range: μ starts uniform in [-init_mu_range, init_mu_range]².
        init_sigma: σ at the start.
        mean_response: (A,) to start the bias at each neuron's mean.
    """

    def __init__(
        self,
        in_channels: int,
        n_neurons: int,
        *,
        gamma: float = 0.0,
        init_mu_range: float = 0.5,
        init_sigma: float = 0.2,
        mean_response: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.gamma = gamma
        self.mu = nn.Parameter(torch.empty(n_neurons, 2).uniform_(-init_mu_range, init_mu_range))
        self.sigma = nn.Parameter(torch.full((n_neurons,), init_sigma))
        self.features = nn.Parameter(torch.full((n_neurons, in_channels), 1.0 / in_channels))
        self.bias = nn.Parameter(_initial_bias(mean_response, n_neurons))

    def extra_repr(self) -> str:
        return f"neurons={self.mu.shape[0]}, gamma={self.gamma}"

    def forward(self, x: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        """Args: x (B, C, H, W) features; shift (B, 2) or None. Returns: (B, A)."""
        b = x.shape[0]
        grid = self.mu.expand(b, -1, -1)  # (B, A, 2)
        if self.training:
            noise = torch.randn_like(grid) * self.sigma.abs()[None, :, None]
            grid = grid + noise
        if shift is not None:
            grid = grid + shift[:, None, :]
        grid = grid.clamp(-1, 1)
        sampled = F.grid_sample(x, grid[:, :, None, :], align_corners=True)  # (B, C, A, 1)
        # broadcast multiply-and-sum: a batched matmul over A tiny (C × 1) products is slower
        return (sampled[..., 0] * self.features.t()).sum(dim=1) + self.bias  # (B, A)

    def regularizer(self) -> torch.Tensor:
        """γ · mean over neurons of ‖features‖₁ (per neuron, so it matches a mean loss)."""
        return self.gamma * self.features.abs().sum(dim=1).mean()


class FactorizedReadout(nn.Module):
    """Each neuron: a spatial mask (h × w) times a feature vector (C).

    Args:
        in_shape: (C, H, W) of the core's output.
        n_neurons: A.
        gamma: weight of the L1 penalty on masks and feature weights.
        pool: average-pool the features by this factor first; the cost is
            B·A·C·H·W / pool², which dominates the model at thousands of neurons.
        mean_response: (A,) to start the bias at each neuron's mean.
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        n_neurons: int,
        *,
        gamma: float = 0.0,
        pool: int = 1,
        mean_response: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        self.gamma = gamma
        self.pool = pool
        h, w = h // pool, w // pool
        self.spatial = nn.Parameter(torch.randn(n_neurons, h, w) / math.sqrt(h * w))
        self.features = nn.Parameter(torch.randn(n_neurons, c) / math.sqrt(c))
        self.bias = nn.Parameter(_initial_bias(mean_response, n_neurons))

    def extra_repr(self) -> str:
        return f"neurons={self.spatial.shape[0]}, pool={self.pool}, gamma={self.gamma}"

    def forward(self, x: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        """Args: x (B, C, H, W) features; shift (B, 2) or None. Returns: (B, A)."""
        if shift is not None:  # translate the map so a mask at p reads the map at p + shift
            eye = torch.eye(2, dtype=x.dtype, device=x.device).expand(x.shape[0], -1, -1)
            theta = torch.cat([eye, shift[:, :, None]], dim=2)  # (B, 2, 3)
            grid = F.affine_grid(theta, list(x.shape), align_corners=True)  # (B, H, W, 2)
            x = F.grid_sample(x, grid, align_corners=True)  # (B, C, H, W)
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool)  # (B, C, h, w)
        masked = torch.einsum("bchw,ahw->bac", x, self.spatial)  # (B, A, C)
        return (masked * self.features).sum(dim=2) + self.bias

    def regularizer(self) -> torch.Tensor:
        """γ · mean over neurons of (‖mask‖₁ + ‖features‖₁)."""
        per_neuron = self.spatial.abs().sum(dim=(1, 2)) + self.features.abs().sum(dim=1)
        return self.gamma * per_neuron.mean()


def build_readout(
    name: str,
    in_shape: tuple[int, int, int],
    n_neurons: int,
    *,
    gamma: float,
    pool: int = 1,
    mean_response: torch.Tensor | None = None,
) -> GaussianReadout | FactorizedReadout:
    """The readout registered as ``name``.

    Args:
        name: one of :data:`READOUTS`.
        in_shape: (C, H, W) of the core's output.
        n_neurons: number of neurons A of the scan.
        gamma: L1 weight of the readout's regularizer.
        pool: pooling factor (factorized readout only).
        mean_response: (A,) initial mean response per neuron.

    Returns:
        The readout module.
    """
    if name == "gaussian":
        return GaussianReadout(in_shape[0], n_neurons, gamma=gamma, mean_response=mean_response)
    if name == "factorized":
        return FactorizedReadout(
            in_shape, n_neurons, gamma=gamma, pool=pool, mean_response=mean_response
        )
    raise ValueError(f"unknown readout {name!r}; known: {list(READOUTS)}")
