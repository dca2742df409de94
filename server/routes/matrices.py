"""Similarity matrices of a run's targets, without sending N×N numbers: an exact
block-mean overview in one shared order, and exact sub-blocks for zooming in."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, status

from ml.neural.overview import block, leading_order, pooled
from ml.neural.target import SimilarityTarget
from server.deps import CurrentUser, SessionDep, SettingsDep, run_or_404
from server.store.artifacts import get_artifact, list_artifacts, resolve

router = APIRouter(prefix="/api/runs/{run_id}/matrices", tags=["matrices"])
MAX_BLOCK = 600  # cells per side of an exact block


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> tuple[SimilarityTarget, np.ndarray]:
    target = SimilarityTarget.load(path)
    return target, leading_order(target.factor)


def _target(session: Any, settings: Any, run_id: int, name: str
            ) -> tuple[SimilarityTarget, np.ndarray]:
    row = get_artifact(session, run_id, f"target-{name}.npz")
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} has no target {name!r}")
    path = resolve(settings.artifacts, row.path)
    return _load(str(path), Path(path).stat().st_mtime)


def _order(session: Any, settings: Any, run_id: int) -> np.ndarray:
    """One order for every target of the run: the neural-model target's, when present."""
    names = [a.name for a in list_artifacts(session, run_id) if a.name.startswith("target-")]
    ref = "neural-model" if "target-neural-model.npz" in names else names[0][7:-4]
    return _target(session, settings, run_id, ref)[1]


@router.get("")
def names(run_id: int, session: SessionDep, _: CurrentUser) -> list[str]:
    run_or_404(session, run_id)
    return [a.name[7:-4] for a in list_artifacts(session, run_id)
            if a.name.startswith("target-") and a.name.endswith(".npz")]


@router.get("/{name}")
def matrix(
    run_id: int, name: str, session: SessionDep, settings: SettingsDep, _: CurrentUser,
    size: Annotated[int, Query(ge=2, le=400)] = 200,
    rows: Annotated[str | None, Query(pattern=r"^\d+:\d+$")] = None,
    cols: Annotated[str | None, Query(pattern=r"^\d+:\d+$")] = None,
    minus: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """The overview (``size``² exact block means) or, with ``rows``/``cols`` ("a:b"
    positions in the shared order, at most 600 each), the exact sub-block. ``minus``
    names another target of the run for a difference map."""
    run_or_404(session, run_id)
    target = _target(session, settings, run_id, name)[0]
    order = _order(session, settings, run_id)
    other = _target(session, settings, run_id, minus)[0] if minus else None
    n = len(order)
    if len(target) != n or (other is not None and len(other) != n):
        raise HTTPException(status.HTTP_409_CONFLICT, "targets cover different stimuli")
    if rows is None and cols is None:
        z, edges = pooled(target.factor, order, size)
        if other is not None:
            z = z - pooled(other.factor, order, size)[0]
        return {"n": n, "exact": bool(np.all(np.diff(edges) == 1)), "edges": edges.tolist(),
                "z": np.round(z, 4).tolist()}
    r0, r1 = (int(v) for v in (rows or f"0:{n}").split(":"))
    c0, c1 = (int(v) for v in (cols or f"0:{n}").split(":"))
    r0, r1, c0, c1 = max(r0, 0), min(r1, n), max(c0, 0), min(c1, n)
    if not (r0 < r1 and c0 < c1) or r1 - r0 > MAX_BLOCK or c1 - c0 > MAX_BLOCK:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"rows/cols: a non-empty block of at most {MAX_BLOCK} per side")
    z = block(target.factor, order, slice(r0, r1), slice(c0, c1))
    if other is not None:
        z = z - block(other.factor, order, slice(r0, r1), slice(c0, c1))
    return {"n": n, "exact": True, "rows": [r0, r1], "cols": [c0, c1],
            "image_ids": [target.image_ids[order[r0:r1]].tolist(),
                          target.image_ids[order[c0:c1]].tolist()],
            "z": np.round(z, 4).tolist()}
