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
from ml.neural.target import SimilarityTarget

TargetName = Literal["none", "neural-model", "neural-data", "shuffle", "random", "cnn-features"]
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
    """

    name: str
    source: str | None
    needs_network: bool
    build: Callable[[SimilarityTarget | None, int, Network | None, Any], SimilarityTarget | None]
    summary: str


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
    TargetSpec("shuffle", "shuffle", False, _stored,
               "S_model with its stimuli shuffled (the paper's control)"),
    TargetSpec("random", "neural-model", False, _random,
               "Gaussian unit vectors over the neural-model target's stimuli"),
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


def check_target(name: str) -> None:
    """Refuse an unknown target name with the list of known ones."""
    if name not in TARGETS:
        raise ValueError(f"target: unknown target {name!r}; known: {list(TARGETS)}")
