"""The tap interface every backbone shares (timm's ``forward_intermediates``)."""

from __future__ import annotations

from collections.abc import Sequence

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


def run_taps(
    parts: Sequence[nn.Module], x: torch.Tensor, indices: Sequence[int] | None,
    intermediates_only: bool, stop_early: bool,
) -> torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
    """Run ``parts`` in order, keeping the output of part i as tap i.

    Returns:
        ``(final_features, [maps])`` or, with ``intermediates_only``, ``[maps]``.
    """
    wanted = resolve_taps(indices, len(parts))
    last = max(wanted) if (stop_early and intermediates_only and wanted) else len(parts) - 1
    outs: list[torch.Tensor] = []
    h = x
    for part in parts[: last + 1]:
        h = part(h)
        outs.append(h)
    maps = [outs[i] for i in wanted]
    return maps if intermediates_only else (h, maps)
