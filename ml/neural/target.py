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
