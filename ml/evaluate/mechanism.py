"""Where a model's robustness comes from: three measures of one evaluated model.

- **input gradients** — per sample of the fixed set, ‖∇ₓ CE(f(x), y)‖₂ and ‖·‖₁ at the
  clean image (a smoother, more robust model tends to have smaller ones);
- **image subspace** — the share of each minimal adversarial perturbation's energy
  inside the span of the top-k principal components of the training images,
  ‖P_k δ‖² / ‖δ‖², per norm measured; beside it the same share for random Gaussian
  directions (k / D in expectation, computed here, not assumed). A model whose attacks
  must move along the images' own directions has a high share;
- **layer similarity** — each tapped layer's r(S_k, S_target) on the target's held-out
  stimuli, computed by the training's own code (:func:`ml.train.joint._heldout_r`) on
  the split the training held out; skipped, with the reason, when there is no target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ml.neural.target import SimilarityTarget

RANDOM_DIRECTIONS = 1000
"""Gaussian directions drawn for the subspace share's reference."""
HISTOGRAM_BINS = 20
"""Bins over [0, 1] of the subspace shares' histogram."""


@dataclass(frozen=True)
class TapTarget:
    """What the layer similarity needs: the evaluated model's checkpoint (``model.pt`` as
    ``torch.load`` gives it: weights, γ head, stimulus statistics, config) and the target
    over the neural stimuli, resolved as training resolved it
    (:func:`ml.regularize.targets.resolve_target`); ``source`` says where it came from."""

    checkpoint: Mapping[str, Any]
    target: SimilarityTarget
    source: str


