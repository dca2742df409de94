"""A Recorder that writes to the store: buffered metrics, throttled progress and
cancellation checks, artifacts under the artifact root."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path

from core.store.artifacts import get_artifact, resolve, save_artifact
from core.store.db import session_scope
from core.store.metrics import Point, insert_points
from core.store.models import RunStatus
from core.store.runs import set_progress, status_of
from worker import shutdown


class SqlRecorder:
    """Buffers metric points and flushes every ``flush_points`` points or ``interval`` s."""

    def __init__(
        self,
        *,
        db_url: str,
        artifact_root: Path,
        run_id: int,
        interval: float = 1.0,
        flush_points: int = 2000,
    ) -> None:
        self.db_url, self.artifact_root, self.run_id = db_url, artifact_root, run_id
        self.interval, self.flush_points = interval, flush_points
        self._buffer: list[Point] = []
        self._last_flush = self._last_progress = self._last_check = 0.0
        self._progress: tuple[float, str] | None = None
        self._stop = False

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        now = time.time()
        for key, value in metrics.items():
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"metric {key!r} at step {step} is {value}")
            self._buffer.append((key, int(step), value, now))
        if len(self._buffer) >= self.flush_points or now - self._last_flush >= self.interval:
            self.flush()

    def save_artifact(self, name: str, data: bytes, media_type: str) -> None:
        self.flush()  # a checkpoint never gets ahead of the metrics logged before it
        with session_scope(self.db_url) as s:
            save_artifact(
                s,
                self.artifact_root,
                run_id=self.run_id,
                name=name,
                data=data,
                media_type=media_type,
            )

    def load_artifact(self, name: str) -> bytes | None:
        with session_scope(self.db_url) as s:
            row = get_artifact(s, self.run_id, name)
            if row is None:
                return None
            return resolve(self.artifact_root, row.path).read_bytes()

    def progress(self, fraction: float, message: str = "") -> None:
        self._progress = (fraction, message)
        if time.time() - self._last_progress >= self.interval:
            self._write_progress()

    def should_stop(self) -> bool:
        """True once the run is cancelled, or this worker is shutting down and hands
        its run back (:mod:`worker.shutdown`)."""
        if shutdown.requested():
            return True
        now = time.time()
        if not self._stop and now - self._last_check >= self.interval:
            self._last_check = now
            with session_scope(self.db_url) as s:
                self._stop = status_of(s, self.run_id) is RunStatus.cancelled
        return self._stop

    def stop_resumes(self) -> bool:
        """The stop is this worker's shutdown: the run goes back to the queue (unless it
        was cancelled meanwhile) and resumes from the checkpoint taken now."""
        return shutdown.requested()

    def flush(self) -> None:
        """Write buffered points and the latest progress in one transaction."""
        points, self._buffer = self._buffer, []
        self._last_flush = time.time()
        if points:
            with session_scope(self.db_url) as s:
                insert_points(s, self.run_id, points)
        if self._progress is not None:
            self._write_progress()

    def _write_progress(self) -> None:
        assert self._progress is not None
        self._last_progress = time.time()
        with session_scope(self.db_url) as s:
            set_progress(s, self.run_id, *self._progress)
