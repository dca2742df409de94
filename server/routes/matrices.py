"""Similarity matrices of a run's targets, without sending N×N numbers: an exact
block-mean overview in one shared order, and exact sub-blocks for zooming in.

Which matrix a name means is decided here; how it is drawn is
:func:`ml.neural.overview.view` over a matrix source. S_CNN overviews are what a worker
stored (:data:`ml.artifacts.S_CNN_OVERVIEW`): a run that lacks one at the asked size gets
it from a small job (``neuroreg.s_cnn_overview``) and the page is told to come back (202).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from core.access import Access
from core.queue import send
from core.store.artifacts import get_artifact, list_artifacts, resolve
from core.store.runs import find_run
from ml import artifacts
from ml.neural.overview import (
    Difference,
    FactorMatrix,
    Matrix,
    OverviewMissing,
    TapMatrix,
    View,
    edges_of,
    extreme_pairs,
    leading_order,
    view,
)
from ml.neural.target import SPECTRUM_COMPONENTS, SimilarityTarget, spectrum
from ml.regularize.cnn_features import SCnnOverviews, tap_features
from ml.regularize.targets import REGISTRY, source_kind
from ml.stored import StoredFileError
from server.deps import CurrentAccess, RunId, SessionDep, SettingsDep, run_or_404
from server.schemas import SimilarPairs, TargetSpectrum
from server.strict import CONFLICT, api_router, invalid

router = api_router(prefix="/api/runs/{run_id}/matrices", tags=["matrices"])
MAX_BLOCK = 600  # cells per side of an exact block
ASK_AGAIN_S = 120.0  # a pending overview job not answered by then is sent again


class MatrixView(BaseModel):
    """An overview (``edges``: block means between consecutive edges) or an exact block
    (``rows``, ``cols``: [start, stop) positions in the shared order)."""

    n: int = Field(description="stimuli (the matrix is n × n)")
    exact: bool = Field(description="every cell is one S_ij (not a block mean)")
    z: list[list[float]]
    edges: list[int] | None = None
    rows: list[int] | None = None
    cols: list[int] | None = None
    image_ids: list[list[int]] | None = Field(
        default=None, description="a target's exact block: the image ids of its rows and "
                                  "columns")


class Pending(BaseModel):
    pending: bool = True
    detail: str


PENDING: dict[int | str, dict[str, Any]] = {202: {
    "model": Pending,
    "description": "a worker is computing this overview; ask again after Retry-After s"}}


class _Held:
    """What views read from artifacts, by (path, mtime): least recently used dropped first,
    so that all of it takes at most ``budget`` bytes (``NEUROREG_MAX_VIEW_BYTES``), which
    is also the most one file may decode to. Loads are one at a time, so two first views
    never hold two files' worth of arrays at once."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[str, float], tuple[Any, int]] = OrderedDict()
        self._lock, self._loading = threading.Lock(), threading.Lock()

    def sizes(self) -> list[int]:
        """The bytes of each thing held, oldest first."""
        with self._lock:
            return [n for _, n in self._items.values()]

    def get(self, path: str, mtime: float, budget: int,
            load: Callable[[str, int], tuple[Any, int]]) -> Any:
        key = (path, mtime)
        with self._loading:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key][0]
            try:
                value, size = load(path, budget)
            except StoredFileError as exc:  # malformed, a pickle, or over the budget
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
            with self._lock:
                self._items[key] = (value, size)
                while sum(n for _, n in self._items.values()) > budget and len(self._items) > 1:
                    self._items.popitem(last=False)
            return value


_held = _Held()


def _nbytes(*arrays: np.ndarray) -> int:
    return sum(a.nbytes for a in arrays)


def _artifact(path: str) -> str:
    """How a message names the artifact stored at ``path`` (``<run>/<name>``)."""
    return f"run {Path(path).parent.name}'s {Path(path).name}"