def input_gradient_norms(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                         *, batch: int = 250, device: torch.device | str = "cpu"
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Per sample ‖∇ₓ CE(f(x), y)‖₂ and ‖·‖₁ at the clean image, in eval mode (the loss of
    each sample alone: summed over the batch, each image's gradient is its own)."""
    model.eval()
    l2, l1 = [], []
    for i in range(0, len(images), batch):
        x = images[i:i + batch].to(device).clone().requires_grad_(True)
        loss = F.cross_entropy(model(x).float(), labels[i:i + batch].to(device),
                               reduction="sum")
        (g,) = torch.autograd.grad(loss, x)
        g = g.detach().flatten(1).double().cpu()
        l2.append(g.norm(dim=1))
        l1.append(g.abs().sum(1))
    return torch.cat(l2).numpy(), torch.cat(l1).numpy()


def principal_subspace(images: torch.Tensor, k: int, *, chunk: int = 4096) -> torch.Tensor:
    """(D, k) orthonormal float64 columns: the top-k principal components of ``images``
    (N, C, H, W), centred, by the eigenvectors of their covariance, largest first.

    Raises:
        ValueError: ``subspace_k`` not below both the image size D and N.
    """
    n, dim = len(images), int(images[0].numel())
    if not 1 <= k < min(dim, n):
        raise ValueError(f"subspace_k: {k} principal components of {n} training images of "
                         f"{dim} values; need 1 ≤ k < {min(dim, n)}")
    flat = images.reshape(n, dim)
    mean = torch.zeros(dim, dtype=torch.float64)
    for i in range(0, n, chunk):
        mean += flat[i:i + chunk].double().sum(0)
    mean /= n
    cov = torch.zeros(dim, dim, dtype=torch.float64)
    for i in range(0, n, chunk):
        c = flat[i:i + chunk].double() - mean
        cov += c.T @ c
    _, vectors = torch.linalg.eigh(cov / (n - 1))  # ascending eigenvalues
    return vectors[:, -k:].flip(1).contiguous()


def subspace_share(delta: torch.Tensor, basis: torch.Tensor) -> np.ndarray:
    """Per row of ``delta`` (N, …) the share of its energy inside the span of ``basis``'s
    orthonormal columns (D, k): ‖Uᵀδ‖² / ‖δ‖²; NaN for δ = 0."""
    d = delta.reshape(len(delta), -1).double()
    inside = (d @ basis).pow(2).sum(1)
    total = d.pow(2).sum(1)
    return torch.where(total > 0, inside / total, torch.full_like(total, math.nan)).numpy()


def random_share(basis: torch.Tensor, n: int = RANDOM_DIRECTIONS, seed: int = 0) -> np.ndarray:
    """:func:`subspace_share` of ``n`` standard-normal directions (a CPU generator: the same
    on every machine)."""
    z = torch.randn(n, basis.shape[0], generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)
    return subspace_share(z, basis)


def _stats(values: np.ndarray) -> dict[str, Any]:
    v = values[np.isfinite(values)]
    return {"n": int(len(v)), "median": float(np.median(v)) if len(v) else None,
            "mean": float(v.mean()) if len(v) else None}


def histogram(shares: np.ndarray, bins: int = HISTOGRAM_BINS) -> dict[str, list[Any]]:
    """Counts of the finite shares in ``bins`` equal bins over [0, 1]."""
    counts, edges = np.histogram(shares[np.isfinite(shares)], bins=bins, range=(0.0, 1.0))
    return {"edges": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]}


def tap_similarity(probe: TapTarget, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Each tapped layer's r(S_k, S_target), and that of the γ-mix (Eq. 10), on the
    target's stimuli the training held out (the model's ``heldout_fraction`` and
    ``seed``), as training computes them (:func:`ml.train.joint._heldout_r`)."""
    from ml.models import resolve_taps
    from ml.regularize import SimilarityHead, kept_taps
    from ml.train.classifier import load_model
    from ml.train.joint import _heldout_r, _split
    from ml.train.pathway import stimulus_pathway

    ckpt = dict(probe.checkpoint)
    model, cfg = load_model(ckpt)
    model = model.to(device)
    taps = resolve_taps(cfg.taps, len(model.feature_info))
    head = SimilarityHead(len(taps), centering=cfg.centering)
    if ckpt.get("head"):
        head.load_state_dict(ckpt["head"])
    head = head.to(device)
    pathway = stimulus_pathway(model, cfg.stimulus_norm,
                               ckpt.get("stimulus_bn") if cfg.stimulus_norm == "separate"
                               else None)
    keep = None
    if cfg.gamma_prune is not None:
        kept = kept_taps(head.gamma.detach().cpu().tolist(), taps, cfg.gamma_prune)
        keep = None if len(kept) == len(taps) else kept
    _, held = _split(len(probe.target), cfg.heldout_fraction, cfg.seed)
    stimuli = torch.from_numpy(np.asarray(probe.target.images[held], np.float32)).to(device)
    mix, per_tap = _heldout_r(model, head, pathway, taps, stimuli, probe.target.block(held),
                              keep)
    return {"source": probe.source, "stimuli": int(len(held)), "taps": taps,
            "layers": [int(model.feature_info[t].get("layer", t)) for t in taps],
            "r": per_tap, "r_mix": mix}


def mechanism(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
              ids: np.ndarray, perturbations: Mapping[str, torch.Tensor] | None,
              train_images: torch.Tensor | None, k: int = 64,
              tap_target: TapTarget | None = None, seed: int = 0, batch: int = 250,
              device: torch.device | str = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """Every measure of the module on the fixed samples.

    Args:
        model: the evaluated classifier, on ``device``.
        images, labels, ids: the fixed sample set.
        perturbations: per norm the minimal adversarial perturbations δ (N, C, H, W) of
            the broken, correctly classified samples (None: no minimal search ran).
        train_images: the training split, whose principal components span the task's
            image subspace (None: the subspace share is skipped).
        k: how many principal components.
        tap_target: the layer similarity's model and target (None, or one this network
            cannot take: skipped, with the reason).

    Returns:
        The summary (the result's ``mechanism``) and the per-sample detail for
        ``mechanism.json``.
    """
    g2, g1 = input_gradient_norms(model, images, labels, batch=batch, device=device)
    summary: dict[str, Any] = {
        "samples": int(len(images)),
        "input_gradient": {"l2": _stats(g2), "l1": _stats(g1)}}
    detail: dict[str, Any] = {"sample_ids": [int(i) for i in ids],
                              "input_gradient_l2": g2.tolist(),
                              "input_gradient_l1": g1.tolist()}
    sub: dict[str, Any] = {"k": k, "dim": int(images[0].numel()), "skipped": None,
                           "norms": {}, "random": None, "expected_random": None}
    if train_images is None:
        sub["skipped"] = "no training images given"
    else:
        basis = principal_subspace(train_images, k)
        rand = random_share(basis, seed=seed)
        sub["random"] = _stats(rand)
        sub["expected_random"] = k / basis.shape[0]
        detail["subspace_random"] = rand.tolist()
        if perturbations is None:
            sub["skipped"] = "no minimal perturbations: the minimal part did not run"
        for norm, delta in (perturbations or {}).items():
            share = subspace_share(delta, basis)
            sub["norms"][norm] = {**_stats(share), "histogram": histogram(share)}
            detail[f"subspace_{norm}"] = [None if math.isnan(s) else float(s) for s in share]
    summary["subspace"] = sub
    if tap_target is None:
        summary["layers"] = None
        summary["layers_skipped"] = ("no similarity target: the model was trained without "
                                     "one and the config names no similarity_run")
    else:
        try:
            summary["layers"], summary["layers_skipped"] = tap_similarity(tap_target, device), None
        except (ValueError, RuntimeError, KeyError) as exc:  # a target this network cannot
            # take (stimuli of another shape, a checkpoint without its taps): the measures
            # above stand, and the record says why this one is missing
            summary["layers"] = None
            summary["layers_skipped"] = f"{tap_target.source}: {type(exc).__name__}: {exc}"
    return summary, detail
