"""The seam between the science and wherever its numbers go.

ml code takes a :class:`Recorder` and never knows whether it writes to SQL, to memory
or nowhere. The worker passes one backed by the store; notebooks and tests use
:class:`MemoryRecorder`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class Cancelled(Exception):
    """Raised by ml code when its recorder asks it to stop."""


@runtime_checkable
class Recorder(Protocol):
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record one value per key at ``step``; re-sending a (key, step) is a no-op."""

    def save_artifact(self, name: str, data: bytes, media_type: str) -> None:
        """Store a named blob with the run (replacing one of the same name), after every
        metric logged before it."""

    def load_artifact(self, name: str) -> bytes | None:
        """A blob this run stored earlier (e.g. a checkpoint to resume from), or None."""

    def progress(self, fraction: float, message: str = "") -> None:
        """Report how far the job is, in [0, 1]."""

    def should_stop(self) -> bool:
        """True when the job should stop early (e.g. the run was cancelled)."""

    def stop_resumes(self) -> bool:
        """After ``should_stop``: True when the job will run again and resume (its worker
        hands it back), so it should checkpoint where it stands; False for a cancel."""


def flush(recorder: Recorder) -> None:
    """Send what ``recorder`` holds back to wherever its numbers go, now: called where a
    part of a job ends (an evaluation's noise curve, an epoch), so its points do not wait
    for the recorder's timer. Recorders that buffer have a ``flush()``; others keep
    nothing back."""
    push = getattr(recorder, "flush", None)
    if callable(push):
        push()


@dataclass
class MemoryRecorder:
    """Keeps everything in memory; for notebooks and tests."""

    metrics: dict[str, dict[int, float]] = field(default_factory=dict)
    artifacts: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    fractions: list[float] = field(default_factory=list)
    stop_after_steps: int | None = None
    resume_after_stop: bool = False  # the stop is a hand-back (stop_resumes)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.metrics.setdefault(key, {}).setdefault(step, float(value))

    def save_artifact(self, name: str, data: bytes, media_type: str) -> None:
        self.artifacts[name] = (data, media_type)

    def load_artifact(self, name: str) -> bytes | None:
        return self.artifacts[name][0] if name in self.artifacts else None

    def progress(self, fraction: float, message: str = "") -> None:
        self.fractions.append(fraction)

    def should_stop(self) -> bool:
        if self.stop_after_steps is None:
            return False
        logged = max((len(series) for series in self.metrics.values()), default=0)
        return logged >= self.stop_after_steps

    def stop_resumes(self) -> bool:
        return self.resume_after_stop

    def series(self, key: str) -> list[float]:
        """Values of ``key`` ordered by step."""
        points = self.metrics.get(key, {})
        return [points[s] for s in sorted(points)]
