"""The ``cnn-features`` control: similarity of another network's layer over the stimuli.

The paper regularized toward "the feature similarity matrix of the conv3-1 layer in a
VGG19 model pretrained on ImageNet" (§4.1, 'VGG' in Fig. 4). Pretrained weights cannot
be fetched here, so the network comes from a file a user supplies:

- a torchvision VGG19 state dict (``vgg19-dcbb9e9d.pth`` or any ``torchvision.models.vgg19``
  ``state_dict()``); :class:`VGG19` has torchvision's exact module layout, so its keys
  (``features.<i>.weight``…) load directly. Layers are named ``conv<b>_<c>`` (the
  convolution's output) or ``relu<b>_<c>`` (after its ReLU), b = block 1–5.
- a neuroreg checkpoint (``model.pt`` of a train run): its backbone is rebuilt from the
  embedded config and ``layer`` is a tap index (``"0"`` … ``"4"`` for a ResNet18).

Grey stimuli are replicated to RGB and normalised with the ImageNet statistics for VGG.
S is the centred cosine similarity of the flattened layer output (Eq. 9 with the mean over
all stimuli), stored as a :class:`~ml.neural.target.SimilarityTarget` whose factor is
reduced exactly to N columns when the layer is wider than the stimulus count.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ml.models import resolve_taps
from ml.models.checkpoint import load_network
from ml.neural.target import SimilarityTarget
from ml.stored import StoredFileError, load_npz

# torchvision's configuration "E" (VGG19): channel counts, "M" = 2×2 max-pool
VGG19_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                    512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_layers() -> dict[str, int]:
    """Layer name → index into ``VGG19.features`` (``conv3_1`` → 10, ``relu3_1`` → 11)."""
    names, i, block, conv = {}, 0, 1, 1
    for v in VGG19_CFG:
        if v == "M":
            i, block, conv = i + 1, block + 1, 1
            continue
        names[f"conv{block}_{conv}"], names[f"relu{block}_{conv}"] = i, i + 1
        i, conv = i + 2, conv + 1
    return names


class VGG19(nn.Module):
    """torchvision's VGG19 layout (``features``, ``avgpool``, ``classifier``)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for v in VGG19_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(v), kernel_size=3, padding=1),
                           nn.ReLU(inplace=True)]
                channels = int(v)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


Extractor = Callable[[torch.Tensor], torch.Tensor]


def _vgg_extractor(state: dict[str, torch.Tensor], layer: str) -> Extractor:
    names = vgg19_layers()
    if layer not in names:
        raise ValueError(f"features.layer: {layer!r} is not a VGG19 layer; known: "
                         f"{sorted(names, key=names.get)}")  # type: ignore[arg-type]
    end = names[layer] + 1
    net = VGG19()
    wanted = {k: v for k, v in net.features.state_dict().items()
              if int(k.split(".")[0]) < end}
    missing = [f"features.{k}" for k in wanted if f"features.{k}" not in state]
    if missing:
        raise ValueError(f"features.weights: not a torchvision VGG19 state dict (missing "
                         f"{missing[:3]}); VGG19-BN and other variants are not supported")
    for k, v in wanted.items():
        got = state[f"features.{k}"]
        if got.shape != v.shape:
            raise ValueError(f"features.weights: features.{k} has shape {tuple(got.shape)}, "
                             f"VGG19 needs {tuple(v.shape)}")
        v.copy_(got)
    trunk = net.features[:end].eval()
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def extract(x: torch.Tensor) -> torch.Tensor:
        rgb = x.expand(-1, 3, -1, -1)  # grey → RGB
        return trunk((rgb - mean.to(x.device)) / std.to(x.device))

    extract.trunk = trunk  # type: ignore[attr-defined]
    return extract


def _neuroreg_extractor(raw: Any, layer: str) -> Extractor:
    model, _ = load_network(raw, pathway="stimulus")  # its features of the stimuli
    try:
        tap = int(layer)
    except ValueError:
        raise ValueError(f"features.layer: a neuroreg checkpoint takes a tap index "
                         f"0..{len(model.feature_info) - 1}, got {layer!r}") from None
    (tap,) = resolve_taps((tap,), len(model.feature_info))

    def extract(x: torch.Tensor) -> torch.Tensor:
        return model.forward_intermediates(x, [tap], intermediates_only=True,
                                           stop_early=True)[0]

    extract.trunk = model  # type: ignore[attr-defined]
    return extract


