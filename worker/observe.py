"""What the worker records about a job besides its own output: the system metrics while
it runs (:mod:`neuroreg.system`) and its provenance when it starts
(:mod:`neuroreg.provenance`). Neither may break the job."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from neuroreg.provenance import collect
from neuroreg.system import Point, SystemMetrics
from worker.backend import Backend

log = logging.getLogger(__name__)


def code_dir() -> Path:
    """Where the code the worker runs lives: the ``ml`` package's folder (a checkout's,
    or an installed package's)."""
    import ml

    return Path(ml.__file__).resolve().parent


def record_provenance(backend: Backend, run_id: int) -> None:
    """Store the provenance of this worker's code, packages, host and GPUs on the run."""
    try:
        backend.provenance(run_id, collect(code_dir(), import_torch=True))
    except Exception:  # noqa: BLE001 — the job runs without it
        log.warning("run %s: no provenance recorded", run_id, exc_info=True)


@contextlib.contextmanager
def system_metrics(backend: Backend, run_id: int, interval: float) -> Iterator[None]:
    """``system/*`` series of this process (and its children) for ``run_id`` every
    ``interval`` s while the block runs (0: none), steps in seconds since its creation."""
    if interval <= 0:
        yield
        return

    def send(points: list[Point]) -> None:
        backend.points(run_id, points)

    sampler = None
    try:
        t0 = backend.created_at(run_id).timestamp()
        sampler = SystemMetrics(send, t0=t0, interval=interval)
    except Exception:  # noqa: BLE001 — no psutil, or the store is away: no samples
        log.warning("run %s: no system metrics", run_id, exc_info=True)
    try:
        yield
    finally:
        if sampler is not None:
            sampler.stop()
