"""Two-photon recordings in NWB 2 (pynwb), as DANDI (NeuroConv) and the Allen Institute
(AllenSDK) write them: ROI responses to presented images.

Read from the file:

- responses: a ``RoiResponseSeries`` in ``processing['ophys']``, inside a ``DfOverF``
  or ``Fluorescence`` container (DfOverF first), or the one named by ``responses=``
  (``processing/ophys/DfOverF/traces``, ``DfOverF/traces`` or ``traces``); unit ids are
  the ids of its ROI table rows.
- presentations: a ``TimeIntervals`` table (``nwb.trials`` or one in ``nwb.intervals``,
  e.g. Allen's ``natural_scenes_presentations``) with ``start_time``, ``stop_time``, an
  image column (``image_column=``, else the first of :data:`IMAGE_COLUMNS`: frame index
  into the stimulus template) and optionally ``tier``; or an ``IndexSeries`` in
  ``nwb.stimulus`` (each index shown from its timestamp to the next). Negative frames
  (Allen's blank sweeps, ``frame = -1``) are dropped and counted.
- stimuli: ``nwb.stimulus_template``, an ``Images`` container (frames in
  ``order_of_images``) or an ``ImageSeries`` with (n, H, W) data, or the images an
  ``IndexSeries`` indexes.
- behaviour: pupil position, pupil size and running speed, matched by name and unit in
  the behaviour modules and acquisition (``_nwb_behavior``).

Each presentation's response is the mean of the samples in [start + offset, start +
offset + window) (``response_offset``, ``response_window``; by default the
presentation itself); its behaviour is the mean over the presentation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ml.neural.io._images import to_stimulus
from ml.neural.io._nwb_behavior import Gaps, behavior_means
from ml.neural.io._tiers import map_tiers
from ml.neural.io._windows import window_means
from ml.neural.scan import STIMULUS_SHAPE, RecordingError, Scan, default_oracle_ids

VALIDATION_FRACTION = 0.1  # of the images shown once, when the table has no tier column
IMAGE_COLUMNS = ("image_id", "frame", "image_index", "stimulus_index", "image")
"""Presentation-table columns that hold the frame shown, by convention: ours, AllenSDK's
(``natural_scenes_presentations.frame``), and common NeuroConv choices."""

FrameFit = Literal["refuse", "crop", "pad"]


@dataclass
class ImportReport:
    """What the importer took from a file and what it dropped (``neuroreg recordings
    inspect``)."""

    path: str
    responses: str = ""              # the series' full path
    response_kind: str = ""          # DfOverF or Fluorescence
    responses_found: list[str] = field(default_factory=list)
    negative_responses: bool = False  # dF/F usually is somewhere
    neurons: int = 0
    presentations: str = ""          # the table or IndexSeries, with its image column
    presentations_total: int = 0
    blank_dropped: int = 0           # frame < 0 (Allen's blank sweeps)
    tier_dropped: int = 0            # tiers outside train/validation/test
    gap_dropped: int = 0             # a behaviour series had no sample (behavior_gaps=drop)
    gap_filled: int = 0              # … and was interpolated (behavior_gaps=fill)
    trials: int = 0
    images: int = 0
    template: str = ""
    tiers: dict[str, int] = field(default_factory=dict)
    repeats: dict[str, int] = field(default_factory=dict)  # oracle images, min/max repeats
    behavior: dict[str, str | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_nwb(
    path: str | Path,
    name: str | None = None,
    *,
    responses: str | None = None,
    intervals: str | None = None,
    template: str | None = None,
    image_column: str | None = None,
    allow_missing_behavior: bool = False,
    behavior_gaps: Gaps = "error",
    response_offset: float = 0.0,
    response_window: float | None = None,
    frame_fit: FrameFit = "refuse",
    seed: int = 0,
) -> Scan:
    """Read an NWB 2 two-photon session into a :class:`Scan`.

    Without a ``tier`` column, images shown at least twice are ``test`` (and the oracle
    images), and the others are split 90/10 into train/validation by ``seed``. With one,
    ``final_test`` becomes ``test`` and trials outside train/validation/test are dropped.

    Args:
        path: the ``.nwb`` file.
        name: scan name; defaults to the file name without ``.nwb``.
        responses: RoiResponseSeries to use: its path, ``"<container>/<series>"`` or its
            name when that is unique.
        intervals: presentation table in ``nwb.intervals`` (``"trials"`` included), or
            an ``IndexSeries`` in ``nwb.stimulus``.
        template: entry of ``nwb.stimulus_template``; needed only when there are several.
        image_column: the table column holding each presentation's frame index (default:
            the first of :data:`IMAGE_COLUMNS` the table has).
        allow_missing_behavior: fill missing behaviour columns with zeros instead of
            refusing the file.
        behavior_gaps: a presentation a behaviour series has no sample in: ``error``,
            ``fill`` (interpolated) or ``drop`` (the presentation).
        response_offset: seconds after each onset the response window starts (the
            indicator's rise: GCaMP6s peaks ~0.2–0.5 s after a flash).
        response_window: its length in seconds (default: the presentation's duration).
        frame_fit: frames not 9:16 are refused, centre-cropped (``crop``) or padded
            (``pad``).
        seed: the train/validation split when the table has no tier column.

    Returns:
        The scan; ``image_ids`` are frame indices into the stimulus template.
    """
    return read_nwb(path, name, responses=responses, intervals=intervals, template=template,
                    image_column=image_column, allow_missing_behavior=allow_missing_behavior,
                    behavior_gaps=behavior_gaps, response_offset=response_offset,
                    response_window=response_window, frame_fit=frame_fit, seed=seed)[0]


def inspect_nwb(path: str | Path, **options: Any) -> ImportReport:
    """What :func:`load_nwb` would take from the file and drop, with the same options."""
    return read_nwb(path, **options)[1]


def read_nwb(
    path: str | Path,
    name: str | None = None,
    *,
    responses: str | None = None,
    intervals: str | None = None,
    template: str | None = None,
    image_column: str | None = None,
    allow_missing_behavior: bool = False,
    behavior_gaps: Gaps = "error",
    response_offset: float = 0.0,
    response_window: float | None = None,
    frame_fit: FrameFit = "refuse",
    seed: int = 0,
) -> tuple[Scan, ImportReport]:
    """:func:`load_nwb`, and the report of what it took and dropped."""
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"{path}: no such NWB file")
    if response_window is not None and not response_window > 0:
        raise RecordingError(f"response_window: must be > 0 seconds, got {response_window}")
    if behavior_gaps not in ("error", "fill", "drop"):
        raise RecordingError(f"behavior_gaps: {behavior_gaps!r} is not error, fill or drop")
    if frame_fit not in ("refuse", "crop", "pad"):
        raise RecordingError(f"frame_fit: {frame_fit!r} is not refuse, crop or pad")
    # pynwb takes ~1 s to import; only NWB users should pay for it
    from pynwb import NWBHDF5IO

    report = ImportReport(path=str(path))
    try:
        io = NWBHDF5IO(str(path), "r")
    except Exception as exc:  # h5py/hdmf raise many types for a file that is not NWB
        raise RecordingError(f"{path}: cannot open as NWB: {exc}") from exc
    with io:
        try:
            nwb = io.read()
        except Exception as exc:
            raise RecordingError(f"{path}: cannot read as NWB: {exc}") from exc
        pres = _presentations(nwb, intervals, image_column, path)
        report.presentations, report.presentations_total = pres.source, len(pres.frames)
        shown = pres.frames >= 0
        report.blank_dropped = int((~shown).sum())
        start, stop, frames = pres.start[shown], pres.stop[shown], pres.frames[shown]
        raw_tiers = None if pres.tiers is None else pres.tiers[shown]
        if raw_tiers is None:
            tiers, keep = _assign_tiers(frames, seed, path), np.ones(len(frames), bool)
        else:
            tiers, keep = map_tiers(raw_tiers)
        report.tier_dropped = int((~keep).sum())
        if not keep.any():
            raise RecordingError(f"{path}: no presentation has a train/validation/test tier")
        start, stop, frames, tiers = start[keep], stop[keep], frames[keep], tiers[keep]
        spath, series, found = _roi_series(nwb, responses, path)
        report.responses, report.responses_found = spath, found
        report.response_kind = spath.split("/")[-2]
        on = start + response_offset
        off = on + (stop - start if response_window is None else response_window)
        resp = window_means(series.get_timestamps(), series.data, on, off,
                            what=f"{path}: {spath}")
        report.negative_responses = bool((resp < 0).any())
        behavior, kept, picks = behavior_means(
            nwb, start, stop, allow_missing=allow_missing_behavior, path=path,
            gaps=behavior_gaps, labels=frames)
        report.gap_dropped, report.gap_filled = picks.dropped, picks.filled
        report.behavior = {q: None if f is None else f"{f.path} [{f.unit or 'no unit'}]"
                           for q, f in (("pupil position", picks.position),
                                        ("pupil size", picks.size),
                                        ("running speed", picks.running))}
        start, stop, frames, tiers, behavior, resp = (
            start[kept], stop[kept], frames[kept], tiers[kept], behavior[kept], resp[kept])
        if not len(frames):
            raise RecordingError(f"{path}: every presentation was dropped for a gap in "
                                 "behaviour")
        unit_ids = np.asarray(series.rois.table.id[:])[np.asarray(series.rois.data[:])]
        image_ids = np.unique(frames).astype(np.int64)
        report.template, images = _frames(nwb, pres.images, template, image_ids, path,
                                          frame_fit)

    trial_ids = frames.astype(np.int64)
    scan = Scan(
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
    report.neurons, report.trials, report.images = scan.n_neurons, scan.n_trials, len(image_ids)
    report.tiers = {t: int((scan.tiers == t).sum()) for t in ("train", "validation", "test")}
    _, repeats = scan.oracle_repeats()
    counts = [len(r) for r in repeats]
    report.repeats = {"oracle_images": len(counts), "min": min(counts, default=0),
                      "max": max(counts, default=0)}
    return scan, report


@dataclass
class _Presentations:
    start: np.ndarray
    stop: np.ndarray
    frames: np.ndarray
    tiers: np.ndarray | None
    source: str
    images: Any = None  # the Images an IndexSeries indexes


def _presentations(nwb: Any, wanted: str | None, column: str | None, path: Path
                   ) -> _Presentations:
    """Start, stop, frame and tier (or None) per presentation, from an intervals table
    or an IndexSeries."""
    tables = dict(nwb.intervals or {})
    if nwb.trials is not None:
        tables.setdefault("trials", nwb.trials)
    indexed = {k: v for k, v in (nwb.stimulus or {}).items()
               if type(v).__name__ == "IndexSeries"}
    columns = (column,) if column else IMAGE_COLUMNS
    if wanted is not None:
        if wanted in indexed and wanted not in tables:
            return _index_series(indexed[wanted], path)
        if wanted not in tables:
            raise RecordingError(f"{path}: no intervals table or IndexSeries {wanted!r}; "
                                 f"tables {sorted(tables)}, IndexSeries {sorted(indexed)}")
        table = tables[wanted]
        col = next((c for c in columns if c in table.colnames), None)
        if col is None:
            raise RecordingError(f"{path}: intervals/{wanted} has no {' or '.join(columns)} "
                                 f"column (columns: {list(table.colnames)}); name the image "
                                 "column with image_column=")
    else:
        usable = [(n, c) for n in sorted(tables, key=lambda n: (n != "trials", n))
                  for c in columns if c in tables[n].colnames]
        if not usable:
            if indexed:
                return _index_series(next(iter(indexed.values())), path)
            found = {n: list(t.colnames) for n, t in tables.items()}
            raise RecordingError(
                f"{path}: no intervals table with a {' or '.join(columns)} column (tables: "
                f"{found}) and no IndexSeries in stimulus; name the column with "
                "image_column=")
        table, col = tables[usable[0][0]], usable[0][1]
    missing = [c for c in ("start_time", "stop_time") if c not in table.colnames]
    if missing:
        raise RecordingError(f"{path}: intervals/{table.name} lacks columns {missing}")
    raw = np.asarray(table[col].data[:])
    if raw.dtype.kind == "f" and np.all(np.isnan(raw) | (raw == np.round(raw))):
        raw = np.where(np.isnan(raw), -1, raw).astype(np.int64)  # Allen stores frames as float
    if not np.issubdtype(raw.dtype, np.integer):
        raise RecordingError(f"{path}: intervals/{table.name}.{col} must hold integer frame "
                             f"indices, got {raw.dtype}")
    tiers = None
    if "tier" in table.colnames:  # h5py hands back bytes or str depending on the writer
        tiers = np.array(
            [v.decode() if isinstance(v, bytes) else str(v) for v in table["tier"].data[:]]
        )
    return _Presentations(
        np.asarray(table["start_time"].data[:], dtype=np.float64),
        np.asarray(table["stop_time"].data[:], dtype=np.float64),
        raw.astype(np.int64), tiers, f"intervals/{table.name}.{col}")


def _index_series(series: Any, path: Path) -> _Presentations:
    """An IndexSeries: frame data[k] is shown from timestamps[k] until timestamps[k+1]
    (the last for the median interval)."""
    times = np.asarray(series.get_timestamps(), dtype=np.float64)
    frames = np.asarray(series.data[:]).astype(np.int64)
    where = f"stimulus/{series.name}"
    if times.ndim != 1 or len(times) != len(frames) or len(times) < 2:
        raise RecordingError(f"{path}: {where}: {len(times)} timestamps for {len(frames)} "
                             "indices (an IndexSeries needs one per presentation, ≥ 2)")
    if np.any(np.diff(times) <= 0):
        raise RecordingError(f"{path}: {where}: timestamps are not strictly ascending")
    step = np.diff(times)
    stop = np.append(times[1:], times[-1] + float(np.median(step)))
    images = getattr(series, "indexed_images", None)
    if images is None:
        images = getattr(series, "indexed_timeseries", None)
    return _Presentations(times, stop, frames, None, where, images)


def _roi_series(nwb: Any, wanted: str | None, path: Path) -> tuple[str, Any, list[str]]:
    """(full path, series, every candidate's path) of the responses."""
    from pynwb.ophys import DfOverF, Fluorescence

    module = nwb.processing.get("ophys")
    containers = [] if module is None else list(module.data_interfaces.values())
    found = {
        f"processing/ophys/{c.name}/{s.name}": s
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
        first = next(iter(found))
        return first, found[first], list(found)
    key = wanted.strip("/")
    matches = [k for k in found if k == key or k.endswith("/" + key)]
    if len(matches) != 1:
        problem = "no" if not matches else "more than one"
        raise RecordingError(
            f"{path}: {problem} RoiResponseSeries matches {wanted!r}; has {sorted(found)} "
            "(name one by its path)"
        )
    return matches[0], found[matches[0]], list(found)


def _frames(nwb: Any, indexed: Any, wanted: str | None, frames: np.ndarray, path: Path,
            fit: FrameFit) -> tuple[str, np.ndarray]:
    """(where, images) of ``frames`` from the IndexSeries' images, or the template."""
    if indexed is not None and wanted is None:
        source, key = indexed, f"{indexed.name} (indexed)"
    else:
        templates = dict(nwb.stimulus_template or {})
        if wanted is None and len(templates) != 1:
            raise RecordingError(
                f"{path}: {len(templates)} stimulus templates {sorted(templates)}; name one "
                "with template="
            )
        key = wanted if wanted is not None else next(iter(templates))
        if key not in templates:
            raise RecordingError(f"{path}: no stimulus template {key!r}; has "
                                 f"{sorted(templates)}")
        source = templates[key]
    return f"stimulus_template/{key}", _template_frames(source, key, frames, path, fit)


def _template_frames(source: Any, key: str, frames: np.ndarray, path: Path,
                     fit: FrameFit) -> np.ndarray:
    from pynwb.base import Images

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
        images[row] = to_stimulus(pixels, scale=scale, where=f"{path}: {key}[{frame}]",
                                  fit=fit)
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
