"""Views of a large similarity matrix S = F Fᵀ without building it.

- :func:`leading_order`: a display order (rows sorted by their projection on the factor's
  leading principal direction), shared by every matrix of the same stimuli;
- :func:`pooled`: the ``size``×``size`` overview whose cell (I, J) is the exact mean of S
  over the blocks I×J — (Σ_I f_i)·(Σ_J f_j)/(|I||J|), one small product;
- :func:`block`: any exact sub-block S[rows, cols];
- :func:`feature_overview` / :func:`feature_block`: the same for a network layer's
  S_CNN (Eq. 9), streaming its features in batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def leading_order(factor: np.ndarray, iterations: int = 50, seed: int = 0) -> np.ndarray:
    """Stimulus order along the leading right singular vector of the centred factor."""
    f = np.asarray(factor, dtype=np.float32)
    f = f - f.mean(axis=0)
    v = np.random.default_rng(seed).standard_normal(f.shape[1]).astype(np.float32)
    for _ in range(iterations):  # power iteration on FᵀF without forming it
        v = f.T @ (f @ v)
        v /= max(float(np.linalg.norm(v)), 1e-12)
    return np.argsort(f @ v, kind="stable")


def pooled(factor: np.ndarray, order: np.ndarray, size: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """(size', size') block means of S in ``order`` and the block edges (size' ≤ size)."""
    n = len(order)
    size = max(1, min(size, n))
    edges = np.linspace(0, n, size + 1).round().astype(int)
    f = np.asarray(factor, dtype=np.float32)[order]
    sums = np.add.reduceat(f, edges[:-1], axis=0)  # (size, D) Σ_I f_i
    counts = np.diff(edges).astype(np.float32)[:, None]
    means = sums / counts
    return np.clip(means @ means.T, -1.0, 1.0), edges


def block(factor: np.ndarray, order: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    """The exact S over positions ``rows`` × ``cols`` of ``order``."""
    f = np.asarray(factor, dtype=np.float32)
    a, b = f[order[rows]], f[order[cols]]
    return np.clip(a @ b.T, -1.0, 1.0)


def _unit_rows(f: np.ndarray, mean: np.ndarray) -> np.ndarray:
    e = f - mean
    e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return e


def feature_overview(features: Any, n: int, order: np.ndarray, size: int, batch: int = 256
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The block-mean overview of a network layer's S (Eq. 9 over all n stimuli) without
    holding the n × D features: one pass for the mean, one for the block sums.

    Args:
        features: ``features(idx) -> (len(idx), D)`` float array for stimulus indices.
        order: the display order (positions → stimulus indices).

    Returns:
        The overview, its block edges, and the features' mean (for exact blocks).
    """
    mean = None
    for i in range(0, n, batch):
        chunk = features(np.arange(i, min(i + batch, n))).astype(np.float64).sum(axis=0)
        mean = chunk if mean is None else mean + chunk
    assert mean is not None
    mean = (mean / n).astype(np.float32)
    size = max(1, min(size, n))
    edges = np.linspace(0, n, size + 1).round().astype(int)
    block_of = np.searchsorted(edges, np.arange(n), side="right") - 1  # position → block
    sums = None
    for i in range(0, n, batch):
        pos = np.arange(i, min(i + batch, n))
        e = _unit_rows(features(order[pos]).astype(np.float32), mean)
        part = np.zeros((size, e.shape[1]), np.float64)
        np.add.at(part, block_of[pos], e)
        sums = part if sums is None else sums + part
    assert sums is not None
    means = sums / np.diff(edges)[:, None]
    return np.clip(means @ means.T, -1.0, 1.0).astype(np.float32), edges, mean


def feature_block(features: Any, order: np.ndarray, rows: slice, cols: slice,
                  mean: np.ndarray) -> np.ndarray:
    """The exact S_CNN over positions ``rows`` × ``cols`` (centred by the overall mean)."""
    a = _unit_rows(features(order[rows]).astype(np.float32), mean)
    b = _unit_rows(features(order[cols]).astype(np.float32), mean)
    return np.clip(a @ b.T, -1.0, 1.0)
