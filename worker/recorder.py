"""A Recorder that writes to the store, directly or over the API (a
:class:`worker.backend.Backend`): buffered metrics, throttled progress and cancellation
checks, artifacts.

Points and progress reach the store within ``interval`` seconds whatever the job does
next: a timer thread flushes them (with its own sessions: the engine's pool is shared,
a session never is), so a part that logs and then computes quietly for ten minutes does
not hold its points back. The job flushes too: at ``flush_points`` buffered points, before
an artifact, when a part ends (:func:`ml.recorder.flush`) and on :meth:`SqlRecorder.close`,
which stops and joins the thread.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from core.store.metrics import Point
from core.store.models import RunStatus
from worker import shutdown
from worker.backend import Backend, Direct

log = logging.getLogger(__name__)


class FlushTimer(Protocol):
    """When the recorder's flusher wakes. Tests pass one they drive themselves, so no
    real time passes."""

    def wait(self, interval: float) -> bool:
        """Return when the next flush is due: False, or True when cancelled (the
        flusher ends)."""

    def cancel(self) -> None:
        """Wake the flusher for good."""


class Timer:
    """The real :class:`FlushTimer`: every ``interval`` seconds until cancelled."""

    def __init__(self) -> None:
        self._cancelled = threading.Event()

    def wait(self, interval: float) -> bool:
        """Block for ``interval`` s; True when cancelled meanwhile (the flusher ends)."""
        return self._cancelled.wait(interval)

    def cancel(self) -> None:
        self._cancelled.set()


class SqlRecorder:
    """Buffers metric points; a timer thread writes them (and the latest progress) every
    ``interval`` s, the job at ``flush_points`` points and at every :meth:`flush`."""

    def __init__(
        self,
        *,
        run_id: int,
        backend: Backend | None = None,
        db_url: str | None = None,
        artifact_root: Path | None = None,
        interval: float = 1.0,
        flush_points: int = 2000,
        timer: FlushTimer | None = None,
    ) -> None:
        """Writes through ``backend``, or straight to the database at ``db_url`` and
        the artifact folder ``artifact_root``."""
        if backend is None:
            from core.settings import Settings

            assert db_url is not None and artifact_root is not None
            backend = Direct(Settings(database_url=db_url, artifact_dir=artifact_root))
        self.backend, self.run_id = backend, run_id
        self.interval, self.flush_points = interval, flush_points
        self._buffer: list[Point] = []
        self._last_check = 0.0
        self._progress: tuple[float, str] | None = None
        self._progress_written: tuple[float, str] | None = None
        self._stop = False
        self._lock = threading.Lock()  # the buffer and the progress, between threads
        self._writing = threading.RLock()  # one flush at a time: the store sees them in order
        self._timer: FlushTimer = timer or Timer()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._also: list[Callable[[], object]] = []

    # -- the Recorder protocol ------------------------------------------------------------

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        now = time.time()
        points = []
        for key, value in metrics.items():
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"metric {key!r} at step {step} is {value}")
            points.append((key, int(step), value, now))
        with self._lock:
            self._buffer.extend(points)
            full = len(self._buffer) >= self.flush_points
        self._started()
        if full:
            self.flush()

    def save_artifact(self, name: str, data: bytes, media_type: str) -> None:
        self.flush()  # a checkpoint never gets ahead of the metrics logged before it
        self.backend.save_artifact(self.run_id, name, data, media_type)

    def load_artifact(self, name: str) -> bytes | None:
        return self.backend.load_artifact(self.run_id, name)

    def progress(self, fraction: float, message: str = "") -> None:
        """The latest progress, written by the next flush (the timer's: within
        ``interval`` s)."""
        with self._lock:
            self._progress = (fraction, message)
        self._started()

    def should_stop(self) -> bool:
        """True once the run is cancelled, or this worker is shutting down and hands
        its run back (:mod:`worker.shutdown`)."""
        if shutdown.requested():
            return True
        now = time.time()
        if not self._stop and now - self._last_check >= self.interval:
            self._last_check = now
            self._stop = self.backend.status(self.run_id) is RunStatus.cancelled
        return self._stop

    def stop_resumes(self) -> bool:
        """The stop is this worker's shutdown: the run goes back to the queue (unless it
        was cancelled meanwhile) and resumes from the checkpoint taken now."""
        return shutdown.requested()

    # -- flushing -------------------------------------------------------------------------

    def also_flush(self, flush: Callable[[], object]) -> None:
        """Call ``flush`` (e.g. the run's log sink's) with every flush of this recorder,
        so a part's end pushes its log lines as well as its points."""
        self._also.append(flush)

    def flush(self) -> None:
        """Write buffered points and the latest progress (when new) in one call that
        also reads the run's status (so a run that logs needs no cancellation check of its
        own), then what :meth:`also_flush` added. Safe from any thread; raises when the
        store does (the points stay buffered for the next try)."""
        with self._writing:
            with self._lock:
                points, self._buffer = self._buffer, []
                progress = self._progress if self._progress != self._progress_written else None
            if points or progress is not None:
                try:  # one round trip: the points, the progress, and the run's status
                    status = self.backend.sync(self.run_id, points, progress)
                except BaseException:
                    with self._lock:  # back in front, in order, for the next flush
                        self._buffer[:0] = points
                    raise
                if progress is not None:
                    self._progress_written = progress
                self._last_check = time.time()  # the cancellation check, done with it
                if status is RunStatus.cancelled:
                    self._stop = True
        for extra in self._also:
            extra()

    def close(self) -> None:
        """Stop the timer thread, wait for it, and write what is left (once)."""
        if not self._closed:
            self._closed = True
            self._timer.cancel()
            if self._thread is not None:
                self._thread.join()
        self.flush()

    def __enter__(self) -> SqlRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def flushing(self) -> bool:
        """Whether the timer thread runs (from the first point or progress to close)."""
        return self._thread is not None and self._thread.is_alive()

    def _started(self) -> None:
        """The timer thread, from the first thing to write on (a recorder that only
        reads artifacts never starts one)."""
        if self._thread is None and not self._closed:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, daemon=True,
                                                    name=f"recorder-{self.run_id}")
                    self._thread.start()

    def _loop(self) -> None:
        while not self._timer.wait(self.interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 — a database blip must not end the flusher
                log.warning("run %s: could not write its metrics; retrying", self.run_id,
                            exc_info=True)
