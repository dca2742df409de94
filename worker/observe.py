"""What the worker records about a job besides its own output: the system metrics while
it runs (:mod:`neuroreg.system`) and its provenance when it starts
(:mod:`neuroreg.provenance`). Neither may break the job."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from core.store.db import session_scope
from core.store.metrics import insert_points
from core.store.provenance import set_provenance
from core.store.runs import get_run
from neuroreg.provenance import collect
from neuroreg.system import Point, SystemMetrics

log = logging.getLogger(__name__)


def code_dir() -> Path:
    """Where the code the worker runs lives: the ``ml`` package's folder (a checkout's,
    or an installed package's)."""
    import ml

    return Path(ml.__file__).resolve().parent


def record_provenance(db_url: str, run_id: int) -> None:
    """Store the provenance of this worker's code, packages, host and GPUs on the run."""
    try:
        provenance = collect(code_dir(), import_torch=True)
        with session_scope(db_url) as s:
            set_provenance(s, run_id, provenance)
    except Exception:  # noqa: BLE001 — the job runs without it
        log.warning("run %s: no provenance recorded", run_id, exc_info=True)


@contextlib.contextmanager
def system_metrics(db_url: str, run_id: int, interval: float) -> Iterator[None]:
    """``system/*`` series of this process (and its children) for ``run_id`` every
    ``interval`` s while the block runs (0: none), steps in seconds since its creation."""
    if interval <= 0:
        yield
        return

    def send(points: list[Point]) -> None:
        with session_scope(db_url) as s:
            insert_points(s, run_id, points)

    sampler = None
    try:
        with session_scope(db_url) as s:
            t0 = get_run(s, run_id).created_at.timestamp()
        sampler = SystemMetrics(send, t0=t0, interval=interval)
    except Exception:  # noqa: BLE001 — no psutil, or the store is away: no samples
        log.warning("run %s: no system metrics", run_id, exc_info=True)
    try:
        yield
    finally:
        if sampler is not None:
            sampler.stop()
