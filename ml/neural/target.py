"""The regularization target: S for any pair of stimuli, kept as a unit-vector factor.

S = F Fᵀ with F (N, D) of unit rows. One scan's factor is its centred unit vectors
(Eq. 2/6, D = neurons); the average over H scans (Eq. 6, "averaged over 8 scans") is the
concatenation [E_1 … E_H]/√H, whose rows are unit vectors again, so S_ii = 1 and
|S_ij| ≤ 1 hold exactly. Memory is O(N·D): a 100,000-stimulus target with 8,000 model
neurons is 1.6 GB in float16 where the N×N matrix would be 40 GB.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ml.stored import StoredFileError, load_npz

FORMAT = "neuroreg-target/1"
LOAD_MAX_BYTES = 8 << 30
"""What :meth:`SimilarityTarget.load` allocates at most unless told otherwise: a
100,000-stimulus target of 8,000 float32 neurons and its images (about 4 GB) fits."""


@dataclass(frozen=True, eq=False)
class SimilarityTarget:
    """Similarity between stimuli, S_ij = factor[i] · factor[j].

    Attributes:
        kind: ``neural-model`` (Eq. 6), ``neural-data`` (Eq. 2), ``neural-true`` (a
            simulation's S_true), ``shuffle``, or a control built over one of them
            (``random``, ``random-matched``, ``pixel``, ``cnn-features``).
        factor: (N, D) float16/float32 unit rows.
        image_ids: (N,) stimulus ids.
        images: (N, 1, 36, 64) float32 stimuli in [0, 1], for the CNN's neural pathway.
        meta: provenance (scans, weights used, shuffle seed, …).
    """

    kind: str
    factor: np.ndarray
    image_ids: np.ndarray
    images: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.factor.shape[0]
        if self.factor.ndim != 2 or self.image_ids.shape != (n,) or self.images.shape[0] != n:
            raise ValueError(
                f"factor {self.factor.shape}, image_ids {self.image_ids.shape} and images "
                f"{self.images.shape} must agree on N"
            )

    def __len__(self) -> int:
        return int(self.factor.shape[0])

    def pairs(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """S_ij for index arrays i, j of equal shape, as float32."""
        return pair_similarity(self.factor, i, j)

    def block(self, rows: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """The sub-matrix S[rows][:, cols] (cols default to rows), float32."""
        a = self.factor[np.asarray(rows)].astype(np.float32)
        b = a if cols is None else self.factor[np.asarray(cols)].astype(np.float32)
        return np.clip(a @ b.T, -1.0, 1.0)

    def matrix(self) -> np.ndarray:
        """The whole N×N matrix; only for small N."""
        return self.block(np.arange(len(self)))

    def to_bytes(self) -> bytes:
        """An uncompressed ``.npz`` (factor, image_ids, images, meta as JSON)."""
        buf = io.BytesIO()
        header = {"format": FORMAT, "kind": self.kind, **self.meta}
        np.savez(
            buf, factor=self.factor, image_ids=self.image_ids, images=self.images,
            meta=np.array(json.dumps(header)),
        )
        return buf.getvalue()

    @classmethod
    def load(cls, source: str | bytes | io.IOBase, *, max_bytes: int = LOAD_MAX_BYTES,
             what: str = "target") -> SimilarityTarget:
        """Read what :meth:`to_bytes` wrote (a path, bytes or a binary file), allocating at
        most ``max_bytes`` (checked from the arrays' headers before reading them).

        Raises:
            StoredFileError: the file is not a target of this format, holds a pickle, or
                is larger than ``max_bytes``; the message starts with ``what``.
        """
        z = load_npz(source, what=what, max_bytes=max_bytes)  # type: ignore[arg-type]
        missing = {"factor", "image_ids", "images", "meta"} - z.keys()
        if missing:
            raise StoredFileError(f"{what}: not a {FORMAT} file (no {sorted(missing)})")
        try:
            meta = json.loads(str(z["meta"]))
            if not isinstance(meta, dict) or meta.pop("format", None) != FORMAT:
                raise ValueError(f"not a {FORMAT} file")
            return cls(str(meta.pop("kind")), z["factor"], z["image_ids"], z["images"], meta)
        except (ValueError, KeyError) as exc:
            raise StoredFileError(f"{what}: {exc}") from None


def pair_similarity(factor: np.ndarray, i: np.ndarray, j: np.ndarray,
                    chunk: int = 4096) -> np.ndarray:
    """factor[i] · factor[j] for index arrays of equal shape, as float32.

    Rows are gathered ``chunk`` pairs at a time, so a million pairs of an 8,000-wide
    factor never materialise as two million float32 rows (64 GB) at once.
    """
    i, j = np.broadcast_arrays(np.asarray(i), np.asarray(j))
    flat_i, flat_j = i.ravel(), j.ravel()
    out = np.empty(flat_i.size, dtype=np.float32)
    for start in range(0, flat_i.size, chunk):
        a = factor[flat_i[start:start + chunk]].astype(np.float32)
        b = factor[flat_j[start:start + chunk]].astype(np.float32)
        out[start:start + chunk] = np.einsum("pd,pd->p", a, b)
    return out.reshape(i.shape)


def average_factors(factors: Sequence[np.ndarray], dtype: Any = np.float32) -> np.ndarray:
    """Eq. 6's mean over scans as one factor: [E_1 … E_H]/√H, so F Fᵀ = E_h[E_h E_hᵀ].

    Args:
        factors: H arrays (N, D_h) of unit rows over the same N stimuli.
        dtype: storage type of the result (float16 halves memory; |error| < 1e-3).

    Returns:
        (N, Σ D_h) factor.
    """
    if not factors:
        raise ValueError("no scans to average")
    n = factors[0].shape[0]
    if any(f.shape[0] != n for f in factors):
        raise ValueError("every scan's factor must cover the same stimuli")
    out = np.empty((n, sum(f.shape[1] for f in factors)), dtype=dtype)
    scale = 1.0 / np.sqrt(len(factors))
    col = 0
    for f in factors:
        out[:, col:col + f.shape[1]] = f * scale
        col += f.shape[1]
    return out


def shuffled(target: SimilarityTarget, seed: int) -> SimilarityTarget:
    """The Shuffle control: S'_ij = S_π(i)π(j) for a random permutation π of stimuli.

    Every off-diagonal value is kept (same value distribution, still a valid similarity
    matrix) but no longer belongs to the image pair it was measured for.
    """
    perm = np.random.default_rng(seed).permutation(len(target))
    return SimilarityTarget(
        "shuffle", target.factor[perm], target.image_ids, target.images,
        {**target.meta, "shuffled_from": target.kind, "shuffle_seed": seed},
    )


SPECTRUM_COMPONENTS = 200
"""How many of S's leading eigenvalues :func:`spectrum` returns unless told otherwise."""


@dataclass(frozen=True)
class Spectrum:
    """S = F Fᵀ's eigenspectrum: how many independent directions a target asks for.

    Attributes:
        fractions: the leading eigenvalues over their sum (fractions of variance), largest
            first; at most the ``max_components`` asked for.
        participation_ratio: (Σλ)²/Σλ² over all eigenvalues (1 for one direction, the
            rank for a flat spectrum).
        components_50: the fewest leading eigenvalues holding 50 % of the variance.
        components_90: … 90 %.
        components_99: … 99 %.
        rank: eigenvalues above rounding (λ > λ_max · max(N, D) · ε).
        n: stimuli (S is n × n).
    """

    fractions: np.ndarray
    participation_ratio: float
    components_50: int
    components_90: int
    components_99: int
    rank: int
    n: int


def _gram(factor: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """The smaller Gram matrix of ``factor`` in float64: FᵀF (D × D), or F Fᵀ when N < D;
    its eigenvalues are F's squared singular values σ², S's nonzero eigenvalues. Summed
    over ``chunk`` rows at a time, so F is never copied whole in float64."""
    n, d = factor.shape
    if n < d:
        f = factor.astype(np.float64)
        return f @ f.T
    gram = np.zeros((d, d))
    for start in range(0, n, chunk):
        rows = factor[start:start + chunk].astype(np.float64)
        gram += rows.T @ rows
    return gram


def _ratio(gram: np.ndarray) -> float:
    """(Σλ)²/Σλ² from a Gram matrix: Σλ is its trace and Σλ² its squared Frobenius norm."""
    total = float(np.trace(gram))
    return total**2 / float(np.sum(gram * gram)) if total > 0 else 0.0


def participation_ratio(factor: np.ndarray) -> float:
    """(Σλ)²/Σλ² of S = F Fᵀ's eigenvalues λ: how many dimensions S effectively spans
    (1 for one direction, the rank for a flat spectrum). From the smaller Gram matrix:
    Σλ = ‖F‖²_F and Σλ² = ‖FᵀF‖²_F."""
    return _ratio(_gram(factor))


def spectrum(factor: np.ndarray, max_components: int = SPECTRUM_COMPONENTS) -> Spectrum:
    """S = F Fᵀ's eigenvalues from F's singular values (σ², the eigenvalues of
    :func:`_gram`'s D × D FᵀF for N ≥ D: the N × N S is never formed), largest first,
    as fractions of their sum.

    The participation ratio and the component counts use every eigenvalue; only the
    first ``max_components`` fractions are returned. A count is the smallest k whose
    leading k eigenvalues hold the share (to within 1e-9 of Σλ, so that an exact split
    is not lost to rounding). A zero factor has no spectrum: no fractions, all counts 0.
    """
    if max_components < 1:
        raise ValueError(f"max_components: {max_components} must be at least 1")
    n, d = factor.shape
    gram = _gram(factor)
    lam = np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, None)
    if lam.size == 0 or lam[0] <= 0:
        return Spectrum(np.zeros(0), 0.0, 0, 0, 0, 0, n)
    lam = lam[lam > lam[0] * max(n, d) * np.finfo(np.float64).eps]
    fractions = lam / lam.sum()
    cumulative = np.cumsum(fractions)

    def count(share: float) -> int:
        return min(int(np.searchsorted(cumulative, share - 1e-9)) + 1, lam.size)

    return Spectrum(fractions[:max_components], _ratio(gram), count(0.5), count(0.9),
                    count(0.99), int(lam.size), n)
