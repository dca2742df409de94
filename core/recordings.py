"""Recordings a similarity run may read: files and folders under the recordings root.

``config.recording`` is a path relative to ``Settings.recordings``; a team mounts its
data there (docker-compose: the same volume on api and workers). Anything resolving
outside the root is refused, so a request cannot make a worker read arbitrary files.
"""

from __future__ import annotations

from pathlib import Path

from core.store.runs import NotFound

FIELD = "config.recording"


def resolve(root: Path, name: str, field: str = FIELD) -> Path:
    """The absolute path of ``name`` under ``root`` (recordings, models, datasets).

    Raises:
        NotFound: naming ``field`` when it escapes ``root`` or does not exist.
    """
    root = root.resolve()
    path = (root / name).resolve()
    if name.startswith("/") or not path.is_relative_to(root) or path == root:
        raise NotFound(f"{name!r} must name a path inside {root}", field=field)
    if not path.exists():
        raise NotFound(f"{name!r} does not exist in {root}", field=field)
    return path


def listing(root: Path) -> list[dict[str, object]]:
    """The recordings a user can name: top-level entries of ``root``."""
    if not root.is_dir():
        return []
    out: list[dict[str, object]] = []
    for p in sorted(root.iterdir()):
        if p.name.startswith("."):
            continue
        size = p.stat().st_size if p.is_file() else sum(
            f.stat().st_size for f in p.rglob("*") if f.is_file()
        )
        out.append({"name": p.name, "kind": "file" if p.is_file() else "folder", "bytes": size})
    return out
