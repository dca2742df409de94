"""Behaviour of an NWB session, averaged per presentation into :data:`BEHAVIOR` columns.

NWB fixes no names for pupil and running series, so they are matched by name and unit
where the common writers put them:

- modules ``processing['behavior']`` (NeuroConv, DANDI), ``processing['running']`` and
  ``processing['eye_tracking']`` (AllenSDK), and ``acquisition`` (AllenSDK Visual
  Behavior's eye tracking; raw DANDI uploads);
- inside ``PupilTracking``, ``EyeTracking``, ``BehavioralTimeSeries`` and
  ``BehavioralEvents`` containers, or bare.

A quantity is taken from a series whose name says what it is (and whose unit does not
say otherwise), never from "any 1-D series" of a container: a ``PupilTracking`` holding
``angle`` and ``pupil_area`` gives pupil size from ``pupil_area``. Pupil position is a
2-column series named as one, or the 2-column series of an ``EyeTracking`` container.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ml.neural.io._windows import window_means
from ml.neural.scan import BEHAVIOR, RecordingError

MODULES = ("behavior", "running", "eye_tracking")
POSITION_NAMES = ("pupil_position", "pupil_center", "pupil_centre", "pupil_location",
                  "eye_position", "eye_center", "gaze_position", "gaze")
SIZE_NAMES = ("pupil_size", "pupil_area", "pupil_diameter", "pupil_radius", "area",
              "diameter", "radius")
RUNNING_NAMES = ("running_speed", "speed", "running", "treadmill_speed", "wheel_speed",
                 "velocity", "running_velocity")
# a unit that says a series is not what its name suggests
NOT_SIZE_UNITS = ("rad", "radian", "radians", "deg", "degree", "degrees", "s", "seconds")
UNKNOWN_UNITS = ("", "n.a.", "na", "a.u.", "au", "unknown", "arbitrary", "none")


def speed_unit(unit: str) -> bool:
    """A unit of speed (cm/s, m s^-1, rad/s, cm per second, …) or none given."""
    u = unit.replace(" ", "").lower()
    return u in UNKNOWN_UNITS or any(t in u for t in ("/s", "s^-1", "s-1", "persecond",
                                                       "pers", "/sec"))

Gaps = Literal["error", "fill", "drop"]


@dataclass(frozen=True)
class Found:
    """A time series and where it lives in the file (``processing/behavior/PupilTracking/
    pupil_area``): every message names it by this path."""

    path: str
    container: str  # the container's type, "" for a bare series
    series: Any

    @property
    def name(self) -> str:
        return str(self.series.name)

    @property
    def unit(self) -> str:
        return str(getattr(self.series, "unit", "") or "").strip().lower()

    @property
    def width(self) -> tuple[int, ...]:
        return tuple(self.series.data.shape[1:])


def all_series(nwb: Any) -> list[Found]:
    """Every TimeSeries where behaviour is kept, directly or one container down, in the
    order searched: the behaviour modules, then acquisition."""
    places: list[tuple[str, Any]] = []
    for name in MODULES:
        module = nwb.processing.get(name)
        if module is not None:
            places.append((f"processing/{name}", module.data_interfaces))
    places.append(("acquisition", nwb.acquisition))
    found: list[Found] = []
    for where, objects in places:
        for key, obj in (objects or {}).items():
            inner = _children(obj)
            if inner is not None:
                found += [Found(f"{where}/{key}/{s.name}", type(obj).__name__, s)
                          for s in inner]
            elif hasattr(obj, "get_timestamps") and hasattr(obj, "data"):
                found.append(Found(f"{where}/{key}", "", obj))
    return found


def _children(obj: Any) -> list[Any] | None:
    for attr in ("time_series", "spatial_series"):  # PupilTracking…, EyeTracking
        inner = getattr(obj, attr, None)
        if isinstance(inner, dict):
            return [s for s in inner.values() if hasattr(s, "get_timestamps")]
    return None


def _scalar(f: Found) -> bool:
    return f.width in ((), (1,))


def pick_position(series: Sequence[Found]) -> Found | None:
    named = [f for f in series if f.width == (2,) and f.name.lower() in POSITION_NAMES]
    eye = [f for f in series if f.width == (2,) and f.container == "EyeTracking"]
    return next(iter(named or eye), None)


def pick_size(series: Sequence[Found]) -> Found | None:
    def ok(f: Found) -> bool:
        short = f.name.lower() in ("area", "diameter", "radius")  # only inside pupil data
        return (_scalar(f) and f.name.lower() in SIZE_NAMES and f.unit not in NOT_SIZE_UNITS
                and (not short or f.container == "PupilTracking" or "pupil" in f.path))
    return next((f for f in series if ok(f)), None)


def pick_running(series: Sequence[Found]) -> Found | None:
    def ok(f: Found) -> bool:
        return _scalar(f) and f.name.lower() in RUNNING_NAMES and speed_unit(f.unit)
    return next((f for f in series if ok(f)), None)


@dataclass
class BehaviorPicks:
    """Which series gave each quantity (None: absent), and what the gaps cost."""

    position: Found | None
    size: Found | None
    running: Found | None
    filled: int = 0     # presentations with a value interpolated across a gap
    dropped: int = 0    # presentations dropped for a gap


def behavior_means(
    nwb: Any, start: np.ndarray, stop: np.ndarray, *, allow_missing: bool, path: Path,
    gaps: Gaps = "error", labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, BehaviorPicks]:
    """Pupil position, pupil size and running speed, averaged per presentation.

    Args:
        nwb: an open ``pynwb.NWBFile``.
        start: (T,) presentation starts in seconds.
        stop: (T,) presentation ends in seconds (exclusive).
        allow_missing: zeros for a quantity that has no series, instead of an error.
        path: the file, for error messages.
        gaps: a presentation with no finite sample of a series (a tracking dropout):
            ``error`` names the series and the presentation, ``fill`` interpolates it
            from the nearest samples either side, ``drop`` drops the presentation.
        labels: (T,) what each presentation showed, for messages.

    Returns:
        (T, 4) float64 in :data:`BEHAVIOR` order (the mean of the finite samples within
        each presentation), a (T,) bool mask of the presentations kept, and the picks.
    """
    series = all_series(nwb)
    picks = BehaviorPicks(pick_position(series), pick_size(series), pick_running(series))
    columns = {"pupil position": (picks.position, [0, 1]), "pupil size": (picks.size, [2]),
               "running speed": (picks.running, [3])}
    missing = [label for label, (s, _) in columns.items() if s is None]
    if missing and not allow_missing:
        seen = ", ".join(f"{f.path} [{f.unit or 'no unit'}]" for f in series) or "none"
        raise RecordingError(
            f"{path}: no {', '.join(missing)} series (searched processing['behavior'], "
            f"['running'], ['eye_tracking'] and acquisition, by name and unit; found: "
            f"{seen}); pass allow_missing_behavior=True to use zeros")
    out = np.zeros((len(start), len(BEHAVIOR)))  # (T, 4)
    keep = np.ones(len(start), bool)
    filled = np.zeros(len(start), bool)
    for found, cols in columns.values():
        if found is None:
            continue
        s = found.series
        what = f"{path}: {found.path}"
        means = window_means(s.get_timestamps(), s.data, start, stop, what=what,
                             skip_nan=True, empty="nan")
        bad = ~np.isfinite(means).all(axis=1)
        if bad.any():
            if gaps == "error":
                i = int(np.flatnonzero(bad)[0])
                shown = "" if labels is None else f", image {labels[i]}"
                raise RecordingError(
                    f"{what}: no samples within presentation {i} ([{start[i]:.3f}, "
                    f"{stop[i]:.3f}) s{shown}; {int(bad.sum())} presentations like it): "
                    "pass behavior_gaps='fill' to interpolate across the gap or 'drop' to "
                    "drop those presentations")
            if gaps == "fill":
                means[bad] = _interpolate(s, (start[bad] + stop[bad]) / 2, what)
                filled |= bad
            else:
                keep &= ~bad
        out[:, cols] = means
    picks.dropped, picks.filled = int((~keep).sum()), int(filled.sum())
    return out, keep, picks


def _interpolate(s: Any, at: np.ndarray, what: str) -> np.ndarray:
    """(len(at), K) values of series ``s`` at times ``at``, linear between its finite
    samples (held at either end)."""
    times = np.asarray(s.get_timestamps(), dtype=np.float64)
    data = np.asarray(s.data[:], dtype=np.float64).reshape(len(times), -1)  # (S, K)
    out = np.empty((len(at), data.shape[1]))
    for k in range(data.shape[1]):
        ok = np.isfinite(data[:, k])
        if not ok.any():
            raise RecordingError(f"{what}: no finite sample to fill a gap from")
        out[:, k] = np.interp(at, times[ok], data[ok, k])
    return out
