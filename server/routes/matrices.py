"""Similarity matrices of a run's targets, without sending N×N numbers: an exact
block-mean overview in one shared order, and exact sub-blocks for zooming in."""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import HTTPException, Query, status

from ml import artifacts
from ml.neural.overview import (
    block,
    extreme_pairs,
    feature_blocks,
    feature_overviews,
    leading_order,
    mix,
    pooled,
)
from ml.neural.target import SimilarityTarget
from ml.regularize.cnn_features import load_s_cnn_overview, tap_features
from ml.regularize.targets import REGISTRY, source_kind
from server.deps import CurrentUser, RunId, SessionDep, SettingsDep, run_or_404
from server.store.artifacts import get_artifact, list_artifacts, resolve
from server.strict import CONFLICT, api_router, invalid

router = api_router(prefix="/api/runs/{run_id}/matrices", tags=["matrices"])
MAX_BLOCK = 600  # cells per side of an exact block


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> tuple[SimilarityTarget, np.ndarray]:
    target = SimilarityTarget.load(path)
    return target, leading_order(target.factor)


def _file(session: Any, settings: Any, run_id: int, name: str) -> tuple[str, float]:
    """(path, mtime) of the run's artifact ``name`` — the cache key of what is read from
    it — or 404."""
    row = get_artifact(session, run_id, name)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} has no {name}")
    path = resolve(settings.artifacts, row.path)
    return str(path), Path(path).stat().st_mtime


def _target(session: Any, settings: Any, run_id: int, name: str
            ) -> tuple[SimilarityTarget, np.ndarray]:
    return _load(*_file(session, settings, run_id, artifacts.target(name)))


def _order(session: Any, settings: Any, run_id: int) -> np.ndarray:
    """One order for every target of the run: the neural-model target's, when present."""
    kinds = [k for a in list_artifacts(session, run_id)
             if (k := artifacts.target_kind(a.name)) is not None]
    if not kinds:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} has no targets")
    ref = "neural-model" if "neural-model" in kinds else kinds[0]
    return _target(session, settings, run_id, ref)[1]


_CNN_LOCK = threading.Lock()  # one S_CNN computation at a time: a page asks for several


def _cnn_overviews(session: Any, settings: Any, run_id: int, model: tuple[str, float],
                   taps: tuple[int, ...], stimuli: str, size: int
                   ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The overview (and features' mean) of every tap of the run's network over the
    target's stimuli, in the target's order: the worker's (:data:`ml.artifacts.S_CNN_OVERVIEW`, made
    when training ended) when it has this size, else computed here once per (model,
    size) — the requests of one page wait for the first instead of each running the
    network."""
    if get_artifact(session, run_id, artifacts.S_CNN_OVERVIEW) is not None:
        stored_taps, n, views = _stored_overviews(*_file(session, settings, run_id,
                                                         artifacts.S_CNN_OVERVIEW))
        if len(stored_taps) == len(taps) and len(views[0][1]) - 1 == min(size, n):
            return list(views)
    with _CNN_LOCK:
        return _cnn_overviews_cached(*model, taps, stimuli, size)


@lru_cache(maxsize=16)
def _stored_overviews(path: str, mtime: float) -> Any:
    return load_s_cnn_overview(path)


@lru_cache(maxsize=8)
def _cnn_overviews_cached(path: str, mtime: float, taps: tuple[int, ...], target_path: str,
                          size: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    target, order = _load(target_path, Path(target_path).stat().st_mtime)
    return feature_overviews(_tap_features(path, mtime, taps, target_path), len(target),
                             order, size)


@lru_cache(maxsize=8)
def _tap_features(path: str, mtime: float, taps: tuple[int, ...], target_path: str) -> Any:
    """The run's network at all its taps over the target's stimuli (see ml.regularize)."""
    target, _ = _load(target_path, Path(target_path).stat().st_mtime)
    return tap_features(path, taps, target.images, batch=256)


def _train_views(session: Any, run: Any) -> tuple[int, str, tuple[int, ...]]:
    """A train run's target run, the target it was trained toward, and its taps."""
    if run.input_run_id is None or get_artifact(session, run.id, artifacts.MODEL) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"run {run.id} has no {artifacts.MODEL} and target run to compare")
    target = run.config.get("target", "none")
    name = source_kind(target) if target in REGISTRY else "neural-model"
    taps = run.config.get("taps") or range(len((run.result or {}).get("layers", [])) or 5)
    return run.input_run_id, name, tuple(int(t) for t in taps)


