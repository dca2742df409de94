"""What the importer would take from a recording, and what it would drop, before anything
runs (``neuroreg recordings inspect``, ``POST /api/recordings/inspect``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml.neural.io import ACCEPTED, _kind, load_npz, load_sensorium
from ml.neural.io.nwb import inspect_nwb
from ml.neural.io.options import ImportOptions
from ml.neural.scan import TIERS, RecordingError, Scan


def _scan_summary(path: Path, kind: str, scan: Scan) -> dict[str, Any]:
    _, repeats = scan.oracle_repeats()
    counts = [len(r) for r in repeats]
    return {"path": str(path), "format": kind, "scan": scan.name, "neurons": scan.n_neurons,
            "trials": scan.n_trials, "images": len(scan.image_ids),
            "tiers": {t: int((scan.tiers == t).sum()) for t in TIERS},
            "repeats": {"oracle_images": len(counts), "min": min(counts, default=0),
                        "max": max(counts, default=0)},
            "negative_responses": bool((scan.responses < 0).any())}


def inspect_recording(path: str | Path, options: ImportOptions | None = None
                      ) -> list[dict[str, Any]]:
    """One report per file the recording holds: for NWB, every series, table and column
    the importer picked (by path), what it dropped and why (blank presentations, tiers,
    behaviour gaps), the response kind and whether any response is negative; for a
    Sensorium tree or ``.npz``, the scans' trials, images, tiers and repeats.

    Raises:
        RecordingError: what the import itself would raise, naming the file and series.
    """
    path = Path(path)
    options = options or ImportOptions()
    if not path.exists():
        raise RecordingError(f"{path} does not exist; expected {ACCEPTED}")
    kind = _kind(path)
    children = [(path, kind)] if kind else [
        (c, k) for c in sorted(path.iterdir()) if (k := _kind(c)) is not None
    ] if path.is_dir() else []
    if not children:
        raise RecordingError(f"{path} is not a recording; expected {ACCEPTED}")
    out: list[dict[str, Any]] = []
    for child, k in children:
        if k == "nwb":
            out.append({"format": "nwb", **inspect_nwb(child, **options.nwb()).as_dict()})
        elif k == "sensorium":
            out.append(_scan_summary(child, k, load_sensorium(child)))
        else:
            out += [_scan_summary(child, k, s) for s in load_npz(child)]
    return out
