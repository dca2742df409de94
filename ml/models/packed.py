"""K networks of one architecture as one: a pack trains them in one batched computation.

Every ``Conv2d`` becomes a grouped convolution of K groups (member k's filters read
member k's channels only), every ``BatchNorm2d`` holds the K members' channels side by
side — its statistics are per channel, so per member, exactly as K separate layers — and
the linear head a batched matrix product. Elementwise layers, pooling and residual sums
act per channel and stay as they are. Member k's images are channels
``[k·C, (k+1)·C)`` of the input, one image of its own batch per row, so the members see
different images in different orders; the logits come out as (B, K, classes) and every
tapped map as (B, K·C, H, W) (:meth:`PackedBackbone.split`). The members' parameters
are disjoint, so the gradient of a sum of their losses is each member's own gradient.

Grouped convolutions are what ``torch.func.vmap`` turns a batched convolution into; a
pack written out this way keeps BatchNorm's running statistics, which vmap cannot update
(``bench/pack.py`` times both).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ml.models._taps import TappedBackbone


class PackedLinear(nn.Module):
    """K linear layers applied to (B, K·in) → (B, K, out)."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.k = len(layers)
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]))
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in layers])) \
            if layers[0].bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(x.shape[0], self.k, -1)
        out = torch.einsum("bki,koi->bko", h, self.weight)
        return out if self.bias is None else out + self.bias


def _packed_conv(convs: Sequence[nn.Conv2d]) -> nn.Conv2d:
    c = convs[0]
    k = len(convs)
    out = nn.Conv2d(c.in_channels * k, c.out_channels * k, c.kernel_size,  # type: ignore[arg-type]
                    stride=c.stride, padding=c.padding, dilation=c.dilation,  # type: ignore[arg-type]
                    groups=c.groups * k, bias=c.bias is not None, padding_mode=c.padding_mode,
                    device=c.weight.device, dtype=c.weight.dtype)
    with torch.no_grad():
        out.weight.copy_(torch.cat([m.weight for m in convs]))
        if out.bias is not None:
            out.bias.copy_(torch.cat([m.bias for m in convs]))  # type: ignore[misc]
    return out


def _packed_norm(norms: Sequence[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    b = norms[0]
    out = nn.BatchNorm2d(b.num_features * len(norms), eps=b.eps, momentum=b.momentum,
                         affine=b.affine, track_running_stats=b.track_running_stats,
                         device=b.weight.device if b.affine else None)
    out.load_state_dict(_cat_state([m.state_dict() for m in norms]))
    return out


def _cat_state(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Members' tensors side by side along dim 0 (a step counter, the same in all, once)."""
    return {name: states[0][name].clone() if states[0][name].dim() == 0
            else torch.cat([s[name] for s in states]) for name in states[0]}


_LEAVES = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)
_SHAPE_FREE = (nn.ReLU, nn.Identity, nn.Sequential, nn.ModuleList, nn.AdaptiveAvgPool2d,
               nn.MaxPool2d, nn.AvgPool2d)


class PackedBackbone(nn.Module):
    """K :class:`TappedBackbone` members of one architecture as one network.

    Args:
        members: the K networks (same class and shapes); their weights, statistics and
            devices are copied in, and they are left as they are.
    """

    def __init__(self, members: Sequence[TappedBackbone]) -> None:
        super().__init__()
        if len(members) < 1:
            raise ValueError("a pack needs at least one member")
        first = members[0]
        shapes = {n: p.shape for n, p in first.state_dict().items()}
        for m in members[1:]:
            if type(m) is not type(first) or {n: p.shape for n, p in
                                              m.state_dict().items()} != shapes:
                raise ValueError("every member of a pack has the first one's architecture")
        self.k = len(members)
        self.net: TappedBackbone = copy.deepcopy(first)
        mods = [dict(m.named_modules()) for m in members]
        for name, module in list(self.net.named_modules()):
            if isinstance(module, nn.Conv2d):
                new: nn.Module = _packed_conv([d[name] for d in mods])
            elif isinstance(module, nn.BatchNorm2d):
                new = _packed_norm([d[name] for d in mods])
            elif isinstance(module, nn.Linear):
                new = PackedLinear([d[name] for d in mods])
            elif any(True for _ in module.children()) or isinstance(module, _SHAPE_FREE):
                continue  # a container, or a layer that acts per channel
            else:
                raise ValueError(f"{name}: a {type(module).__name__} cannot be packed")
            parent, _, attr = name.rpartition(".")
            setattr(self.net.get_submodule(parent) if parent else self.net, attr, new)
        self.feature_info = [{**f, "num_chs": f["num_chs"] * self.k}
                             for f in first.feature_info]
        # tensors stacked on a new dim 0 (the batched head's); the rest are side by side
        self._stacked = {f"{name}.{p}" for name, m in self.net.named_modules()
                         if isinstance(m, PackedLinear) for p in ("weight", "bias")}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, K·C, H, W) → (B, K, classes)."""
        out: torch.Tensor = self.net(x)
        return out

    def forward_intermediates(self, x: torch.Tensor, indices: Sequence[int] | None = None,
                              **kw: Any) -> Any:
        return self.net.forward_intermediates(x, indices, **kw)

    def split(self, packed: torch.Tensor) -> list[torch.Tensor]:
        """A tapped map (B, K·C, …) as the members' K maps (B, C, …)."""
        return list(packed.chunk(self.k, dim=1))

    @staticmethod
    def inputs(images: Sequence[torch.Tensor]) -> torch.Tensor:
        """The members' batches (each (B, C, H, W), row i of member k's own order) as
        one packed batch (B, K·C, H, W)."""
        return torch.cat(list(images), dim=1)

    # members' state ------------------------------------------------------------------
    def part(self, name: str, packed: torch.Tensor, k: int) -> torch.Tensor:
        """Member ``k``'s part of ``packed``, the pack's tensor ``name`` (a parameter, a
        buffer, or a tensor shaped like one, such as its momentum), shaped as the
        unpacked network's."""
        if packed.dim() == 0:
            return packed.detach().clone()
        if name in self._stacked:
            return packed.detach()[k].clone()
        return packed.detach().chunk(self.k, dim=0)[k].clone()

    def join(self, name: str, parts: Sequence[torch.Tensor]) -> torch.Tensor:
        """The members' parts of tensor ``name`` as the pack's (:meth:`part` undone)."""
        if parts[0].dim() == 0:
            return parts[0].clone()
        return torch.stack(list(parts)) if name in self._stacked else torch.cat(list(parts))

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        """Member ``k``'s ``state_dict``, keyed and shaped as the unpacked network's."""
        return {name: self.part(name, t, k) for name, t in self.net.state_dict().items()}

    def load_members(self, states: Sequence[dict[str, torch.Tensor]]) -> None:
        """Every member's ``state_dict`` (as :meth:`member_state` gives them) at once."""
        if len(states) != self.k:
            raise ValueError(f"{len(states)} states for a pack of {self.k}")
        self.net.load_state_dict({name: self.join(name, [s[name] for s in states])
                                  for name in self.net.state_dict()})
