"""Artifact files under one root, with a row per file (size, sha256). A root an object
store backs (:mod:`core.store.objects`: ``NEUROREG_S3_BUCKET``) keeps the files there:
written here first, then uploaded; read back through its cache."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.store import objects
from core.store.models import Artifact
from core.store.runs import lock_run
from neuroreg.names import (
    ARTIFACT_NAME_MAX,
    ARTIFACT_NAME_PATTERN,
    ARTIFACT_PATH_PATTERN,
    artifact_path_problem,
)

# one definition with the client's, which checks a name before it builds a URL with it
NAME_PATTERN, NAME_MAX = ARTIFACT_NAME_PATTERN, ARTIFACT_NAME_MAX
PATH_PATTERN = ARTIFACT_PATH_PATTERN


class UnsafePath(ValueError):
    pass


def check_path(name: str) -> str:
    """Artifact paths: names joined by ``/`` (folders, as MLflow's artifacts have)."""
    problem = artifact_path_problem(name)
    if problem is not None:
        raise UnsafePath(problem)
    return name


def _check_tree(session: Session, run_id: int, name: str) -> None:
    """A path may not be a file and a folder at once: ``a`` and ``a/b`` cannot both be a
    run's artifacts (on disk, one of them could not be written)."""
    parts = name.split("/")
    above = ["/".join(parts[:i]) for i in range(1, len(parts))]
    clash = session.execute(select(Artifact.name).where(
        Artifact.run_id == run_id,
        Artifact.name.in_(above) | Artifact.name.startswith(name + "/", autoescape=True))
    ).first()
    if clash is not None:
        raise UnsafePath(f"artifact {name!r} would make {clash[0]!r} both a file and a folder")


def _local(root: Path, relative: str) -> Path:
    """Where a stored relative path's file is (or is staged) under ``root``."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise UnsafePath(f"{relative!r} escapes the artifact root")
    return path


def resolve(root: Path, relative: str) -> Path:
    """The file for a stored relative path to read; never outside ``root`` (with an
    object store, its cached copy, fetched when missing or stale)."""
    path = _local(root, relative)
    store = objects.for_root(root)
    return store.fetch(relative) if store is not None else path


def download_url(root: Path, row: Artifact) -> str | None:
    """A short-lived URL that downloads ``row`` from the object store backing ``root``;
    None when files back it (the API sends the file itself)."""
    store = objects.for_root(root)
    return None if store is None else store.get_url(
        row.path, filename=row.name.rsplit("/", 1)[-1], media_type=row.media_type)


def save_artifact(
    session: Session, root: Path, *, run_id: int, name: str, data: bytes, media_type: str
) -> Artifact:
    """Write ``data`` atomically to ``root/<run>/<name>``; saving a name again replaces it.
    A name may be a path (``model/MLmodel``)."""
    relative = f"{run_id}/{check_path(name)}"
    _check_tree(session, run_id, name)
    target = _local(root, relative)
    with _staged(target) as (f, tmp):
        with f:
            f.write(data)
        return _install(session, root, tmp, target, run_id=run_id, name=name,
                        relative=relative,
                        media_type=media_type, size=len(data),
                        sha256=hashlib.sha256(data).hexdigest())


async def save_artifact_stream(
    session: Session, root: Path, *, run_id: int, name: str, chunks: AsyncIterator[bytes],
    media_type: str, limit: int,
) -> Artifact:
    """Stream an upload to ``root/<run>/<name>`` (atomically, hashing as it goes); a name
    may be a path (``model/MLmodel``).

    Raises:
        UnsafePath: a bad name.
        OverflowError: more than ``limit`` bytes (nothing is kept).
    """
    relative = f"{run_id}/{check_path(name)}"
    _check_tree(session, run_id, name)
    target = _local(root, relative)
    digest, size = hashlib.sha256(), 0
    with _staged(target) as (f, tmp):
        with f:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise OverflowError(f"upload exceeds {limit} bytes")
                digest.update(chunk)
                f.write(chunk)
        return _install(session, root, tmp, target, run_id=run_id, name=name,
                        relative=relative, media_type=media_type, size=size,
                        sha256=digest.hexdigest())


@contextlib.contextmanager
def _staged(target: Path) -> Iterator[tuple[BinaryIO, str]]:
    """A new temporary file beside ``target`` (open for writing, and its path), removed
    when the block fails: nothing half-written is left behind."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # private, as files
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        yield os.fdopen(fd, "wb"), tmp
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _install(session: Session, root: Path, tmp: str, target: Path, *, run_id: int,
             name: str, relative: str, media_type: str, size: int, sha256: str) -> Artifact:
    """Move the written file over ``target`` (or upload it to the object store backing
    ``root``) and create or update its row, the run locked
    (:func:`~core.store.runs.lock_run`) until the caller commits: of two saves of one
    name at once, one makes the row and the other updates it, and the file stored is the
    one the row describes. An object store that fails raises
    :class:`~core.store.objects.StoreUnavailable` before any row changes."""
    lock_run(session, run_id)
    store = objects.for_root(root)
    if store is not None:
        store.put(relative, tmp, media_type)
        os.unlink(tmp)
    else:
        os.replace(tmp, target)
    return record(session, run_id=run_id, name=name, relative=relative,
                  media_type=media_type, size=size, sha256=sha256)


def record(session: Session, *, run_id: int, name: str, relative: str, media_type: str,
           size: int, sha256: str) -> Artifact:
    """Create or update the row of a file stored as ``relative`` (the run locked by the
    caller)."""
    row = session.execute(
        select(Artifact).where(Artifact.run_id == run_id, Artifact.name == name)
    ).scalar_one_or_none()
    if row is None:
        row = Artifact(run_id=run_id, name=name, path=relative)
        session.add(row)
    row.media_type, row.size_bytes, row.sha256 = media_type, size, sha256
    session.flush()
    return row


def remove_files(root: Path, paths: Sequence[str]) -> None:
    """Unlink the files of deleted artifact rows (after their transaction committed: a
    rollback keeps both); one already gone is no error."""
    store = objects.for_root(root)
    for rel in paths:
        try:
            if store is not None:
                store.delete(rel)
            else:
                _local(root, rel).unlink()
        except objects.StoreUnavailable as exc:  # the row is gone; the object is left
            objects.log.warning("artifact %s left in the object store: %s", rel, exc)
        except (OSError, UnsafePath):
            pass


def list_artifacts(session: Session, run_id: int) -> Sequence[Artifact]:
    return (
        session.execute(select(Artifact).where(Artifact.run_id == run_id).order_by(Artifact.name))
        .scalars()
        .all()
    )


def get_artifact(session: Session, run_id: int, name: str) -> Artifact | None:
    return session.execute(
        select(Artifact).where(Artifact.run_id == run_id, Artifact.name == name)
    ).scalar_one_or_none()