@router.get("")
def names(run_id: RunId, session: SessionDep, settings: SettingsDep, _: CurrentUser) -> list[str]:
    """The matrices a run can show: a similarity run's targets; for a train run, its
    target, S_CNN mixed by its final γ (``cnn``, Eq. 10) and S_CNN of each tapped layer
    (``cnn-<k>``) over the same stimuli."""
    run = run_or_404(session, run_id)
    if run.kind == "train":
        try:
            n_taps = len(_train_views(session, run)[2])
        except HTTPException:
            return []
        mixed = len((run.result or {}).get("gamma") or []) == n_taps
        return ["target", *(["cnn"] if mixed else []), *(f"cnn-{k}" for k in range(n_taps))]
    return [k for a in list_artifacts(session, run_id)
            if (k := artifacts.target_kind(a.name)) is not None]


@lru_cache(maxsize=8)
def _pairs(path: str, mtime: float, k: int) -> dict[str, Any]:
    target = _load(path, mtime)[0]
    found = extreme_pairs(target.factor, k)

    def image(i: int) -> list[list[int]]:
        pixels: list[list[int]] = np.round(
            np.asarray(target.images[i, 0], np.float64) * 255).astype(np.uint8).tolist()
        return pixels

    return {"n": len(target), **{side: [
        {"i": i, "j": j, "s": round(s, 4),
         "image_ids": [int(target.image_ids[i]), int(target.image_ids[j])],
         "images": [image(i), image(j)]} for i, j, s in pairs]
        for side, pairs in found.items()}}


@router.get("/{name}/pairs")
def pairs(run_id: RunId, name: str, session: SessionDep, settings: SettingsDep, _: CurrentUser,
          k: Annotated[int, Query(ge=1, le=12)] = 3) -> dict[str, Any]:
    """The paper's Fig. 2 from a similarity run's target: the ``k`` most and least similar
    pairs of distinct stimuli over all i < j, with their images (grey levels 0–255)."""
    run_or_404(session, run_id)
    return _pairs(*_file(session, settings, run_id, artifacts.target(name)), k)


