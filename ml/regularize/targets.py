"""Regularization targets by name: where S_target for a batch of stimuli comes from.

A target is a :class:`~ml.neural.target.SimilarityTarget` (unit-vector factor over a
stimulus set, S = F Fᵀ). :data:`REGISTRY` is the one home of what each name means: which
of a similarity run's stored targets it is built over (``source``; its artifact is
:func:`ml.artifacts.target` of it), whether it needs a network (``cnn-features``: another
network's layer, the paper's VGG19 conv3_1), and how it is built from that source
(:func:`resolve_target`). ``none`` means α = 0. The config type (:data:`TargetName`), the
API's input checks, the worker, the matrices route and studies all read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from ml.neural.estimators import unit_vectors
from ml.neural.target import SimilarityTarget, participation_ratio

TargetName = Literal["none", "neural-model", "neural-data", "neural-true", "shuffle", "random",
                     "random-matched", "pixel", "cnn-features"]
"""The names, for config types (a test keeps it equal to the registry's keys)."""


@dataclass(frozen=True)
class Network:
    """What ``cnn-features`` computes its S from: a network's file and layer."""

    source: str | Path | bytes
    layer: str
    meta: dict[str, Any]


@dataclass(frozen=True)
class TargetSpec:
    """A target kind.

    Attributes:
        name: its config name.
        source: the similarity run's stored target it is built over (its stimuli, and for
            the stored kinds the target itself); None for ``none``.
        needs_network: built from a network's features (``cnn-features``).
        build: (source target, seed, network) → the target; None for ``none``.
        summary: one line for docs and errors.
        needs_simulation: a similarity run stores it only when it analysed a simulation,
            the one source that knows its noise-free truth (``neural-true``).
    """

    name: str
    source: str | None
    needs_network: bool
    build: Callable[[SimilarityTarget | None, int, Network | None, Any], SimilarityTarget | None]
    summary: str
    needs_simulation: bool = False


def _stored(source: SimilarityTarget | None, seed: int, network: Network | None,
            device: Any) -> SimilarityTarget | None:
    return source


def _none(source: SimilarityTarget | None, seed: int, network: Network | None,
          device: Any) -> SimilarityTarget | None:
    return None


def _random(source: SimilarityTarget | None, seed: int, network: Network | None,
            device: Any) -> SimilarityTarget:
    assert source is not None
    return random_target(source, seed=seed)


def _random_matched(source: SimilarityTarget | None, seed: int, network: Network | None,
                    device: Any) -> SimilarityTarget:
    assert source is not None
    return random_matched_target(source, seed=seed)


def _pixel(source: SimilarityTarget | None, seed: int, network: Network | None,
           device: Any) -> SimilarityTarget:
    assert source is not None
    return pixel_target(source)


def _cnn_features(source: SimilarityTarget | None, seed: int, network: Network | None,
                  device: Any) -> SimilarityTarget:
    from ml.regularize.cnn_features import cnn_features_target, load_feature_network

    if network is None:
        raise ValueError("features: the cnn-features target needs a network (weights or run)")
    assert source is not None
    extract, info = load_feature_network(network.source, network.layer)
    return cnn_features_target(extract, source, device=device or "cpu",
                               meta={**info, **network.meta})


REGISTRY: dict[str, TargetSpec] = {spec.name: spec for spec in (
    TargetSpec("none", None, False, _none, "no regularization (α unused)"),
    TargetSpec("neural-model", "neural-model", False, _stored,
               "S_model: the predictive model's similarity, averaged over scans (Eq. 6)"),
    TargetSpec("neural-data", "neural-data", False, _stored,
               "S_data: the recorded responses' similarity (Eq. 2)"),
    TargetSpec("neural-true", "neural-true", False, _stored,
               "S_true: a simulation's noise-free similarity over the neural-model target's "
               "stimuli (the best any recording could give)", needs_simulation=True),
    TargetSpec("shuffle", "shuffle", False, _stored,
               "S_model with its stimuli shuffled (the paper's control)"),
    TargetSpec("random", "neural-model", False, _random,
               "Gaussian unit vectors over the neural-model target's stimuli"),
    TargetSpec("random-matched", "neural-model", False, _random_matched,
               "a random similarity with S_model's eigenspectrum (random, matched in "
               "dimensionality)"),
    TargetSpec("pixel", "neural-model", False, _pixel,
               "the stimulus images' own similarity (centred pixels; Attias, Pehlevan & "
               "Obeid 2024)"),
    TargetSpec("cnn-features", "neural-model", True, _cnn_features,
               "another network's layer over the neural-model target's stimuli (VGG19 "
               "conv3_1 in the paper)"),
)}
TARGETS = tuple(REGISTRY)
FROM_SIMILARITY_RUN = tuple(n for n, s in REGISTRY.items() if s.source == n)
"""The targets a similarity run stores as they are (each its own source)."""
assert TARGETS == get_args(TargetName), "TargetName and REGISTRY name the same targets"


def resolve_target(name: str, source: SimilarityTarget | None, *, seed: int,
                   network: Network | None = None, device: Any = None
                   ) -> SimilarityTarget | None:
    """The target ``name`` over ``source`` (the similarity run's ``REGISTRY[name].source``
    target); a ``source`` that already is a ``name`` target comes back as it is."""
    check_target(name)
    spec = REGISTRY[name]
    if spec.source is None:
        return None
    if source is None:
        raise ValueError(f"target: {name!r} needs a target (the stimuli and S of a "
                         "similarity run)")
    if source.kind == name:
        return source  # a stored kind, or built already (the worker builds cnn-features)
    return spec.build(source, seed, network, device)


def source_kind(name: str) -> str:
    """The similarity run's stored target a train target is read over — its stimuli
    for every kind, and the target itself for the stored ones (``neural-model`` for
    ``none``, which reads nothing, so a None run's pages show the same stimuli)."""
    check_target(name)
    return REGISTRY[name].source or "neural-model"


def random_target(like: SimilarityTarget, *, seed: int, dim: int | None = None) -> SimilarityTarget:
    """The Random control: centred unit vectors of Gaussian noise over the same stimuli.

    A valid similarity matrix (S_ii = 1, PSD) with no relation to the images; ``dim``
    (default: the reference factor's width) sets how concentrated its values are
    around 0, so a matching width gives a comparable spread.
    """
    rng = np.random.default_rng(seed)
    d = dim or like.factor.shape[1]
    factor = unit_vectors(rng.standard_normal((len(like), d), dtype=np.float32))
    return SimilarityTarget("random", factor.astype(like.factor.dtype), like.image_ids,
                            like.images, {"random_seed": seed, "random_dim": d})


def random_matched_target(like: SimilarityTarget, *, seed: int) -> SimilarityTarget:
    """The Random control matched in dimensionality: a random similarity with ``like``'s
    eigenspectrum.

    From the singular values σ_k of ``like``'s factor (rank r, scaled so Σσ² = N), F =
    Q diag(σ) with Q a random orthonormal (N, r) basis (Haar, seeded by ``seed``), so
    S = F Fᵀ has ``like``'s spectrum. Its rows are then brought to unit length (S_ii = 1)
    by Givens rotations of pairs of rows (Davies & Higham 2000, the method behind
    ``scipy.stats.random_correlation``), which keep the spectrum exactly; scaling each
    row instead would not — at a participation ratio of 8 it moved to 11. ``meta``
    records the participation ratio
    (:func:`~ml.neural.target.participation_ratio`) of ``like`` and of the
    result.
    """
    src = like.factor.astype(np.float64)
    n, d = src.shape
    gram = src.T @ src if d <= n else src @ src.T  # the smaller one: the same nonzero λ
    lam = np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, None)
    if lam[0] <= 0:
        raise ValueError(f"random-matched: the {like.kind} target's factor is zero")
    lam = lam[lam > lam[0] * max(n, d) * np.finfo(np.float64).eps]
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((n, lam.size), dtype=np.float32))
    q *= np.where(np.diag(r) < 0, -1.0, 1.0).astype(np.float32)  # Haar: R's diagonal > 0
    factor = _unit_diagonal(q * np.sqrt(lam * (n / lam.sum())).astype(np.float32))
    meta = {"random_seed": seed, "matched_to": like.kind, "rank": int(lam.size),
            "participation_ratio_source": participation_ratio(like.factor),
            "participation_ratio": participation_ratio(factor)}
    return SimilarityTarget("random-matched", factor.astype(like.factor.dtype),
                            like.image_ids, like.images, meta)


