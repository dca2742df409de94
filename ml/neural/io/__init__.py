"""Recording importers: Sensorium 2022 scan directories, NWB 2 files and our ``.npz``.

Every loader returns :class:`~ml.neural.scan.Scan` objects, so each one is validated the
same way; ``docs/recordings.md`` describes what is read from each format.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ml.neural.io.npz import FORMAT, load_npz, save_npz
from ml.neural.io.nwb import inspect_nwb, load_nwb
from ml.neural.io.options import ImportOptions
from ml.neural.io.sensorium import is_sensorium, load_sensorium
from ml.neural.scan import RecordingError, Scan

ACCEPTED = (
    "a Sensorium scan directory (holding data/ and meta/), an .nwb file, an .npz file, "
    "or a directory of these"
)

_LOADERS: dict[str, Callable[[Path, ImportOptions], list[Scan]]] = {
    "sensorium": lambda p, o: [load_sensorium(p)],
    "nwb": lambda p, o: [load_nwb(p, **o.nwb())],
    "npz": lambda p, o: load_npz(p),
}


def _kind(path: Path) -> str | None:
    if path.is_dir():
        return "sensorium" if is_sensorium(path) else None
    suffix = path.suffix.lower()
    return {".nwb": "nwb", ".npz": "npz"}.get(suffix) if path.is_file() else None


def load_recording(path: str | Path, options: ImportOptions | None = None) -> list[Scan]:
    """Load every scan at ``path``, choosing the reader by what the path is.

    Args:
        path: a Sensorium scan directory, a ``.nwb`` or ``.npz`` file, or a directory
            holding several of those (read in name order; other entries are ignored).
        options: how NWB files are read; refused for a recording without one.

    Returns:
        The scans, with distinct names.
    """
    path = Path(path)
    if not path.exists():
        raise RecordingError(f"{path} does not exist; expected {ACCEPTED}")
    options = options or ImportOptions()
    kind = _kind(path)
    if kind is not None:
        children = [(path, kind)]
    else:
        entries = sorted(path.iterdir()) if path.is_dir() else []
        children = [(child, k) for child in entries if (k := _kind(child)) is not None]
    if not children:
        hint = " (unzip it first)" if path.suffix.lower() == ".zip" else ""
        raise RecordingError(f"{path} is not a recording{hint}; expected {ACCEPTED}")
    if options.given() and all(k != "nwb" for _, k in children):
        raise RecordingError(f"importer: {', '.join(options.given())} apply to NWB files; "
                             f"{path} holds {', '.join(sorted({k for _, k in children}))}")
    scans = [scan for child, k in children for scan in _LOADERS[k](child, options)]
    names = [s.name for s in scans]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise RecordingError(f"{path}: several scans are named {repeated}; names must differ")
    return scans


__all__ = [
    "ACCEPTED",
    "FORMAT",
    "ImportOptions",
    "inspect_nwb",
    "load_npz",
    "load_nwb",
    "load_recording",
    "load_sensorium",
    "save_npz",
]
