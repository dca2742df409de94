"""Metric points: idempotent batch writes and downsampled series reads."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from core.store import rollups
from core.store.models import Metric, MetricBucket
from core.store.runs import lock_run

# a (key, step, value, wall_time) tuple; wall_time None means "now"
Point = tuple[str, int, float, float | None]


_INSERT_SQLITE = (
    "INSERT OR IGNORE INTO metrics (run_id, key, step, value, wall_time) VALUES (?, ?, ?, ?, ?)"
)
# one statement per batch: arrays in, rows out (4-5x fewer round trips than executemany)
_INSERT_PG = (
    "INSERT INTO metrics (run_id, key, step, value, wall_time) "
    "SELECT %s, * FROM unnest(%s::varchar[], %s::int[], %s::float8[], %s::float8[]) "
    "ON CONFLICT DO NOTHING"
)


def insert_points(session: Session, run_id: int, points: Sequence[Point]) -> None:
    """Insert points; a (run, key, step) that already exists is left as it is.

    The one write path for metrics: the API's batch endpoint and the worker's
    recorder both call it, so re-sent points are no-ops everywhere. It talks to the
    driver directly — the ORM's per-row bookkeeping cost 4x on SQLite (bench/ingest).

    The run is locked first (:func:`~core.store.runs.lock_run`): a rollup is recounted
    from the points its writer sees, and on PostgreSQL two batches into one bucket at once
    each saw only their own, the later upsert losing the other's points.
    """
    if not points:
        return
    lock_run(session, run_id)
    now = time.time()
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        keys, steps, values, times = zip(*points, strict=True)
        conn.exec_driver_sql(
            _INSERT_PG,
            (
                run_id,
                list(keys),
                list(steps),
                list(values),
                [now if t is None else t for t in times],
            ),
        )
    else:
        conn.exec_driver_sql(
            _INSERT_SQLITE,
            [(run_id, k, s, v, now if t is None else t) for k, s, v, t in points],
        )
    touched: dict[str, tuple[int, int]] = {}
    for k, s, _, _ in points:
        lo, hi = touched.get(k, (s, s))
        touched[k] = (min(lo, s), max(hi, s))
    rollups.refresh(conn, run_id, touched)


@dataclass(frozen=True)
class Series:
    key: str
    total: int
    steps: list[int]
    values: list[float]
    wall_times: list[float] | None

    @property
    def downsampled(self) -> bool:
        return len(self.steps) < self.total


_MINMAX_SQL = text(
    # one pass over the series, whatever plan the database picks: each bucket's lowest and
    # highest point (the earliest step among equal values). A join of the points with
    # their buckets' extremes was quadratic under PostgreSQL's plan for a freshly written
    # series (statistics of one row: a nested loop, 6,000 points × 1,000 buckets = 0.68 s)
    """
    SELECT step, value FROM (
        SELECT step, value,
               ROW_NUMBER() OVER (PARTITION BY (step - :lo) / :width
                                  ORDER BY value ASC, step ASC) AS lowest,
               ROW_NUMBER() OVER (PARTITION BY (step - :lo) / :width
                                  ORDER BY value DESC, step ASC) AS highest
        FROM metrics WHERE run_id = :run AND key = :key
    ) ranked
    WHERE lowest = 1 OR highest = 1
    ORDER BY step
    """
)


def read_series(session: Session, run_id: int, key: str, *, max_points: int) -> Series:
    """A series, reduced in SQL to at most ``max_points`` when longer.

    Reduction is min/max decimation: the steps are cut into ``max_points // 2``
    equal buckets and each bucket returns its minimum and its maximum point, so a
    one-step spike survives any amount of downsampling. Long series are reduced from
    their rollups (``core/store/rollups.py``), shorter ones from the raw points in
    SQL. Wall times are returned only for series that come back whole.
    """
    lo, hi, total = rollups.summary(session, run_id, key)
    if total <= max_points:
        rows: Sequence[Any] = session.execute(
            select(Metric.step, Metric.value, Metric.wall_time)
            .where(Metric.run_id == run_id, Metric.key == key)
            .order_by(Metric.step)
        ).all()
        return Series(key, total, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    buckets = max(1, max_points // 2)
    points = rollups.merged(session, run_id, key, lo=lo, hi=hi, groups=buckets)
    if points is None:
        points = decimate_raw(session, run_id, key, lo=lo, hi=hi, groups=buckets)
    return Series(key, total, [p[0] for p in points], [p[1] for p in points], None)


_BIN_SQL = text(
    """
    SELECT (step - :lo) / :width AS b, MAX(step), AVG(value)
    FROM metrics WHERE run_id = :run AND key = :key AND step >= :lo
    GROUP BY 1 ORDER BY 1
    """
)


def binned_means(session: Session, run_id: int, key: str, *, width: int
                 ) -> tuple[list[int], list[float]]:
    """A series as the mean of each ``width`` steps (0..width-1, width..), labelled by
    the bin's last step: runs binned with one width line up bin by bin, and the
    average over a bin (not its extremes) is what a mean over seeds needs."""
    if width <= 1:
        raw = session.execute(select(Metric.step, Metric.value).where(
            Metric.run_id == run_id, Metric.key == key).order_by(Metric.step)).all()
        return [r[0] for r in raw], [r[1] for r in raw]
    binned = session.execute(_BIN_SQL, {"run": run_id, "key": key, "lo": 0, "width": width})
    out = [(int(r[0]), float(r[2])) for r in binned]
    return [(b + 1) * width - 1 for b, _ in out], [v for _, v in out]


def binned_many(session: Session, run_ids: Sequence[int], key: str, *, max_points: int
                ) -> tuple[int, list[tuple[list[int], list[float]]]]:
    """Several runs' ``key`` on one grid of bins (so they can be averaged bin by bin):
    whole when the longest has at most ``max_points`` points, else averaged over bins of
    ``width`` steps that cut the last step seen into ``max_points``. Returns the width and
    each run's (steps, values)."""
    spans = [rollups.summary(session, r, key) for r in run_ids]
    longest = max((total for _, _, total in spans), default=0)
    last = max((hi for _, hi, total in spans if total), default=0)
    width = 1 if longest <= max_points else -(-(last + 1) // max_points)
    return width, [binned_means(session, r, key, width=width) for r in run_ids]


def decimate_raw(
    session: Session, run_id: int, key: str, *, lo: int, hi: int, groups: int
) -> Sequence[tuple[int, float]]:
    """Min/max decimation straight from the points (a full scan of the series)."""
    width = -(-(hi - lo + 1) // groups)  # ceil: the last bucket ends at hi
    rows = session.execute(_MINMAX_SQL, {"run": run_id, "key": key, "lo": lo, "width": width})
    return [(r[0], r[1]) for r in rows]


def summarize_keys(session: Session, run_id: int) -> list[dict[str, Any]]:
    """Every key of a run with its point count and latest (step, value)."""
    rows = _last_points(session, [run_id], None)
    return [
        {"key": k, "count": n, "last_step": step, "last_value": v}
        for _, k, n, step, v in sorted(rows, key=lambda r: r[1])
    ]


def latest_values(
    session: Session, run_ids: Sequence[int], keys: Sequence[str]
) -> dict[int, dict[str, float]]:
    """For each run, the value at the highest step of each of ``keys``."""
    out: dict[int, dict[str, float]] = {r: {} for r in run_ids}
    for run, key, _, _, value in _last_points(session, run_ids, keys):
        out[run][key] = value
    return out


def _last_points(
    session: Session, run_ids: Sequence[int], keys: Sequence[str] | None
) -> list[tuple[int, str, int, int, float]]:
    """(run, key, count, last step, last value) per series, read from the rollups so a
    dashboard poll never scans a long series (1M points: 190 ms → 11 ms)."""
    if not run_ids:
        return []
    per_key = select(
        MetricBucket.run_id,
        MetricBucket.key,
        func.sum(MetricBucket.n).label("n"),
        func.max(MetricBucket.last_step).label("step"),
    ).where(MetricBucket.run_id.in_(run_ids))
    if keys is not None:
        per_key = per_key.where(MetricBucket.key.in_(keys))
    sub = per_key.group_by(MetricBucket.run_id, MetricBucket.key).subquery()
    rows = session.execute(
        select(sub.c.run_id, sub.c.key, sub.c.n, sub.c.step, Metric.value).join(
            Metric,
            (Metric.run_id == sub.c.run_id)
            & (Metric.key == sub.c.key)
            & (Metric.step == sub.c.step),
        )
    ).all()
    return [(r, k, int(n), step, v) for r, k, n, step, v in rows]


def extreme_values(session: Session, run_ids: Sequence[int], keys: Sequence[str], stat: str
                   ) -> dict[int, dict[str, float]]:
    """For each run, the minimum (``stat`` ``min``) or maximum of each of ``keys``, from
    the rollups."""
    out: dict[int, dict[str, float]] = {r: {} for r in run_ids}
    if not run_ids or not keys:
        return out
    agg = func.min(MetricBucket.min_value) if stat == "min" else func.max(MetricBucket.max_value)
    rows = session.execute(select(MetricBucket.run_id, MetricBucket.key, agg).where(
        MetricBucket.run_id.in_(run_ids), MetricBucket.key.in_(keys)).group_by(
        MetricBucket.run_id, MetricBucket.key))
    for run, key, value in rows:
        out[run][key] = value
    return out