def load_feature_network(source: str | Path | bytes, layer: str
                         ) -> tuple[Extractor, dict[str, Any]]:
    """An image → layer-output function from a VGG19 state dict or a neuroreg checkpoint.

    Returns:
        The extractor (images (N, 1, H, W) in [0, 1] → (N, C, h, w)) and provenance.
    """
    raw = io.BytesIO(source) if isinstance(source, bytes) else source
    obj = torch.load(raw, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict):
        raise ValueError("features.weights: expected a state dict or a neuroreg checkpoint")
    if "config" in obj and "state_dict" in obj:
        return _neuroreg_extractor(obj, layer), {
            "network": f"neuroreg {obj['config'].get('backbone')}", "layer": layer}
    return _vgg_extractor(obj, layer), {"network": "vgg19 (torchvision layout)",
                                       "layer": layer}


def _batched(outputs: Callable[[torch.Tensor], Sequence[torch.Tensor]], n_out: int,
             images: np.ndarray, batch: int, device: torch.device | str
             ) -> Callable[[np.ndarray], list[np.ndarray]]:
    """``features(idx)`` → the flattened float32 NumPy arrays (len(idx), D_k) of each of
    ``outputs``' ``n_out`` tensors for stimulus indices ``idx``, in batches, no gradients."""

    @torch.no_grad()
    def features(idx: np.ndarray) -> list[np.ndarray]:
        idx = np.asarray(idx)
        parts: list[list[np.ndarray]] = [[] for _ in range(n_out)]
        for i in range(0, len(idx), batch):
            x = torch.from_numpy(np.asarray(images[idx[i:i + batch]], np.float32)).to(device)
            for k, m in enumerate(outputs(x)):
                parts[k].append(m.flatten(1).float().cpu().numpy())
        return [np.concatenate(p) if p else np.zeros((0, 0), np.float32) for p in parts]

    return features


