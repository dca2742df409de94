"""Views of a large similarity matrix S = F Fᵀ without building it.

- :func:`leading_order`: a display order (rows sorted by their projection on the factor's
  leading principal direction), shared by every matrix of the same stimuli;
- :func:`pooled`: the ``size``×``size`` overview whose cell (I, J) is the exact mean of S
  over the blocks I×J — (Σ_I f_i)·(Σ_J f_j)/(|I||J|), one small product;
- :func:`block`: any exact sub-block S[rows, cols].
"""

from __future__ import annotations

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
