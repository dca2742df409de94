"""Metrics: batch logging and (downsampled) series reads."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Path, Query, status

from core.store.metrics import Series, insert_points, read_series, summarize_keys
from server.deps import CurrentAccess, RunId, SessionDep, run_or_404, run_to_write
from server.schemas import (
    MAX_BATCH_POINTS,
    MetricBatch,
    MetricBatchResult,
    MetricKey,
    SeriesPublic,
)
from server.strict import api_router, body_limit

router = api_router(prefix="/api/runs/{run_id}/metrics", tags=["metrics"])
series_router = api_router(prefix="/api/runs/{run_id}/series", tags=["metrics"])

MAX_POINT_BYTES = 512
"""Room for one point as an encoder writes it: the longest (a 128-character key, a
10-digit step, two 17-digit floats with 3-digit exponents) is 235 bytes compact and 301
indented by four spaces."""
MAX_BATCH_BYTES = MAX_BATCH_POINTS * MAX_POINT_BYTES
"""A batch's body cap (5,000 KiB): the largest batch fits it however it is written."""


@router.post("")
@body_limit(MAX_BATCH_BYTES)
def log_batch(
    run_id: RunId, body: MetricBatch, session: SessionDep, access: CurrentAccess
) -> MetricBatchResult:
    """Log many points at once (the run's owner or an admin). The batch is validated
    whole: one bad point rejects it (422 naming its index) and nothing of it is stored.
    Re-sent (key, step) pairs are ignored, so retries are safe."""
    run_to_write(session, run_id, access, "log metrics to")
    insert_points(session, run_id, [(p.key, p.step, p.value, p.wall_time) for p in body.points])
    session.commit()
    return MetricBatchResult(accepted=len(body.points))


@router.get("")
def keys(run_id: RunId, session: SessionDep, access: CurrentAccess) -> list[MetricKey]:
    run_or_404(session, run_id, access)
    return [MetricKey(**k) for k in summarize_keys(session, run_id)]


@series_router.get("")
def all_series(
    run_id: RunId,
    session: SessionDep,
    access: CurrentAccess,
    key: Annotated[list[str] | None, Query(max_length=200)] = None,
    max_points: Annotated[int, Query(ge=2, le=100_000)] = 2000,
) -> list[SeriesPublic]:
    """Every series of the run (or the ``key`` ones, repeatable) in one response, each
    reduced like ``GET /metrics/{key}``: what a dashboard draws, in one round trip."""
    run_or_404(session, run_id, access)
    known = [k["key"] for k in summarize_keys(session, run_id)]
    if key is not None:
        missing = sorted(set(key) - set(known))
        if missing:
            raise HTTPException(status.HTTP_404_NOT_FOUND,
                                f"key: run {run_id} has no metric {missing[0]!r}")
        wanted = set(key)
        known = [k for k in known if k in wanted]
    return [_public(read_series(session, run_id, k, max_points=max_points)) for k in known]


def _public(s: Series) -> SeriesPublic:
    return SeriesPublic(key=s.key, total=s.total, downsampled=s.downsampled, steps=s.steps,
                        values=s.values, wall_times=s.wall_times)


@router.get("/{key:path}")
def series(
    run_id: RunId,
    key: Annotated[str, Path(min_length=1, max_length=128)],
    session: SessionDep,
    access: CurrentAccess,
    max_points: Annotated[int, Query(ge=2, le=100_000)] = 2000,
) -> SeriesPublic:
    """One series; longer than ``max_points`` it comes back min/max-decimated in SQL
    (each bucket keeps its lowest and highest point, so spikes survive)."""
    run_or_404(session, run_id, access)
    return _public(read_series(session, run_id, key, max_points=max_points))