def _read_target(path: str, budget: int) -> tuple[tuple[SimilarityTarget, np.ndarray], int]:
    target = SimilarityTarget.load(path, max_bytes=budget, what=_artifact(path))
    order = leading_order(target.factor)
    return (target, order), _nbytes(target.factor, target.images, target.image_ids, order)


def _read_overviews(path: str, budget: int) -> tuple[SCnnOverviews, int]:
    stored = SCnnOverviews.load(path, max_bytes=budget, what=_artifact(path))
    return stored, _nbytes(*stored.means, *(a for zs, e in stored.sizes.values()
                                           for a in (*zs, e)))


def _load(path: str, mtime: float, budget: int) -> tuple[SimilarityTarget, np.ndarray]:
    held: tuple[SimilarityTarget, np.ndarray] = _held.get(path, mtime, budget, _read_target)
    return held


def _stored(path: str, mtime: float, budget: int) -> SCnnOverviews:
    held: SCnnOverviews = _held.get(path, mtime, budget, _read_overviews)
    return held


@lru_cache(maxsize=4)
def _network(path: str, mtime: float, taps: tuple[int, ...], target_path: str,
             budget: int) -> Any:
    """The run's network at all its taps over the target's stimuli, for exact blocks."""
    return tap_features(path, taps, _load(target_path, Path(target_path).stat().st_mtime,
                                          budget)[0].images, batch=256)


_asked: dict[tuple[int, int, float], float] = {}  # (run, size, model mtime) → when


def _file(session: Any, settings: Any, run_id: int, name: str) -> tuple[str, float, int]:
    """(path, mtime) of the run's artifact ``name`` — the cache key of what is read from
    it — and the bytes a view may decode it to; or 404."""
    row = get_artifact(session, run_id, name)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} has no {name}")
    path = resolve(settings.artifacts, row.path)
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id}'s {name} is missing "
                                                       "on disk")
    return str(path), path.stat().st_mtime, settings.max_view_bytes


def _target(session: Any, settings: Any, run_id: int, name: str
            ) -> tuple[SimilarityTarget, np.ndarray]:
    return _load(*_file(session, settings, run_id, artifacts.target(name)))


def _target_names(session: Any, run_id: int) -> list[str]:
    return [k for a in list_artifacts(session, run_id)
            if (k := artifacts.target_kind(a.name)) is not None]


def _order(session: Any, settings: Any, run_id: int) -> np.ndarray:
    """One order for every target of the run: the neural-model target's, when present."""
    kinds = _target_names(session, run_id)
    if not kinds:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} has no targets")
    ref = "neural-model" if "neural-model" in kinds else kinds[0]
    return _target(session, settings, run_id, ref)[1]


def _target_readable(session: Any, access: Access, run: Any) -> bool:
    """Whether the caller may read the run a train run's matrices compare it with (its
    target's run, which may have moved to another project)."""
    target = find_run(session, run.input_run_id) if run.input_run_id else None
    return target is None or access.can_read(target)


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
def names(run_id: RunId, session: SessionDep, settings: SettingsDep, access: CurrentAccess
          ) -> list[str]:
    """The matrices a run can show: a similarity run's targets; for a train run, its
    target, S_CNN mixed by its final γ (``cnn``, Eq. 10) and S_CNN of each tapped layer
    (``cnn-<k>``) over the same stimuli."""
    run = run_or_404(session, run_id, access)
    if run.kind == "train":
        if not _target_readable(session, access, run):
            return []
        try:
            n_taps = len(_train_views(session, run)[2])
        except HTTPException:
            return []
        mixed = len((run.result or {}).get("gamma") or []) == n_taps
        return ["target", *(["cnn"] if mixed else []), *(f"cnn-{k}" for k in range(n_taps))]
    return _target_names(session, run_id)


