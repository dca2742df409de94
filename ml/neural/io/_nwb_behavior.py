"""Behaviour of an NWB session, averaged per presentation into :data:`BEHAVIOR` columns."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml.neural.io._windows import window_means
from ml.neural.scan import BEHAVIOR, RecordingError

# NWB fixes no names for these; the ones below cover the common conventions, and
# pupil series are also found by living in a PupilTracking container.
POSITION_NAMES = ("pupil_position", "pupil_center", "pupil_centre")
SIZE_NAMES = ("pupil_size", "pupil_area", "pupil_diameter", "pupil_radius")
RUNNING_NAMES = ("running_speed", "running", "speed", "treadmill_speed", "wheel_speed")


def behavior_means(
    nwb: Any, start: np.ndarray, stop: np.ndarray, *, allow_missing: bool, path: Path
) -> np.ndarray:
    """Pupil position, pupil size and running speed from ``processing['behavior']``.

    Args:
        nwb: an open ``pynwb.NWBFile``.
        start: (T,) presentation starts in seconds.
        stop: (T,) presentation ends in seconds (exclusive).
        allow_missing: zeros for a quantity that has no series, instead of an error.
        path: the file, for error messages.

    Returns:
        (T, 4) float64 in :data:`BEHAVIOR` order; each value is the mean of the finite
        samples within the presentation.
    """
    series = _all_series(nwb.processing.get("behavior"))
    columns = {
        "pupil position": (_pick(series, POSITION_NAMES, (2,), pupil=True), [0, 1]),
        "pupil size": (_pick(series, SIZE_NAMES, (), pupil=True), [2]),
        "running speed": (_pick(series, RUNNING_NAMES, (), pupil=False), [3]),
    }
    missing = [label for label, (s, _) in columns.items() if s is None]
    if missing and not allow_missing:
        raise RecordingError(
            f"{path}: no {', '.join(missing)} series in processing['behavior'] (found "
            f"{[s.name for _, s in series]}); pass allow_missing_behavior=True to use zeros"
        )
    out = np.zeros((len(start), len(BEHAVIOR)))  # (T, 4)
    for s, cols in columns.values():
        if s is not None:
            out[:, cols] = window_means(
                s.get_timestamps(), s.data, start, stop, what=f"{path}: {s.name}", skip_nan=True
            )
    return out


def _all_series(module: Any) -> list[tuple[str, Any]]:
    """(container type, series) for every TimeSeries, directly or one container down."""
    found: list[tuple[str, Any]] = []
    for obj in [] if module is None else module.data_interfaces.values():
        inner = getattr(obj, "time_series", None)  # PupilTracking, BehavioralTimeSeries, …
        if isinstance(inner, dict):
            found += [(type(obj).__name__, s) for s in inner.values()]
        elif hasattr(obj, "get_timestamps"):
            found.append(("", obj))
    return found


def _pick(
    series: list[tuple[str, Any]], names: Sequence[str], width: tuple[int, ...], *, pupil: bool
) -> Any:
    shapes = {width, (1,)} if width == () else {width}  # a scalar may be stored (S, 1)
    for kind, s in series:
        wanted = s.name.lower() in names or (pupil and kind == "PupilTracking")
        if wanted and tuple(s.data.shape[1:]) in shapes:
            return s
    return None
