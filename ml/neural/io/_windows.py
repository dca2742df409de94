"""Per-presentation averages of a sampled time series."""

from __future__ import annotations

from typing import Any

import numpy as np

from ml.neural.scan import RecordingError


def window_means(
    times: Any,
    data: Any,
    start: np.ndarray,
    stop: np.ndarray,
    *,
    what: str,
    skip_nan: bool = False,
    empty: str = "raise",
) -> np.ndarray:
    """Mean of a series' samples within each half-open window [start, stop).

    Args:
        times: (S,) ascending sample times in seconds.
        data: (S,) or (S, K) samples; an h5py dataset is read one window at a time, so a
            long recording never has to fit in memory.
        start: (T,) window starts in seconds.
        stop: (T,) window ends in seconds (exclusive).
        what: names the series in error messages.
        skip_nan: average finite samples only (eye tracking loses the pupil in blinks);
            a window with none left is NaN.
        empty: a window without samples (a gap in the recording) ``raise``-s, naming
            the first such presentation, or is ``nan``.

    Returns:
        (T, K) float64, K = 1 for 1-D data.
    """
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or times.size != data.shape[0]:
        raise RecordingError(
            f"{what}: {times.size} timestamps for data of shape {tuple(data.shape)}"
        )
    if times.size == 0:
        raise RecordingError(f"{what}: the series has no samples")
    if np.any(np.diff(times) < 0):
        raise RecordingError(f"{what}: timestamps are not in ascending order")
    lo = np.searchsorted(times, start, side="left")
    hi = np.searchsorted(times, stop, side="left")
    blank = np.flatnonzero(hi <= lo)
    if blank.size and empty == "raise":
        i = int(blank[0])
        raise RecordingError(
            f"{what}: no samples within presentation {i} [{start[i]:.3f}, {stop[i]:.3f}) s "
            f"({blank.size} presentations like it; samples span "
            f"[{times[0]:.3f}, {times[-1]:.3f}] s)"
        )
    width = int(np.prod(data.shape[1:], dtype=np.int64))
    out = np.empty((len(start), width))  # (T, K)
    for row, (a, b) in enumerate(zip(lo.tolist(), hi.tolist(), strict=True)):
        if b <= a:
            out[row] = np.nan
            continue
        block = np.asarray(data[a:b], dtype=np.float64).reshape(b - a, width)
        if skip_nan:
            finite = np.isfinite(block)
            count = finite.sum(axis=0)
            mean = np.where(finite, block, 0.0).sum(axis=0) / np.maximum(count, 1)
            out[row] = np.where(count > 0, mean, np.nan)
        else:
            out[row] = block.mean(axis=0)
    return out
