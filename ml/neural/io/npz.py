"""Our single-file recording format: one or more scans in a NumPy ``.npz``.

Keys, per scan ``<name>``: ``<name>/images`` (N, 1, 36, 64) float32, ``<name>/image_ids``,
``<name>/trial_image_ids``, ``<name>/responses``, ``<name>/behavior``, ``<name>/tiers``,
``<name>/oracle_ids`` and ``<name>/neurons/<key>``; plus a top-level ``format`` =
:data:`FORMAT`. A file without ``format`` is read as one hand-made scan with the same
keys unprefixed, ``oracle_ids`` and ``neurons/<key>`` optional, and images (N, 36, 64) or
(N, 1, 36, 64), as uint8 0–255 or floats in [0, 1].
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ml.neural.scan import STIMULUS_SHAPE, RecordingError, Scan, default_oracle_ids

FORMAT = "neuroreg-recording/1"
ARRAYS = ("images", "image_ids", "trial_image_ids", "responses", "behavior", "tiers")


def save_npz(scans: Scan | Sequence[Scan], path: str | Path) -> None:
    """Write scans to one compressed ``.npz`` (replacing ``path`` only once complete).

    Args:
        scans: a scan or several, with distinct names free of ``/``.
        path: destination file, written exactly there (no suffix is added).
    """
    scans = [scans] if isinstance(scans, Scan) else list(scans)
    names = [s.name for s in scans]
    if not scans or len(set(names)) != len(names) or any("/" in n for n in names):
        raise RecordingError(f"need one or more scans with distinct names without '/': {names}")
    arrays: dict[str, np.ndarray] = {"format": np.array(FORMAT)}
    for scan in scans:
        for key in (*ARRAYS, "oracle_ids"):
            arrays[f"{scan.name}/{key}"] = getattr(scan, key)
        for key, value in scan.neurons.items():
            # object arrays would need pickle to load; strings keep as fixed-width unicode
            value = value.astype(str) if value.dtype == object else value
            arrays[f"{scan.name}/neurons/{key}"] = value
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]  # numpy stubs: allow_pickle
    os.replace(tmp, path)  # readers never see a half-written file


def load_npz(path: str | Path) -> list[Scan]:
    """Read scans written by :func:`save_npz`, or one hand-made scan.

    Args:
        path: the ``.npz`` file.

    Returns:
        The scans, in file order; a hand-made file's scan is named after the file.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"{path}: no such .npz file")
    try:
        npz = np.load(path, allow_pickle=False)  # a recording is data, never code
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise RecordingError(f"{path}: cannot read as .npz: {exc}") from exc
    with npz:
        if "format" not in npz.files:
            return [_scan(npz, "", path.stem, path)]
        found = str(_get(npz, "format", path))
        if found != FORMAT:
            raise RecordingError(f"{path}: format {found!r} is not {FORMAT!r}")
        names = list(dict.fromkeys(k.split("/", 1)[0] for k in npz.files if "/" in k))
        if not names:
            raise RecordingError(f"{path}: the file holds no scans")
        return [_scan(npz, f"{n}/", n, path) for n in names]


def _get(npz: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    if key not in npz.files:
        raise RecordingError(f"{path}: missing key {key!r}")
    try:
        return npz[key]
    except ValueError as exc:  # an object array, refused by allow_pickle=False
        raise RecordingError(
            f"{path}: {key!r} is a pickled object array; store strings as unicode arrays"
        ) from exc


def _images(raw: np.ndarray, key: str, path: Path) -> np.ndarray:
    if raw.shape[1:] not in (STIMULUS_SHAPE, STIMULUS_SHAPE[1:]):
        raise RecordingError(
            f"{path}: {key!r} must be (N, 36, 64) or (N, 1, 36, 64), got {raw.shape}"
        )
    raw = raw.reshape(raw.shape[0], *STIMULUS_SHAPE)  # (N, 36, 64) → (N, 1, 36, 64)
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) / 255.0
    return raw


def _scan(npz: np.lib.npyio.NpzFile, prefix: str, name: str, path: Path) -> Scan:
    get = {key: _get(npz, prefix + key, path) for key in ARRAYS}
    oracle_key = prefix + "oracle_ids"
    if oracle_key not in npz.files and get["tiers"].shape != get["trial_image_ids"].shape:
        raise RecordingError(  # the default oracle ids pair the two arrays up
            f"{path}: {prefix}tiers has shape {get['tiers'].shape} but {prefix}trial_image_ids "
            f"has {get['trial_image_ids'].shape}"
        )
    neurons_prefix = prefix + "neurons/"
    return Scan(
        name=name,
        images=_images(get["images"], prefix + "images", path),
        image_ids=get["image_ids"],
        trial_image_ids=get["trial_image_ids"],
        responses=get["responses"],
        behavior=get["behavior"],
        tiers=get["tiers"],
        oracle_ids=(
            _get(npz, oracle_key, path)
            if oracle_key in npz.files
            else default_oracle_ids(get["trial_image_ids"], get["tiers"])
        ),
        neurons={
            k[len(neurons_prefix) :]: _get(npz, k, path)
            for k in npz.files
            if k.startswith(neurons_prefix)
        },
    )
