"""A run's log: read it (following it while the run runs), and an external run's script
appending to it."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import HTTPException, Query, status

from core.store.logs import Line, append_lines, dropped_of, marker_line, next_seq, read_lines
from core.store.models import MAX_ID
from server.deps import (
    CurrentAccess,
    RunId,
    SessionDep,
    SettingsDep,
    run_or_404,
    run_to_write,
)
from server.schemas import (
    LogBatch,
    LogBatchResult,
    LogDropped,
    LogLinePublic,
    LogPage,
)
from server.strict import CONFLICT, api_router, body_limit

router = api_router(prefix="/api/runs/{run_id}/logs", tags=["logs"])

MAX_LOG_BATCH_BYTES = 16 * 1024**2
"""A log batch's body cap: four times a run's default log bound (NEUROREG_LOG_MAX_BYTES,
4 MiB), room for JSON's escapes and each line's fields; past the run's bound lines are
dropped anyway. (5,000 lines of 16 KiB each would be 80 MiB: sent as several batches.)"""


@router.get("")
def read(
    run_id: RunId,
    session: SessionDep,
    settings: SettingsDep,
    access: CurrentAccess,
    after: Annotated[int, Query(ge=-1, le=MAX_ID, description="the last seq you have "
                                "(-1: from the start)")] = -1,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> LogPage:
    """Up to ``limit`` lines after seq ``after``, and whether the run still runs (a page
    follows with ``after=next_after`` until it does not). Past the run's bound,
    ``dropped`` says how much was dropped."""
    run = run_or_404(session, run_id, access)
    lines = read_lines(session, run_id, after=after, limit=limit)
    dropped = dropped_of(session, run_id)
    marker = marker_line(session, run_id) if dropped else None
    return LogPage(
        lines=[LogLinePublic(seq=ln.seq, stream=ln.stream, time=ln.time, line=ln.line)
               for ln in lines],
        next_after=lines[-1].seq if lines else after, next_seq=next_seq(session, run_id),
        running=not run.status.finished, status=run.status, bytes=run.log_bytes,
        max_bytes=settings.log_max_bytes,
        dropped=LogDropped(lines=dropped.lines, bytes=dropped.bytes, line=marker.line)
        if dropped and marker else None)


@router.post("", responses=CONFLICT)
@body_limit(MAX_LOG_BATCH_BYTES)
def append(run_id: RunId, body: LogBatch, session: SessionDep, settings: SettingsDep,
           access: CurrentAccess) -> LogBatchResult:
    """Append lines to an external run while it runs (its owner or an admin). Each line's
    ``seq`` is its place: a re-sent seq is ignored, so retries are safe. Past the run's
    bound (``NEUROREG_LOG_MAX_BYTES``) lines are dropped and counted."""
    run = run_to_write(session, run_id, access, "append to the log of")
    if run.kind != "external":
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"run {run_id} is a {run.kind} run; its worker writes its log")
    if run.status.finished:
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id} is already {run.status}")
    return append_batch(session, settings, run_id, body)


def append_batch(session: SessionDep, settings: SettingsDep, run_id: int, body: LogBatch
                 ) -> LogBatchResult:
    """Store ``body``'s lines (a line without a time: now) up to the run's bound, and
    commit: what an external run's script and an import send alike."""
    now = time.time()
    done = append_lines(session, run_id, [
        Line(ln.seq, ln.stream, now if ln.time is None else ln.time, ln.line)
        for ln in body.lines], max_bytes=settings.log_max_bytes)
    session.commit()
    return LogBatchResult(stored=done.stored, skipped=done.skipped, dropped=done.dropped)
