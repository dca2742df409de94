"""Two-photon recordings in NWB 2 (pynwb): ROI responses to a stimulus presentation table.

Read from the file:

- responses: a ``RoiResponseSeries`` in ``processing['ophys']``, inside a ``DfOverF``
  or ``Fluorescence`` container (DfOverF first), or the one named by ``responses=``;
  unit ids are the ids of its ROI table rows.
- presentations: a ``TimeIntervals`` table (``nwb.trials`` or one in ``nwb.intervals``,
  e.g. ``stimulus_presentations``) with ``start_time``, ``stop_time``, an image column
  (``image_id``: frame index into the stimulus template) and optionally ``tier``.
- stimuli: ``nwb.stimulus_template``, an ``Images`` container (frames in
  ``order_of_images``) or an ``ImageSeries`` with (n, H, W) data.
- behaviour: in ``processing['behavior']``, pupil position (x, y) from a ``PupilTracking``
  series, and pupil size and running speed series, recognised by name (``_nwb_behavior``).

Each presentation's response (and behaviour) is the mean of the samples whose timestamps
fall in [start_time, stop_time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ml.neural.io._images import to_stimulus
from ml.neural.io._nwb_behavior import behavior_means
from ml.neural.io._tiers import map_tiers
from ml.neural.io._windows import window_means
from ml.neural.scan import STIMULUS_SHAPE, RecordingError, Scan, default_oracle_ids

VALIDATION_FRACTION = 0.1  # of the images shown once, when the table has no tier column


def load_nwb(
    path: str | Path,
    name: str | None = None,
    *,
    responses: str | None = None,
    intervals: str | None = None,
    template: str | None = None,
    image_column: str = "image_id",
    allow_missing_behavior: bool = False,
    seed: int = 0,
) -> Scan:
    """Read an NWB 2 two-photon session into a :class:`Scan`.

    Without a ``tier`` column, images shown at least twice are ``test`` (and the oracle
    images), and the others are split 90/10 into train/validation by ``seed``. With one,
    ``final_test`` becomes ``test`` and trials outside train/validation/test are dropped.

    Args:
        path: the ``.nwb`` file.
        name: scan name; defaults to the file name without ``.nwb``.
        responses: RoiResponseSeries to use, ``"<container>/<series>"`` or its name.
        intervals: presentation table in ``nwb.intervals`` (``"trials"`` included).
        template: entry of ``nwb.stimulus_template``; needed only when there are several.
        image_column: the table column holding each presentation's frame index.
        allow_missing_behavior: fill missing behaviour columns with zeros instead of
            refusing the file.
        seed: the train/validation split when the table has no tier column.

    Returns:
        The scan; ``image_ids`` are frame indices into the stimulus template.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"{path}: no such NWB file")
    # pynwb takes ~1 s to import; only NWB users should pay for it
    from pynwb import NWBHDF5IO

    try:
        io = NWBHDF5IO(str(path), "r")
    except Exception as exc:  # h5py/hdmf raise many types for a file that is not NWB
        raise RecordingError(f"{path}: cannot open as NWB: {exc}") from exc
    with io:
        try:
            nwb = io.read()
        except Exception as exc:
            raise RecordingError(f"{path}: cannot read as NWB: {exc}") from exc
        start, stop, frames, raw_tiers = _presentations(nwb, intervals, image_column, path)
        if raw_tiers is None:
            tiers, keep = _assign_tiers(frames, seed, path), np.ones(len(frames), bool)
        else:
            tiers, keep = map_tiers(raw_tiers)
        if not keep.any():
            raise RecordingError(f"{path}: no presentation has a train/validation/test tier")
        start, stop, frames, tiers = start[keep], stop[keep], frames[keep], tiers[keep]
        series = _roi_series(nwb, responses, path)
        resp = window_means(
            series.get_timestamps(), series.data, start, stop, what=f"{path}: {series.name}"
        )
        unit_ids = np.asarray(series.rois.table.id[:])[np.asarray(series.rois.data[:])]
        behavior = behavior_means(nwb, start, stop, allow_missing=allow_missing_behavior, path=path)
        image_ids = np.unique(frames).astype(np.int64)
        images = _template_frames(nwb, template, image_ids, path)

    trial_ids = frames.astype(np.int64)
    return Scan(
        name=name or path.stem,
        images=images,
        image_ids=image_ids,
        trial_image_ids=trial_ids,
        responses=resp,
        behavior=behavior,
        tiers=tiers,
        oracle_ids=default_oracle_ids(trial_ids, tiers),
        neurons={"unit_ids": unit_ids},
    )


