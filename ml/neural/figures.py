"""Figure data of the similarity analysis (paper Fig. 1), as plain JSON-able dicts."""

from __future__ import annotations

from typing import Any

import numpy as np


def cluster_order(similarity: np.ndarray) -> np.ndarray:
    """A leaf order that puts similar images next to each other (Fig. 1A/1B).

    Average-linkage clustering on 1 − S with optimal leaf ordering; computed once and
    shared by every matrix so structure can be compared across them.
    """
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    s = np.asarray(similarity, dtype=np.float64)
    d = np.clip(1.0 - (s + s.T) / 2.0, 0.0, None)
    np.fill_diagonal(d, 0.0)
    condensed = squareform(d, checks=False)
    tree = optimal_leaf_ordering(linkage(condensed, method="average"), condensed)
    return leaves_list(tree)


def histogram(values: np.ndarray, edges: np.ndarray) -> dict[str, Any]:
    """Counts over fixed ``edges`` with the sample's summary."""
    v = np.asarray(values, dtype=np.float64)
    counts, _ = np.histogram(v, bins=edges)
    return {
        "edges": _round(edges), "counts": counts.tolist(), "n": int(v.size),
        "mean": float(v.mean()) if v.size else 0.0, "sd": float(v.std()) if v.size else 0.0,
    }


def subsample(rng: np.random.Generator, n: int, *arrays: np.ndarray) -> list[list[float]]:
    """The same ≤ n random entries of each array (for scatter plots)."""
    size = len(arrays[0])
    keep = np.sort(rng.choice(size, n, replace=False)) if size > n else np.arange(size)
    return [_round(np.asarray(a)[keep]) for a in arrays]


def ordered(matrix: np.ndarray, order: np.ndarray) -> list[list[float]]:
    return _round(np.asarray(matrix)[np.ix_(order, order)])


def _round(a: np.ndarray, digits: int = 4) -> Any:
    return np.round(np.asarray(a, dtype=np.float64), digits).tolist()