def _unit_diagonal(f: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Rows of unit length from rows whose squared norms sum to N, keeping F Fᵀ's
    spectrum: each Givens rotation of a row shorter than 1 with one longer gives the
    shorter unit length (F → G F, S → G S Gᵀ), so at most N − 1 rotations; the last
    rounding is divided out."""
    a = np.einsum("ij,ij->i", f, f, dtype=np.float64)
    below = np.flatnonzero(a < 1 - tol).tolist()
    above = np.flatnonzero(a > 1 + tol).tolist()
    while below and above:
        i, j = below.pop(), above.pop()
        fi, fj = f[i].astype(np.float64), f[j].astype(np.float64)
        # ‖c f_i + s f_j‖² = 1 with t = s/c: (a_j − 1) t² + 2 (f_i·f_j) t + (a_i − 1) = 0,
        # whose roots are real as (a_i − 1)(a_j − 1) < 0; the smaller one, stably
        b, c_ = float(fi @ fj), a[i] - 1.0
        root = np.sqrt(b * b - (a[j] - 1.0) * c_)
        t = -c_ / (b + (root if b >= 0 else -root))
        c = 1.0 / np.sqrt(1.0 + t * t)
        f[i], f[j] = c * fi + c * t * fj, c * fj - c * t * fi
        a[j] += a[i] - 1.0  # the trace is kept
        a[i] = 1.0
        if a[j] > 1 + tol:
            above.append(j)
        elif a[j] < 1 - tol:
            below.append(j)
    return unit_vectors(f, mean=np.zeros(f.shape[1]))


def pixel_target(like: SimilarityTarget) -> SimilarityTarget:
    """The Pixel control (Attias, Pehlevan & Obeid 2024): the similarity of ``like``'s
    stimulus images themselves.

    S is :func:`~ml.neural.estimators.unit_vectors`' definition on the flattened images,
    S_ij = e_i · e_j with e_i = (x_i − x̄)/‖x_i − x̄‖ and x̄ the mean image over the
    stimuli. Its rank is at most N, so with more pixels than stimuli the (N, pixels)
    factor is replaced by an exact (N, N) one: E = Rᵀ Qᵀ (QR of Eᵀ) gives F = Rᵀ with
    F Fᵀ = E Eᵀ, its rows re-scaled to unit length against rounding.
    """
    flat = like.images.reshape(len(like), -1)
    e = unit_vectors(flat)
    pixels = e.shape[1]
    if pixels > e.shape[0]:
        zero = ~e.any(axis=1)  # an image equal to the mean: S = 0 with every other
        r = np.asarray(np.linalg.qr(e.T.astype(np.float64), mode="r"))  # R alone
        e = unit_vectors(r.T, mean=np.zeros(r.shape[0]))
        e[zero] = 0.0
    return SimilarityTarget("pixel", e.astype(like.factor.dtype), like.image_ids,
                            like.images, {"pixels": int(pixels), "factor_width": e.shape[1]})


def check_target(name: str) -> None:
    """Refuse an unknown target name with the list of known ones."""
    if name not in TARGETS:
        raise ValueError(f"target: unknown target {name!r}; known: {list(TARGETS)}")
