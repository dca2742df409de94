"""Per-scan modulator (Walker et al. 2019): behavioural state → per-neuron gain.

Running and arousal (pupil size) scale visual responses multiplicatively in mouse V1;
the modulator maps them through a small MLP to one positive gain per neuron.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Modulator(nn.Module):
    """MLP from (running_speed, pupil_size) to a positive gain per neuron, ``elu(z) + 1``.

    Args:
        n_neurons: A.
        hidden: width of the hidden layer.
        gamma: weight of the L2 penalty on the MLP's weights.
    """

    def __init__(self, n_neurons: int, *, hidden: int = 8, gamma: float = 0.0) -> None:
        super().__init__()
        self.gamma = gamma
        self.hidden = nn.Linear(2, hidden)
        self.out = nn.Linear(hidden, n_neurons)
        with torch.no_grad():  # start at gain ≈ 1: the image alone explains the response
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """Args: state (B, 2) standardized (running_speed, pupil_size). Returns: (B, A) > 0."""
        return F.elu(self.out(F.elu(self.hidden(state)))) + 1

    def regularizer(self) -> torch.Tensor:
        """γ · (Σ w² of the hidden layer + mean over neurons of Σ w² of their output row)."""
        per_neuron = self.out.weight.pow(2).sum(dim=1).mean()  # independent of A
        return self.gamma * (self.hidden.weight.pow(2).sum() + per_neuron)
