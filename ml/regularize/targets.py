"""Regularization targets by name: where S_target for a batch of stimuli comes from.

A target is a :class:`~ml.neural.target.SimilarityTarget` (unit-vector factor over a
stimulus set, S = F Fᵀ). ``neural-model``, ``neural-data`` and ``shuffle`` are stored by a
``similarity`` run; ``random`` is built here over the same stimuli; ``none`` means α = 0.
(``cnn-features`` — another network's layer, the paper's VGG19 conv3_1 — comes with the
training job, which owns checkpoints.)
"""

from __future__ import annotations

import numpy as np

from ml.neural.estimators import unit_vectors
from ml.neural.target import SimilarityTarget

FROM_SIMILARITY_RUN = ("neural-model", "neural-data", "shuffle")
TARGETS = ("none", *FROM_SIMILARITY_RUN, "random", "cnn-features")


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