def numpy_features(extract: Extractor, images: np.ndarray, *, batch: int = 128,
                   device: torch.device | str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    """``features(idx)`` → the flattened layer output (len(idx), D) as float32 NumPy for
    stimulus indices ``idx``, computed in batches without gradients."""
    trunk = getattr(extract, "trunk", None)
    if isinstance(trunk, nn.Module):
        trunk.to(device)
    every = _batched(lambda x: [extract(x)], 1, images, batch, device)
    return lambda idx: every(idx)[0]


def tap_features(source: str | Path | bytes, taps: Sequence[int] | None, images: np.ndarray,
                 *, batch: int = 128, device: torch.device | str = "cpu"
                 ) -> Callable[[np.ndarray], list[np.ndarray]]:
    """``features(idx)`` → every tapped layer's flattened output [(len(idx), D_k) float32]
    of a neuroreg checkpoint for stimulus indices ``idx``: one forward pass per batch for
    all taps (a layer at a time would run the network once per tap). ``taps`` as in a
    TrainConfig (None: every tap; negative ones count from the end); the resolved indices
    are ``features.taps``."""
    model, _ = load_network(str(source) if isinstance(source, Path) else source,
                            pathway="stimulus")
    resolved = resolve_taps(taps, len(model.feature_info))
    model.to(device)
    features = _batched(lambda x: model.forward_intermediates(
        x, resolved, intermediates_only=True, stop_early=True), len(resolved), images, batch,
        device)
    features.taps = resolved  # type: ignore[attr-defined]
    return features


def cnn_features_target(extract: Extractor,
                        stimuli: SimilarityTarget, *, meta: dict[str, Any] | None = None,
                        batch: int = 128, device: torch.device | str = "cpu"
                        ) -> SimilarityTarget:
    """S over ``stimuli``'s images from a layer's centred, unit-length feature vectors.

    The mean over all stimuli is subtracted (Eq. 9's f̄). When the layer has more
    dimensions D than there are stimuli N, the factor is replaced by an exact N-column
    one (S = U Λ Uᵀ → U √Λ), so the target stays N×N-sized at most.
    """
    f = numpy_features(extract, stimuli.images, batch=batch, device=device)(
        np.arange(len(stimuli)))  # (N, D)
    f -= f.mean(axis=0)
    f /= np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    n, d = f.shape
    if d > n:
        gram = np.zeros((n, n), np.float64)
        for i in range(0, d, 8192):  # column blocks keep the float64 copy small
            block = f[:, i:i + 8192].astype(np.float64)
            gram += block @ block.T
        lam, u = np.linalg.eigh(gram)
        f = (u * np.sqrt(np.clip(lam, 0, None))).astype(np.float32)
    info = {**(meta or {}), "feature_dim": d, "stimuli_from": stimuli.meta.get("run")}
    return SimilarityTarget("cnn-features", f, stimuli.image_ids, stimuli.images, info)


@dataclass(frozen=True)
class SCnnOverviews:
    """A trained network's S_CNN overviews over its target's stimuli, for the dashboard,
    in the stimuli's display order (their leading-direction order): per tap its feature
    mean (exact sub-blocks are centred by it) and, for each overview size, the per-tap
    block means and the block edges. Stored as :data:`ml.artifacts.S_CNN_OVERVIEW`."""

    taps: list[int]
    n: int
    means: list[np.ndarray]
    sizes: dict[int, tuple[list[np.ndarray], np.ndarray]]

    def with_sizes(self, other: SCnnOverviews) -> SCnnOverviews:
        """These overviews and ``other``'s (of the same network and stimuli) together."""
        if other.taps != self.taps or other.n != self.n:
            raise ValueError("overviews of different taps or stimuli")
        return dataclasses.replace(self, sizes={**self.sizes, **other.sizes})

    def to_bytes(self) -> bytes:
        arrays: dict[str, Any] = {"taps": np.asarray(self.taps), "n": np.asarray(self.n)}
        arrays.update({f"mean_{k}": m for k, m in enumerate(self.means)})
        for size, (zs, edges) in self.sizes.items():
            arrays[f"z_{size}"], arrays[f"edges_{size}"] = np.stack(zs), edges
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def load(cls, path: str | Path | bytes, *, max_bytes: int = 1 << 30,
             what: str = "s-cnn-overview") -> SCnnOverviews:
        """Read :meth:`to_bytes` (or the one-size file of earlier versions: ``z``, ``edges``),
        allocating at most ``max_bytes``; a bad file is a
        :class:`~ml.stored.StoredFileError` naming ``what``."""
        f = load_npz(path, what=what, max_bytes=max_bytes)
        try:
            taps = [int(t) for t in f["taps"]]
            keys = {k.removeprefix("z_"): k for k in f if k.startswith("z_")}
            pairs = ([(f["z"], f["edges"])] if "z" in f else
                     [(f[key], f[f"edges_{size}"]) for size, key in keys.items()])
            return cls(taps, int(f["n"]), [f[f"mean_{k}"] for k in range(len(taps))],
                       {len(edges) - 1: (list(z), edges) for z, edges in pairs})
        except (KeyError, TypeError, ValueError) as exc:
            raise StoredFileError(f"{what}: not an S_CNN overview ({exc!r})") from None


def s_cnn_overviews(source: str | Path | bytes, taps: Sequence[int] | None,
                    stimuli: SimilarityTarget, *, sizes: Sequence[int] = (200,),
                    device: torch.device | str = "cpu") -> SCnnOverviews:
    """:class:`SCnnOverviews` of a neuroreg checkpoint at ``sizes`` blocks a side (at most
    the number of stimuli): two passes of the network over the stimuli per size."""
    from ml.neural.overview import edges_of, feature_overviews, leading_order

    features = tap_features(source, taps, stimuli.images, device=device)
    order, n = leading_order(stimuli.factor), len(stimuli)
    means: list[np.ndarray] = []
    out: dict[int, tuple[list[np.ndarray], np.ndarray]] = {}
    for size in sorted({len(edges_of(n, s)) - 1 for s in sizes}):
        views = feature_overviews(features, n, order, size)
        means = [v[2] for v in views]
        out[size] = ([v[0] for v in views], views[0][1])
    return SCnnOverviews(list(features.taps), n, means, out)  # type: ignore[attr-defined]