@router.get("/{name}", responses=CONFLICT)
def matrix(
    run_id: RunId, name: str, session: SessionDep, settings: SettingsDep, _: CurrentUser,
    size: Annotated[int, Query(ge=2, le=400)] = 200,
    rows: Annotated[str | None, Query(pattern=r"^\d+:\d+$")] = None,
    cols: Annotated[str | None, Query(pattern=r"^\d+:\d+$")] = None,
    minus: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """The overview (``size``² exact block means) or, with ``rows``/``cols`` ("a:b"
    positions in the shared order, at most 600 each), the exact sub-block. ``minus``
    names another target of the run for a difference map (``target`` for a train run's
    S_CNN − S_target)."""
    run = run_or_404(session, run_id)
    if run.kind == "train":
        return _train_matrix(session, settings, run, name, size, rows, cols, minus)
    return _target_matrix(session, settings, run_id, name, size, rows, cols, minus)


def _target_matrix(session: Any, settings: Any, run_id: int, name: str, size: int,
                   rows: str | None, cols: str | None, minus: str | None) -> dict[str, Any]:
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
        return _overview(n, edges, z)
    rs, cs = _block(rows, cols, n)
    z = block(target.factor, order, rs, cs)
    if other is not None:
        z = z - block(other.factor, order, rs, cs)
    return {**_exact(n, rs, cs, z), "image_ids": [target.image_ids[order[rs]].tolist(),
                                               target.image_ids[order[cs]].tolist()]}


def _overview(n: int, edges: np.ndarray, z: np.ndarray) -> dict[str, Any]:
    return {"n": n, "exact": bool(np.all(np.diff(edges) == 1)), "edges": edges.tolist(),
            "z": _cells(z)}


def _exact(n: int, rs: slice, cs: slice, z: np.ndarray) -> dict[str, Any]:
    return {"n": n, "exact": True, "rows": [rs.start, rs.stop], "cols": [cs.start, cs.stop],
            "z": _cells(z)}


def _cells(z: Any) -> list[list[float]]:
    """4 decimals as JSON: rounded in float64, so 0.1234 is sent as 0.1234 and not as
    float32's 0.12340000271797180 (which doubled a 200×200 overview to 800 KB)."""
    return np.round(np.asarray(z, dtype=np.float64), 4).tolist()  # type: ignore[no-any-return]


def _block(rows: str | None, cols: str | None, n: int) -> tuple[slice, slice]:
    """``rows``/``cols`` ("a:b", default all) clipped to the n stimuli, or 422."""
    def span(text: str | None) -> slice:
        a, b = (int(v) for v in (text or f"0:{n}").split(":"))
        return slice(max(a, 0), min(b, n))

    rs, cs = span(rows), span(cols)
    if not all(0 < s.stop - s.start <= MAX_BLOCK for s in (rs, cs)):
        raise invalid(["query", "rows" if not 0 < rs.stop - rs.start <= MAX_BLOCK else "cols"],
                      f"rows/cols: a non-empty block of at most {MAX_BLOCK} per side")
    return rs, cs


def _cnn_weights(run: Any, name: str, n_taps: int) -> list[float]:
    """The weight of each tap's S in a view: ``cnn-k`` is tap k alone; ``cnn`` is Eq. 10's
    S_CNN, the taps mixed by the run's final γ."""
    if name.startswith("cnn-") and name[4:].isdigit() and int(name[4:]) < n_taps:
        return [float(k == int(name[4:])) for k in range(n_taps)]
    gamma = (run.result or {}).get("gamma") or []
    if name == "cnn" and len(gamma) == n_taps:
        return [float(g) for g in gamma]
    raise HTTPException(status.HTTP_404_NOT_FOUND,
                        f"name: use target, cnn (γ-weighted) or cnn-0..cnn-{n_taps - 1}")


def _train_matrix(session: Any, settings: Any, run: Any, name: str, size: int,
                  rows: str | None, cols: str | None, minus: str | None) -> dict[str, Any]:
    """S_target (in the target run's order), S_CNN of tap k of the run's network, or the
    γ-weighted S_CNN of Eq. 10; ``minus=target`` gives S_CNN − S_target."""
    target_run, target_name, taps = _train_views(session, run)
    if minus not in (None, "target") or (minus and name == "target"):
        raise invalid(["query", "minus"],
                      "minus: a train run's S_CNN maps can subtract only 'target'")
    if name == "target":
        return _target_matrix(session, settings, target_run, target_name, size, rows, cols,
                              None)
    weights = _cnn_weights(run, name, len(taps))
    model = _file(session, settings, run.id, artifacts.MODEL)
    stimuli = _file(session, settings, target_run, artifacts.target("neural-model"))
    order = _load(*stimuli)[1]  # the stimuli and order of every view of this run
    n = len(order)
    target = _target(session, settings, target_run, target_name)[0] if minus else None
    views = _cnn_overviews(session, settings, run.id, model, taps, stimuli[0], size)
    if rows is None and cols is None:
        z = mix([v[0] for v in views], weights)
        if target is not None:
            z = z - pooled(target.factor, order, size)[0]
        return _overview(n, views[0][1], z)
    rs, cs = _block(rows, cols, n)
    z = feature_blocks(_tap_features(*model, taps, stimuli[0]), order, rs, cs,
                       [v[2] for v in views], weights)
    if target is not None:
        z = z - block(target.factor, order, rs, cs)
    return _exact(n, rs, cs, z)
