"""The tap interface every backbone shares (timm's ``forward_intermediates``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


def resolve_taps(indices: Sequence[int] | None, n: int) -> list[int]:
    """Tap indices into a backbone's ``feature_info``; negative ones count from the end.

    Raises:
        ValueError: naming the tap that is out of range and the valid range.
    """
    if indices is None:
        return list(range(n))
    resolved = []
    for i in indices:
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise ValueError(f"taps: {i} is out of range for {n} taps (0..{n - 1})")
        resolved.append(j)
    return resolved


class TappedBackbone(nn.Module):
    """The skeleton every backbone shares: a chain of parts whose outputs are the taps,
    then global average pooling and a linear head.

    Subclasses set ``head``, ``feature_info`` (one entry per part) and implement
    :meth:`tap_parts`; forward, features, head and taps follow from them.
    """

    head: nn.Linear
    feature_info: list[dict[str, Any]]

    def tap_parts(self) -> list[nn.Module]:
        """The modules run in order; part i's output is tap i."""
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → the last part's feature map."""
        for part in self.tap_parts():
            x = part(x)
        return x

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features.mean(dim=(2, 3)))  # global average pool → logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self, x: torch.Tensor, indices: Sequence[int] | None = None, *,
        intermediates_only: bool = False, stop_early: bool = False,
    ) -> Any:
        """The tapped feature maps (and the final features), in one pass.

        Args:
            x: (B, C, H, W) images.
            indices: taps into ``feature_info``; default all; negative indices count from
                the end, as in timm.
            intermediates_only: return only the list of tapped maps.
            stop_early: stop after the last requested tap (only with
                ``intermediates_only``; the final features are not computed then).

        Returns:
            ``(final_features, [maps])`` or ``[maps]``, maps in ``indices`` order.
        """
        parts = self.tap_parts()
        wanted = resolve_taps(indices, len(parts))
        last = max(wanted) if (stop_early and intermediates_only and wanted) else len(parts) - 1
        outs: list[torch.Tensor] = []
        h = x
        for part in parts[: last + 1]:
            h = part(h)
            outs.append(h)
        maps = [outs[i] for i in wanted]
        return maps if intermediates_only else (h, maps)