@lru_cache(maxsize=8)
def _pairs(path: str, mtime: float, budget: int, k: int) -> dict[str, Any]:
    target = _load(path, mtime, budget)[0]
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
def pairs(run_id: RunId, name: str, session: SessionDep, settings: SettingsDep,
          access: CurrentAccess,
          k: Annotated[int, Query(ge=1, le=12)] = 3) -> SimilarPairs:
    """The paper's Fig. 2 from a similarity run's target: the ``k`` most and least similar
    pairs of distinct stimuli over all i < j, with their images (grey levels 0–255)."""
    run_or_404(session, run_id, access)
    return SimilarPairs.model_validate(
        _pairs(*_file(session, settings, run_id, artifacts.target(name)), k))


@lru_cache(maxsize=8)
def _spectrum(path: str, mtime: float, budget: int, max_components: int) -> dict[str, Any]:
    found = spectrum(_load(path, mtime, budget)[0].factor, max_components)
    return {"n": found.n, "rank": found.rank, "participation_ratio": found.participation_ratio,
            "components_50": found.components_50, "components_90": found.components_90,
            "components_99": found.components_99, "fractions": found.fractions.tolist()}


@router.get("/{name}/spectrum")
def target_spectrum(run_id: RunId, name: str, session: SessionDep, settings: SettingsDep,
                    access: CurrentAccess, max_components: Annotated[
                        int, Query(ge=1, le=1000)] = SPECTRUM_COMPONENTS) -> TargetSpectrum:
    """A similarity run's target's eigenspectrum: S's leading eigenvalues as fractions of
    variance (the first ``max_components``), its participation ratio and the components
    holding 50 / 90 / 99 % of the variance, from the factor's singular values."""
    run_or_404(session, run_id, access)
    return TargetSpectrum.model_validate(
        _spectrum(*_file(session, settings, run_id, artifacts.target(name)), max_components))


@router.get("/{name}", responses={**CONFLICT, **PENDING}, response_model=MatrixView,
            response_model_exclude_none=True)
def matrix(
    run_id: RunId, name: str, session: SessionDep, settings: SettingsDep, access: CurrentAccess,
    request: Request,
    size: Annotated[int, Query(ge=2, le=400)] = 200,
    rows: Annotated[str | None, Query(pattern=r"^\d+:\d+$")] = None,
    cols: Annotated[str | None, Query(pattern=r"^\d+:\d+$")] = None,
    minus: Annotated[str | None, Query(max_length=64)] = None,
) -> Any:
    """The overview (``size``² exact block means) or, with ``rows``/``cols`` ("a:b"
    positions in the shared order, at most 600 each), the exact sub-block. ``minus``
    names another target of the run for a difference map (``target`` for a train run's
    S_CNN − S_target)."""
    run = run_or_404(session, run_id, access)
    if run.kind == "train":
        if not _target_readable(session, access, run):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run.id}'s target run is in "
                                "a project you may not read")
        source, order, ids = _train_matrix(session, settings, run, name, minus)
    else:
        source, order, ids = _target_matrix(session, settings, run_id, name, minus)
    spans = _block(rows, cols, len(order)) if rows is not None or cols is not None else None
    try:
        drawn = view(source, order, size=size, **({"rows": spans[0], "cols": spans[1]}
                                                   if spans else {}))
    except OverviewMissing as missing:
        _ask(request, session, settings, run, missing.size)
        return JSONResponse(Pending(detail=f"a worker is computing this run's S_CNN overview "
                                           f"({missing.size} blocks a side); ask again "
                                           "shortly").model_dump(),
                            status.HTTP_202_ACCEPTED, headers={"Retry-After": "2"})
    return _body(drawn, ids)


def _body(drawn: View, ids: Any) -> MatrixView:
    z = np.round(np.asarray(drawn.z, np.float64), 4).tolist()  # float64: 0.1234, not float32's
    if drawn.edges is not None:  # 0.12340000271797180 (which doubled an overview to 800 KB)
        return MatrixView(n=drawn.n, exact=drawn.exact, z=z, edges=drawn.edges.tolist())
    assert drawn.rows is not None and drawn.cols is not None
    return MatrixView(n=drawn.n, exact=True, z=z, rows=[drawn.rows.start, drawn.rows.stop],
                      cols=[drawn.cols.start, drawn.cols.stop],
                      image_ids=None if ids is None else [ids[drawn.rows].tolist(),
                                                          ids[drawn.cols].tolist()])


