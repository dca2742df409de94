"""Per-bucket min/max rollups of each series, kept in step with every metric insert.

Steps are cut into fixed buckets of ``BUCKET`` steps. Each bucket row holds its count,
first/last step and its min and max points, so a 1,000,000-point series is summarized by
~4,000 rows: a downsampled read merges those instead of scanning every point.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

BUCKET = 256

_UPSERT = {
    "sqlite": "INSERT OR REPLACE INTO metric_buckets (run_id, key, bucket, n, first_step, "
    "last_step, min_step, min_value, max_step, max_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "postgresql": "INSERT INTO metric_buckets (run_id, key, bucket, n, first_step, last_step, "
    "min_step, min_value, max_step, max_value) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (run_id, key, bucket) DO UPDATE SET n = EXCLUDED.n, "
    "first_step = EXCLUDED.first_step, last_step = EXCLUDED.last_step, "
    "min_step = EXCLUDED.min_step, min_value = EXCLUDED.min_value, "
    "max_step = EXCLUDED.max_step, max_value = EXCLUDED.max_value",
}


def _aggregate(rows: Iterable[tuple[int, float]]) -> dict[int, list[Any]]:
    """(step, value) rows in step order → bucket → [n, first, last, min_s, min_v, max_s, max_v].

    Ties keep the earliest step, so results don't depend on insertion order.
    """
    out: dict[int, list[Any]] = {}
    for step, value in rows:
        b = out.get(step // BUCKET)
        if b is None:
            out[step // BUCKET] = [1, step, step, step, value, step, value]
            continue
        b[0] += 1
        b[2] = step
        if value < b[4]:
            b[3], b[4] = step, value
        if value > b[6]:
            b[5], b[6] = step, value
    return out


def refresh(conn: Connection, run_id: int, steps_by_key: dict[str, tuple[int, int]]) -> None:
    """Recompute the buckets that the steps ``[lo, hi]`` of each key touched."""
    param = "?" if conn.dialect.name == "sqlite" else "%s"
    select_rows = (
        f"SELECT step, value FROM metrics WHERE run_id = {param} AND key = {param} "
        f"AND step >= {param} AND step < {param} ORDER BY step"
    )
    upserts: list[tuple[Any, ...]] = []
    for key, (lo, hi) in steps_by_key.items():
        start, stop = (lo // BUCKET) * BUCKET, (hi // BUCKET + 1) * BUCKET
        rows = conn.exec_driver_sql(select_rows, (run_id, key, start, stop)).fetchall()
        for bucket, agg in _aggregate(rows).items():
            upserts.append((run_id, key, bucket, *agg))
    if upserts:
        conn.exec_driver_sql(_UPSERT[conn.dialect.name], upserts)


def summary(session: Session, run_id: int, key: str) -> tuple[int, int, int]:
    """(first step, last step, point count) of a series, from its buckets."""
    lo, hi, total = session.execute(
        text(
            "SELECT MIN(first_step), MAX(last_step), COALESCE(SUM(n), 0) FROM metric_buckets "
            "WHERE run_id = :run AND key = :key"
        ),
        {"run": run_id, "key": key},
    ).one()
    return lo, hi, int(total)


def merged(
    session: Session, run_id: int, key: str, *, lo: int, hi: int, groups: int
) -> Sequence[tuple[int, float]] | None:
    """Min/max points of ``groups`` equal runs of buckets; None when there are too few
    buckets for that (the caller then decimates the raw points)."""
    first, last = lo // BUCKET, hi // BUCKET
    span = last - first + 1
    if span < groups:
        return None
    width = -(-span // groups)
    rows = session.execute(
        text(
            "SELECT bucket, min_step, min_value, max_step, max_value FROM metric_buckets "
            "WHERE run_id = :run AND key = :key ORDER BY bucket"
        ),
        {"run": run_id, "key": key},
    ).all()
    best: dict[int, list[Any]] = {}
    for bucket, min_s, min_v, max_s, max_v in rows:
        g = best.get((bucket - first) // width)
        if g is None:
            best[(bucket - first) // width] = [min_s, min_v, max_s, max_v]
            continue
        if min_v < g[1]:  # buckets come in step order, so ties keep the earlier step
            g[0], g[1] = min_s, min_v
        if max_v > g[3]:
            g[2], g[3] = max_s, max_v
    points = {s: v for g in best.values() for s, v in ((g[0], g[1]), (g[2], g[3]))}
    return sorted(points.items())
