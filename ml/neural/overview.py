"""Views of a large similarity matrix S = F Fᵀ without building it.

- :func:`leading_order`: a display order (rows sorted by their projection on the factor's
  leading principal direction), shared by every matrix of the same stimuli;
- :func:`pooled`: the ``size``×``size`` overview whose cell (I, J) is the exact mean of S
  over the blocks I×J — (Σ_I f_i)·(Σ_J f_j)/(|I||J|), one small product;
- :func:`block`: any exact sub-block S[rows, cols];
- :func:`feature_overview` / :func:`feature_block`: the same for a network layer's
  S_CNN (Eq. 9), streaming its features in batches; :func:`feature_overviews` /
  :func:`feature_blocks` for all tapped layers from one pass (and Eq. 10's γ-mix);
- matrix sources — :class:`FactorMatrix` (a target), :class:`TapMatrix` (S_CNN of a
  network's taps), :class:`Difference` — and :func:`view`, which draws any of them: the
  one path from a stored artifact to what the dashboard shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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
    edges = edges_of(len(order), size)
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


def mix(matrices: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Σ_k weights[k] · matrices[k] in float64: Eq. 10's S_CNN when the weights are γ.
    Block means mix the same way (a mean is linear), so per-tap overviews give the
    overview of the mix."""
    return sum((w * np.asarray(m, np.float64) for m, w in zip(matrices, weights, strict=True)
                if w), np.zeros(np.shape(matrices[0])))


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
    return feature_overviews(lambda idx: [features(idx)], n, order, size, batch)[0]