def _ask(request: Request, session: Any, settings: Any, run: Any, size: int) -> None:
    """Send the small job that stores ``run``'s S_CNN overview at ``size``, unless it was
    sent lately (the page asks every few seconds until it is there)."""
    key = (run.id, size, _file(session, settings, run.id, artifacts.MODEL)[1])
    now = time.monotonic()
    if now - _asked.get(key, -ASK_AGAIN_S) < ASK_AGAIN_S:
        return
    for old in [k for k, t in _asked.items() if now - t >= ASK_AGAIN_S]:
        del _asked[old]
    send(request.app.state.celery, task="neuroreg.s_cnn_overview", queue="cpu",
         args=[run.id, size])
    _asked[key] = now


def _target_matrix(session: Any, settings: Any, run_id: int, name: str, minus: str | None
                   ) -> tuple[Matrix, np.ndarray, np.ndarray]:
    """A similarity run's target ``name`` (minus another of its targets), in the run's
    shared order, with the image ids of its stimuli."""
    target = _target(session, settings, run_id, name)[0]
    order = _order(session, settings, run_id)
    source: Matrix = FactorMatrix(target.factor)
    if minus:
        other = _target(session, settings, run_id, minus)[0]
        if len(other) != len(target):
            raise HTTPException(status.HTTP_409_CONFLICT, "targets cover different stimuli")
        source = Difference(source, FactorMatrix(other.factor))
    if len(target) != len(order):
        raise HTTPException(status.HTTP_409_CONFLICT, "targets cover different stimuli")
    return source, order, target.image_ids[order]


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


def _train_matrix(session: Any, settings: Any, run: Any, name: str, minus: str | None
                  ) -> tuple[Matrix, np.ndarray, np.ndarray | None]:
    """S_target (in the target run's order), S_CNN of tap k of the run's network, or the
    γ-weighted S_CNN of Eq. 10; ``minus=target`` gives S_CNN − S_target."""
    target_run, target_name, taps = _train_views(session, run)
    if minus not in (None, "target") or (minus and name == "target"):
        raise invalid(["query", "minus"],
                      "minus: a train run's S_CNN maps can subtract only 'target'")
    if name == "target":
        return _target_matrix(session, settings, target_run, target_name, None)
    weights = _cnn_weights(run, name, len(taps))
    model = _file(session, settings, run.id, artifacts.MODEL)[:2]
    stimuli = _file(session, settings, target_run, artifacts.target("neural-model"))
    order = _load(*stimuli)[1]  # the stimuli and order of every view of this run
    n = len(order)
    stored = _stored_overviews(session, settings, run.id, len(taps), n)
    source: Matrix = TapMatrix(
        n, weights, stored.means if stored else [],
        {s: (z, e) for s, (z, e) in (stored.sizes if stored else {}).items()
         if np.array_equal(e, edges_of(n, s))},
        # the network is loaded on the first exact block
        features=lambda idx: _network(*model, taps, stimuli[0], stimuli[2])(idx))
    if minus:
        target = _target(session, settings, target_run, target_name)[0]
        source = Difference(source, FactorMatrix(target.factor))
    return source, order, None


def _stored_overviews(session: Any, settings: Any, run_id: int, n_taps: int, n: int
                      ) -> SCnnOverviews | None:
    """The run's stored overviews, if they are of its taps over these stimuli."""
    if get_artifact(session, run_id, artifacts.S_CNN_OVERVIEW) is None:
        return None
    stored = _stored(*_file(session, settings, run_id, artifacts.S_CNN_OVERVIEW))
    return stored if len(stored.taps) == n_taps and stored.n == n else None


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
