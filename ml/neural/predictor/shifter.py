"""Per-scan shifter (Walker et al. 2019): eye position → shift of every receptive field.

When the eye moves, the image moves on the retina, so all receptive fields of a scan
move together; a small MLP learns that map from the (standardized) pupil centre.
"""

from __future__ import annotations

import torch
from torch import nn


class Shifter(nn.Module):
    """MLP from pupil (x, y) to a (B, 2) shift in grid units, bounded by tanh to [-1, 1].

    Args:
        hidden: width of the hidden layer.
        gamma: weight of the L2 penalty on the MLP's weights.
    """

    def __init__(self, *, hidden: int = 8, gamma: float = 0.0) -> None:
        super().__init__()
        self.gamma = gamma
        self.hidden = nn.Linear(2, hidden)
        self.out = nn.Linear(hidden, 2)
        with torch.no_grad():  # start near "no shift" so the readouts learn positions first
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"

    def forward(self, pupil: torch.Tensor) -> torch.Tensor:
        """Args: pupil (B, 2) standardized (pupil_x, pupil_y). Returns: shift (B, 2)."""
        return torch.tanh(self.out(torch.tanh(self.hidden(pupil))))

    def regularizer(self) -> torch.Tensor:
        """γ · Σ w² over the linear weights (biases are free)."""
        return self.gamma * (self.hidden.weight.pow(2).sum() + self.out.weight.pow(2).sum())