def _presentations(
    nwb: Any, wanted: str | None, column: str, path: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(start, stop, frame, tier or None) per row of the presentation table."""
    tables = dict(nwb.intervals or {})
    if nwb.trials is not None:
        tables.setdefault("trials", nwb.trials)
    if wanted is not None:
        if wanted not in tables:
            raise RecordingError(f"{path}: no intervals table {wanted!r}; has {sorted(tables)}")
        table = tables[wanted]
    else:
        usable = [
            n
            for n in sorted(tables, key=lambda n: (n != "trials", n))
            if column in tables[n].colnames
        ]
        if not usable:
            found = {n: list(t.colnames) for n, t in tables.items()}
            raise RecordingError(
                f"{path}: no intervals table with a {column!r} column (tables: {found})"
            )
        table = tables[usable[0]]
    missing = [c for c in ("start_time", "stop_time", column) if c not in table.colnames]
    if missing:
        raise RecordingError(f"{path}: table {table.name!r} lacks columns {missing}")
    frames = np.asarray(table[column].data[:])
    if not np.issubdtype(frames.dtype, np.integer):
        raise RecordingError(f"{path}: column {column!r} must hold integer frame indices")
    tiers = None
    if "tier" in table.colnames:  # h5py hands back bytes or str depending on the writer
        tiers = np.array(
            [v.decode() if isinstance(v, bytes) else str(v) for v in table["tier"].data[:]]
        )
    return (
        np.asarray(table["start_time"].data[:], dtype=np.float64),
        np.asarray(table["stop_time"].data[:], dtype=np.float64),
        frames,
        tiers,
    )


def _roi_series(nwb: Any, wanted: str | None, path: Path) -> Any:
    from pynwb.ophys import DfOverF, Fluorescence

    module = nwb.processing.get("ophys")
    containers = [] if module is None else list(module.data_interfaces.values())
    found = {
        f"{c.name}/{s.name}": s
        for kind in (DfOverF, Fluorescence)  # dF/F first: comparable across neurons
        for c in containers
        if isinstance(c, kind)
        for s in c.roi_response_series.values()
    }
    if not found:
        raise RecordingError(
            f"{path}: no RoiResponseSeries in processing['ophys'] (looked in DfOverF and "
            "Fluorescence containers)"
        )
    if wanted is None:
        return next(iter(found.values()))
    matches = [k for k in found if wanted in (k, k.split("/", 1)[1])]
    if len(matches) != 1:
        problem = "no" if not matches else "more than one"
        raise RecordingError(
            f"{path}: {problem} RoiResponseSeries matches {wanted!r}; has {sorted(found)}"
        )
    return found[matches[0]]


def _template_frames(nwb: Any, wanted: str | None, frames: np.ndarray, path: Path) -> np.ndarray:
    from pynwb.base import Images

    templates = dict(nwb.stimulus_template or {})
    if wanted is None and len(templates) != 1:
        raise RecordingError(
            f"{path}: {len(templates)} stimulus templates {sorted(templates)}; name one "
            "with template="
        )
    key = wanted if wanted is not None else next(iter(templates))
    if key not in templates:
        raise RecordingError(f"{path}: no stimulus template {key!r}; has {sorted(templates)}")
    source = templates[key]
    if isinstance(source, Images):
        order = source.order_of_images
        if order is not None:
            stack: Any = [img.data for img in order.data]
        elif len(source.images) == 1:
            stack = [img.data for img in source.images.values()]
        else:
            raise RecordingError(
                f"{path}: Images {key!r} has no order_of_images, so frame indices are ambiguous"
            )
    elif getattr(source, "data", None) is not None:
        stack = source.data  # ImageSeries (n, H, W), read one frame at a time
    else:
        raise RecordingError(f"{path}: stimulus template {key!r} holds no image data")
    if frames.min() < 0 or frames.max() >= len(stack):
        raise RecordingError(
            f"{path}: frame indices span [{frames.min()}, {frames.max()}] but template "
            f"{key!r} has {len(stack)} frames"
        )
    images = np.empty((frames.size, *STIMULUS_SHAPE), np.float32)  # (N, 1, 36, 64)
    for row, frame in enumerate(frames.tolist()):
        pixels = np.asarray(stack[frame])
        scale = 255.0 if pixels.dtype == np.uint8 else 1.0
        images[row] = to_stimulus(pixels, scale=scale, where=f"{path}: {key}[{frame}]")
    return images


def _assign_tiers(frames: np.ndarray, seed: int, path: Path) -> np.ndarray:
    ids, counts = np.unique(frames, return_counts=True)
    once = ids[counts == 1]
    if once.size == 0:
        raise RecordingError(
            f"{path}: every image is shown more than once, so without a 'tier' column all "
            "trials would be test; add a tier column to the presentation table"
        )
    shuffled = np.random.default_rng(seed).permutation(once)
    validation = shuffled[: int(round(VALIDATION_FRACTION * once.size))]
    tiers = np.full(frames.shape, "train", dtype="<U10")
    tiers[np.isin(frames, validation)] = "validation"
    tiers[np.isin(frames, ids[counts >= 2])] = "test"
    return tiers