def feature_overviews(features: Any, n: int, order: np.ndarray, size: int, batch: int = 256
                      ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`feature_overview` of several layers from one network pass per chunk.

    Args:
        features: ``features(idx) -> [(len(idx), D_k) array per layer]``: every tapped
            layer from one forward pass, so all layers cost two passes over the stimuli.
    """
    means: list[np.ndarray] | None = None
    for i in range(0, n, batch):
        chunk = [f.astype(np.float64).sum(axis=0)
                 for f in features(np.arange(i, min(i + batch, n)))]
        means = chunk if means is None else [m + c for m, c in zip(means, chunk, strict=True)]
    assert means is not None
    means = [(m / n).astype(np.float32) for m in means]
    edges = edges_of(n, size)
    size = len(edges) - 1
    block_of = np.searchsorted(edges, np.arange(n), side="right") - 1  # position → block
    sums = [np.zeros((size, m.shape[0]), np.float64) for m in means]
    for i in range(0, n, batch):
        pos = np.arange(i, min(i + batch, n))
        blocks = block_of[pos]  # non-decreasing: positions run in display order
        starts = np.flatnonzero(np.r_[True, blocks[1:] != blocks[:-1]])
        for k, f in enumerate(features(order[pos])):
            e = _unit_rows(f.astype(np.float32), means[k])
            sums[k][blocks[starts]] += np.add.reduceat(e, starts, axis=0)  # (np.add.at: 10× slower)
    out = []
    for k, mean in enumerate(means):
        block_means = sums[k] / np.diff(edges)[:, None]
        z = np.clip(block_means @ block_means.T, -1.0, 1.0).astype(np.float32)
        out.append((z, edges, mean))
    return out


def feature_block(features: Any, order: np.ndarray, rows: slice, cols: slice,
                  mean: np.ndarray) -> np.ndarray:
    """The exact S_CNN over positions ``rows`` × ``cols`` (centred by the overall mean)."""
    return feature_blocks(lambda idx: [features(idx)], order, rows, cols, [mean], [1.0])


def feature_blocks(features: Any, order: np.ndarray, rows: slice, cols: slice,
                   means: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Σ_k weights[k] · exact S of layer k over ``rows`` × ``cols`` (Eq. 10 when the
    weights are γ), from one network pass for the rows and one for the columns."""
    a = features(order[rows])
    b = features(order[cols])
    z = np.zeros((len(a[0]), len(b[0])), np.float64)
    for fa, fb, mean, w in zip(a, b, means, weights, strict=True):
        if w:
            s = _unit_rows(fa.astype(np.float32), mean) @ _unit_rows(fb.astype(np.float32), mean).T
            z += w * np.clip(s, -1.0, 1.0)
    return z


def extreme_pairs(factor: np.ndarray, k: int = 3, *, block: int = 512
                  ) -> dict[str, list[tuple[int, int, float]]]:
    """The most and the least similar stimulus pairs of S = F Fᵀ (the paper's Fig. 2), each
    side ``k`` pairs of distinct stimuli (so one odd image cannot fill the list): greedily,
    the extreme pair, then the extreme pair of stimuli not used yet, and so on.

    Exact: S is computed ``block`` rows at a time over the pairs i < j, keeping each row's
    2k − 1 extreme entries; memory O(block · N + N · k). That is enough whatever S is: if
    the best pair (i, j) of unused stimuli were not kept, row i would keep 2k − 1 entries
    at least as extreme, and at most 2k − 2 stimuli are used before the last pick, so one
    of them pairs i with an unused stimulus and is as good (a tie). Ties are broken
    towards the lower (i, j).

    Returns:
        ``{"high": [(i, j, S_ij), …], "low": […]}``, highest (lowest) first.
    """
    f = np.asarray(factor, dtype=np.float32)
    n = len(f)
    sides = (("high", 1.0), ("low", -1.0))  # sign · S: larger is more extreme
    if n < 2:
        return {side: [] for side, _ in sides}
    found: dict[str, list[np.ndarray]] = {side: [] for side, _ in sides}
    for r0 in range(0, n - 1, block):
        s = f[r0:r0 + block] @ f.T  # (rows, N)
        rows = np.arange(r0, min(r0 + block, n))
        valid = np.arange(n)[None, :] > rows[:, None]  # i < j only: no diagonal, no repeats
        m = min(2 * k - 1, n - 1 - r0)  # the block's first row has the most valid entries
        for side, sign in sides:
            key = np.where(valid, -sign * s, np.inf)  # smallest key = most extreme
            cols = np.argpartition(key, m - 1, axis=1)[:, :m]
            keep = np.take_along_axis(valid, cols, axis=1)
            i = np.broadcast_to(rows[:, None], cols.shape)[keep]
            found[side].append(np.stack([i, cols[keep]]))
    out: dict[str, list[tuple[int, int, float]]] = {}
    for side, sign in sides:
        i, j = np.concatenate(found[side], axis=1)
        values = np.einsum("nd,nd->n", f[i], f[j])  # each S_ij alone: no blocking in it
        picked: list[tuple[int, int, float]] = []
        used: set[int] = set()
        for x in np.lexsort((j, i, -sign * values)):  # most extreme first, then lower (i, j)
            a, b = int(i[x]), int(j[x])
            if a in used or b in used:
                continue
            picked.append((a, b, float(values[x])))
            used |= {a, b}
            if len(picked) == k:
                break
        out[side] = picked
    return out


# --- matrix sources: one way to draw any of a run's matrices ---------------------------

class OverviewMissing(LookupError):
    """A matrix whose overview at this size has not been computed (by a worker) yet."""

    def __init__(self, size: int) -> None:
        super().__init__(f"no overview of {size} blocks yet")
        self.size = size


@dataclass(frozen=True)
class View:
    """What the dashboard draws of a matrix: the overview (``edges`` set: block means
    between consecutive edges) or an exact block (``rows`` × ``cols`` positions)."""

    n: int
    z: np.ndarray
    edges: np.ndarray | None = None
    rows: slice | None = None
    cols: slice | None = None

    @property
    def exact(self) -> bool:
        return self.edges is None or bool(np.all(np.diff(self.edges) == 1))


def edges_of(n: int, size: int) -> np.ndarray:
    """The block edges of an overview of ``n`` positions in at most ``size`` blocks."""
    return np.linspace(0, n, max(1, min(size, n)) + 1).round().astype(int)


class Matrix(Protocol):
    """A symmetric similarity matrix over ``n`` stimuli, viewed in a display order."""

    @property
    def n(self) -> int: ...

    def overview(self, order: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]: ...

    def block(self, order: np.ndarray, rows: slice, cols: slice) -> np.ndarray: ...


@dataclass(frozen=True)
class FactorMatrix:
    """S = F Fᵀ of a target's factor (S_model, S_data, the control targets)."""

    factor: np.ndarray

    @property
    def n(self) -> int:
        return len(self.factor)

    def overview(self, order: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        return pooled(self.factor, order, size)

    def block(self, order: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
        return block(self.factor, order, rows, cols)


@dataclass(frozen=True)
class TapMatrix:
    """Σ_k weights[k] · S_k over a network's tapped layers (one tap alone, or Eq. 10's
    S_CNN when the weights are γ).

    Overviews come from ``overviews`` (size → (per-tap block means, edges), as a worker
    stored them: :func:`ml.regularize.cnn_features.load_s_cnn_overview`), never from a
    network pass here; exact blocks from ``features`` (``features(idx)`` → per-tap
    arrays), centred by the taps' feature ``means``.
    """

    n: int
    weights: Sequence[float]
    means: Sequence[np.ndarray]
    overviews: dict[int, tuple[Sequence[np.ndarray], np.ndarray]]
    features: Any = None

    def overview(self, order: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        size = max(1, min(size, self.n))
        if size not in self.overviews:
            raise OverviewMissing(size)
        zs, edges = self.overviews[size]
        return mix(zs, self.weights), edges

    def block(self, order: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
        return feature_blocks(self.features, order, rows, cols, list(self.means),
                              list(self.weights))


@dataclass(frozen=True)
class Difference:
    """``a − b`` over the same stimuli (S_model − S_data, S_CNN − S_target)."""

    a: Matrix
    b: Matrix

    @property
    def n(self) -> int:
        return self.a.n

    def overview(self, order: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        (za, edges), (zb, _) = self.a.overview(order, size), self.b.overview(order, size)
        return np.asarray(za, np.float64) - zb, edges

    def block(self, order: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
        return (np.asarray(self.a.block(order, rows, cols), np.float64)
                - self.b.block(order, rows, cols))


def view(matrix: Matrix, order: np.ndarray, *, size: int = 200, rows: slice | None = None,
         cols: slice | None = None) -> View:
    """The overview of ``matrix`` in ``order`` (``size`` blocks a side), or with ``rows``
    and ``cols`` (positions in ``order``) its exact block."""
    if rows is None and cols is None:
        z, edges = matrix.overview(order, size)
        return View(matrix.n, np.asarray(z), edges=np.asarray(edges))
    rows, cols = rows or slice(0, matrix.n), cols or slice(0, matrix.n)
    return View(matrix.n, np.asarray(matrix.block(order, rows, cols)), rows=rows, cols=cols)
