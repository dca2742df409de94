"""Sensorium 2022 static scans (the neuralpredictors ``FileTreeDataset`` layout).

The layout, as documented by sinzlab/sensorium (``notebooks/dataset_tutorial/README.md``)
and read by sinzlab/neuralpredictors (``FileTreeDatasetBase`` in ``data/datasets/base.py``,
which loads ``data/<key>/<item>.npy`` for item = 0 … T-1 and every ``meta/trials`` and
``meta/neurons`` array by file stem)::

    <root>/data/images/<i>.npy        (1, 144, 256) grayscale, 0–255 pixel values
    <root>/data/responses/<i>.npy     (A,) deconvolved calcium activity
    <root>/data/behavior/<i>.npy      (3,) pupil dilation, its derivative, running speed
    <root>/data/pupil_center/<i>.npy  (2,) horizontal, vertical eye position
    <root>/meta/trials/tiers.npy      (T,) train / validation / test / final_test (/ none)
    <root>/meta/trials/frame_image_id.npy  (T,) image id; repeats share the id
    <root>/meta/neurons/*.npy         (A, …) unit_ids, cell_motor_coordinates (A, 3), area,
                                      layer, animal_ids, sessions, scan_idx

Trial files are indices into the ``meta/trials`` arrays, not the presentation order
(that is ``trial_idx.npy``, hashed in the competition scans). In the two competition
scans the ``test``/``final_test`` responses are withheld (zeros), and in the
Sensorium (not Sensorium+) scan so are behaviour and pupil centre; we import them as
they are. V1T (bryanlimy/V1T) likewise downsamples the 144×256 images by 1/4 to 36×64.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml.neural.io._images import to_stimulus
from ml.neural.io._tiers import map_tiers
from ml.neural.scan import STIMULUS_SHAPE, RecordingError, Scan, default_oracle_ids

DATA_KEYS = ("images", "responses", "behavior", "pupil_center")
PIXEL_MAX = 255.0
# columns of data/behavior/<i>.npy we keep (the derivative of pupil size is dropped)
PUPIL_DILATION, RUNNING_SPEED = 0, 2


def is_sensorium(path: Path) -> bool:
    """Whether ``path`` looks like a Sensorium scan directory (``data/`` and ``meta/``)."""
    return (path / "data").is_dir() and (path / "meta").is_dir()


def load_sensorium(root: str | Path, name: str | None = None, *,
                   pixel_max: float = PIXEL_MAX) -> Scan:
    """Read one Sensorium 2022 scan directory into a :class:`Scan`.

    Trials tiered outside train/validation/test/final_test (e.g. ``none``) are dropped;
    ``final_test`` becomes ``test``. Trials showing the same ``frame_image_id`` share one
    image row, read from the first such trial. Oracle ids are the images repeated in the
    test tier. Files are read one trial at a time, so memory holds only the result.

    Args:
        root: the unzipped scan directory (holding ``data/`` and ``meta/``).
        name: scan name; defaults to ``<animal>-<session>-<scan>`` from ``meta/neurons``
            (the neuralpredictors data key), else the directory name.
        pixel_max: the pixel value that means white: 255 as the format writes images;
            1 for a copy someone already rescaled to [0, 1]. Nothing is rescaled by
            guess: with 255, images whose every pixel is within [0, 1] are refused
            (dividing them by 255 again would leave stimuli in [0, 0.004]).

    Returns:
        The scan, behaviour columns ``(pupil_x, pupil_y, pupil_size, running_speed)``.
    """
    root = Path(root)
    if not is_sensorium(root):
        raise RecordingError(f"{root}: not a Sensorium scan directory (needs data/ and meta/)")
    raw_tiers = _meta(root, "trials/tiers.npy")
    trial_image_ids = _meta(root, "trials/frame_image_id.npy")
    n = len(raw_tiers)
    if trial_image_ids.shape != (n,):
        raise RecordingError(
            f"{root}: meta/trials/frame_image_id.npy has shape {trial_image_ids.shape} but "
            f"meta/trials/tiers.npy lists {n} trials"
        )
    for key in DATA_KEYS:
        _check_trial_files(root, key, n)
    tiers, keep = map_tiers(raw_tiers)
    trials = np.flatnonzero(keep)
    if trials.size == 0:
        raise RecordingError(f"{root}: no trial has a train/validation/test tier")
    neurons = _neurons(root)
    responses, behavior = _trial_arrays(root, trials)
    image_ids, images = _images(root, trials, trial_image_ids, pixel_max)
    kept_ids, kept_tiers = trial_image_ids[trials], tiers[trials]
    return Scan(
        name=name or _default_name(root, neurons),
        images=images,
        image_ids=image_ids,
        trial_image_ids=kept_ids,
        responses=responses,
        behavior=behavior,
        tiers=kept_tiers,
        oracle_ids=default_oracle_ids(kept_ids, kept_tiers),
        neurons=neurons,
    )


def _load(path: Path, root: Path) -> np.ndarray:
    try:
        # no pickles: a data set is untrusted input, and the real files are plain arrays
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise RecordingError(f"{root}: missing {path.relative_to(root)}") from None
    except ValueError as exc:
        raise RecordingError(f"{root}: cannot read {path.relative_to(root)}: {exc}") from exc


def _meta(root: Path, rel: str) -> np.ndarray:
    arr = _load(root / "meta" / rel, root)
    if rel.endswith("tiers.npy"):
        return arr.astype(str)
    if not np.issubdtype(arr.dtype, np.number) or not np.all(arr == np.round(arr)):
        raise RecordingError(f"{root}: meta/{rel} must hold integer ids, got {arr.dtype}")
    return arr.astype(np.int64)


def _check_trial_files(root: Path, key: str, n: int) -> None:
    folder = root / "data" / key
    if not folder.is_dir():
        raise RecordingError(f"{root}: missing directory data/{key}")
    stems = {p.stem for p in folder.glob("*.npy")}
    if len(stems) != n:
        raise RecordingError(
            f"{root}: data/{key} has {len(stems)} trial files but meta/trials/tiers.npy "
            f"lists {n} trials"
        )
    missing = sorted(set(map(str, range(n))) - stems, key=lambda s: (len(s), s))
    if missing:
        raise RecordingError(
            f"{root}: data/{key}/{missing[0]}.npy is missing (files must be named 0 … {n - 1})"
        )


def _trial_vector(root: Path, key: str, trial: int, size: int | None) -> np.ndarray:
    vec = _load(root / "data" / key / f"{trial}.npy", root).ravel()  # (1, k) or (k,) seen
    if size is not None and vec.size != size:
        raise RecordingError(
            f"{root}: data/{key}/{trial}.npy has {vec.size} values, expected {size}"
        )
    return vec


def _trial_arrays(root: Path, trials: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    first = _trial_vector(root, "responses", int(trials[0]), None)
    responses = np.empty((trials.size, first.size), np.float32)  # (T, A)
    behavior = np.empty((trials.size, 4), np.float32)  # (T, 4) as BEHAVIOR
    for row, trial in enumerate(trials.tolist()):
        responses[row] = _trial_vector(root, "responses", trial, first.size)
        pupil = _trial_vector(root, "pupil_center", trial, 2)
        extra = _trial_vector(root, "behavior", trial, 3)
        behavior[row] = (pupil[0], pupil[1], extra[PUPIL_DILATION], extra[RUNNING_SPEED])
    return responses, behavior


def _images(
    root: Path, trials: np.ndarray, trial_image_ids: np.ndarray, pixel_max: float
) -> tuple[np.ndarray, np.ndarray]:
    # repeats of an image are the same file content; reading only the first saves ~1/6 of
    # a scan's image reads (100 test images × 10 repeats in 6,000 trials)
    first_trial: dict[int, int] = {}
    for trial in trials.tolist():
        first_trial.setdefault(int(trial_image_ids[trial]), trial)
    ids = np.array(sorted(first_trial), dtype=np.int64)
    images = np.empty((ids.size, *STIMULUS_SHAPE), np.float32)  # (N, 1, 36, 64)
    brightest = -np.inf
    for row, image_id in enumerate(ids.tolist()):
        rel = f"data/images/{first_trial[image_id]}.npy"
        frame = _load(root / rel, root)
        brightest = max(brightest, float(np.nanmax(frame)) if frame.size else -np.inf)
        images[row] = to_stimulus(frame, scale=pixel_max, where=f"{root}/{rel}")
    if pixel_max > 1 and brightest <= 1.0:
        raise RecordingError(
            f"{root}/data/images: every pixel of the {ids.size} images is within [0, 1] "
            f"(the brightest is {brightest:.4g}), but Sensorium images are 0–{pixel_max:g}; "
            "they look rescaled already. Load them with load_sensorium(root, "
            "pixel_max=1) (e.g. to save_npz them for the service), or restore the 0–255 "
            "files; nothing is rescaled by guess")
    return ids, images


def _neurons(root: Path) -> dict[str, np.ndarray]:
    folder = root / "meta" / "neurons"
    if not folder.is_dir():
        return {}
    return {p.stem: _load(p, root) for p in sorted(folder.glob("*.npy"))}


def _default_name(root: Path, neurons: dict[str, np.ndarray]) -> str:
    keys = ("animal_ids", "sessions", "scan_idx")
    if all(k in neurons and neurons[k].size for k in keys):
        return "-".join(str(neurons[k].ravel()[0]) for k in keys)
    return root.resolve().name
