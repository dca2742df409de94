"""The neural similarity regularizer (paper section 3, Eq. 8–10).

S_CNN between stimuli is the γ-weighted mix (Eq. 10) of per-tap centred cosine
similarities (Eq. 9); the loss pulls arctanh(S_CNN) toward arctanh(S_target) (Eq. 8).

Centering (Eq. 9's f̄ = E_i[f_i], a mean over *all* stimuli) has two estimates in a
minibatch, chosen by ``centering``:

- ``"batch"``: the mean over the stimuli of this step. Unbiased for the batch, but with a
  small batch it removes part of the signal the pairs share.
- ``"running"``: an exponential moving average of past batch means (momentum 0.1,
  detached), approaching E_i over the whole stimulus set as training proceeds; the first
  step uses its batch mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

Centering = Literal["batch", "running"]
_CLAMP = 1.0 - 1e-4  # arctanh(±0.9999) = ±4.95: finite loss and gradient at S = ±1


def centred_cosine(features: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Eq. 9: S_ij = (f_i − f̄)·(f_j − f̄) / (‖f_i − f̄‖ ‖f_j − f̄‖).

    Computed from the Gram matrix G = E Eᵀ of the centred rows E: the norms are
    √G_ii, so the (M, D) rows are never divided (forward) and their division is never
    differentiated (backward); only (M, M) values are scaled. The same quantity as
    normalizing E's rows first (within float rounding; ``tests/ml/test_joint.py``), and
    forward with backward about 2× faster over a ResNet18's taps on a CPU
    (``bench/train_overhead.py --profile``). A norm below 1e-8 counts as 1e-8, as before.

    Args:
        features: (M, D) flattened feature vectors, one row per stimulus.
        mean: (D,) the f̄ to subtract.

    Returns:
        (M, M) similarities.
    """
    e = features - mean
    g = e @ e.T
    inv = g.diagonal().clamp_min(1e-16).rsqrt()  # 1 / max(‖e_i‖, 1e-8)
    return g * inv[:, None] * inv[None, :]


def similarity_loss(s_cnn: torch.Tensor, s_target: torch.Tensor) -> torch.Tensor:
    """Eq. 8: mean of (arctanh(S_CNN) − arctanh(S_target))² over the given pairs.

    Both are clamped to ±(1 − 1e-4) first, so identical images (S = 1) give a finite value.
    """
    a = torch.atanh(s_cnn.clamp(-_CLAMP, _CLAMP))
    b = torch.atanh(s_target.clamp(-_CLAMP, _CLAMP))
    return (a - b).pow(2).mean()


class SimilarityHead(nn.Module):
    """S_CNN for a set of stimuli from a backbone's taps, with trainable γ (Eq. 10).

    Args:
        n_taps: K, the number of tapped layers; γ = softmax(logits) starts at 1/K each.
        centering: how f̄ is estimated in a minibatch (see the module docstring).
        momentum: EMA rate of the running mean.
    """

    def __init__(self, n_taps: int, *, centering: Centering = "running",
                 momentum: float = 0.1) -> None:
        super().__init__()
        if n_taps < 1:
            raise ValueError(f"taps: need at least one tapped layer, got {n_taps}")
        if centering not in ("batch", "running"):
            raise ValueError(f"centering: {centering!r} is not one of ['batch', 'running']")
        self.logits = nn.Parameter(torch.zeros(n_taps))  # Eq. 10: equal γ_k at the start
        self.centering = centering
        self.momentum = momentum
        for k in range(n_taps):  # lazily shaped buffers: saved in checkpoints, moved by .to()
            self.register_buffer(f"running_mean_{k}", None)

    def _load_from_state_dict(  # type: ignore[no-untyped-def]
        self, state_dict, prefix, *args, **kwargs
    ):
        # a fresh head has no running means yet: give them the stored shape so resume works
        for k in range(len(self.logits)):
            key = f"{prefix}running_mean_{k}"
            if key in state_dict and getattr(self, f"running_mean_{k}") is None:
                setattr(self, f"running_mean_{k}", torch.empty_like(state_dict[key]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def gamma(self) -> torch.Tensor:
        """(K,) γ_k = softmax(logits): positive, summing to one (Eq. 10)."""
        return torch.softmax(self.logits, dim=0)

    def per_tap(self, maps: Sequence[torch.Tensor],
                keep: Sequence[int] | None = None) -> list[torch.Tensor]:
        """(M, M) S_k for each tapped map (M, C, H, W) (Eq. 9).

        ``keep``: which of the head's taps ``maps`` are (positions 0..K−1, in order);
        default all K. Only those taps' running means move.
        """
        out = []
        for k, m in zip(range(len(maps)) if keep is None else keep, maps, strict=True):
            f = m.flatten(1).float()  # (M, C·H·W): f_i^(k), concatenated features
            batch_mean = f.mean(dim=0)
            if self.centering == "batch":
                mean = batch_mean
            else:
                prev = getattr(self, f"running_mean_{k}")
                if prev is None or prev.shape != batch_mean.shape:
                    prev = batch_mean.detach()
                elif self.training:
                    prev = (1 - self.momentum) * prev + self.momentum * batch_mean.detach()
                setattr(self, f"running_mean_{k}", prev)
                mean = prev
            out.append(centred_cosine(f, mean))
        return out

    def mix(self, per_tap: Sequence[torch.Tensor],
            keep: Sequence[int] | None = None) -> torch.Tensor:
        """Eq. 10 from :meth:`per_tap`'s S_k: S_CNN = Σ_k γ_k S_k, (M, M).

        ``keep`` (a subset of the taps, as in :meth:`per_tap`): the mix of those taps
        alone, γ renormalized over them (softmax of their logits: Σ_kept γ_k S_k /
        Σ_kept γ_k) — ``gamma_prune``'s S_CNN, a deviation from Eq. 10 (see
        :func:`kept_taps`).
        """
        gamma = self.gamma if keep is None else torch.softmax(self.logits[list(keep)], 0)
        return torch.einsum("k,kij->ij", gamma, torch.stack(list(per_tap)))

    def forward(self, maps: Sequence[torch.Tensor],
                keep: Sequence[int] | None = None) -> torch.Tensor:
        """Eq. 10: S_CNN = Σ_k γ_k S_k, (M, M) (over ``keep``'s taps: :meth:`mix`)."""
        return self.mix(self.per_tap(maps, keep), keep)


def kept_taps(gamma: Sequence[float], depth: Sequence[int], threshold: float) -> list[int]:
    """The taps a ``gamma_prune`` step computes: every tap no deeper than the deepest one
    whose γ is at least ``threshold`` (the tap of the largest γ always counts).

    Args:
        gamma: γ_k per tap of the head (its softmax).
        depth: where each tap sits in the network (its index into ``feature_info``).
        threshold: the γ a tap needs to keep the forward pass going down to it.

    Returns:
        Positions into ``gamma``, ascending.
    """
    bar = min(threshold, max(gamma))
    deepest = max(d for g, d in zip(gamma, depth, strict=True) if g >= bar)
    return [k for k, d in enumerate(depth) if d <= deepest]


def all_pairs(m: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs i < j of M stimuli: M(M−1)/2 pairs from one forward pass."""
    i, j = torch.triu_indices(m, m, offset=1, device=device)
    return i, j


def paper_pairs(m: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's scheme: M stimuli as M/2 independent pairs (0,1), (2,3), …"""
    if m < 2:
        raise ValueError(f"pairs: need at least 2 stimuli, got {m}")
    idx = torch.arange(m - m % 2, device=device)
    return idx[0::2], idx[1::2]
