"""Artifact files under one root, with a row per file (size, sha256)."""

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


def resolve(root: Path, relative: str) -> Path:
    """The file for a stored relative path; never outside ``root``."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise UnsafePath(f"{relative!r} escapes the artifact root")
    return path


def save_artifact(
    session: Session, root: Path, *, run_id: int, name: str, data: bytes, media_type: str
) -> Artifact:
    """Write ``data`` atomically to ``root/<run>/<name>``; saving a name again replaces it.
    A name may be a path (``model/MLmodel``)."""
    relative = f"{run_id}/{check_path(name)}"
    _check_tree(session, run_id, name)
    target = resolve(root, relative)
    with _staged(target) as (f, tmp):
        with f:
            f.write(data)
        return _install(session, tmp, target, run_id=run_id, name=name, relative=relative,
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
    target = resolve(root, relative)
    digest, size = hashlib.sha256(), 0
    with _staged(target) as (f, tmp):
        with f:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise OverflowError(f"upload exceeds {limit} bytes")
                digest.update(chunk)
                f.write(chunk)
        return _install(session, tmp, target, run_id=run_id, name=name, relative=relative,
                        media_type=media_type, size=size, sha256=digest.hexdigest())


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


def _install(session: Session, tmp: str, target: Path, *, run_id: int, name: str,
             relative: str, media_type: str, size: int, sha256: str) -> Artifact:
    """Move the written file over ``target`` and create or update its row, the run locked
    (:func:`~core.store.runs.lock_run`) until the caller commits: of two saves of one
    name at once, one makes the row and the other updates it, and the file on disk is
    the one the row describes."""
    lock_run(session, run_id)
    os.replace(tmp, target)
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
    for rel in paths:
        with contextlib.suppress(OSError, UnsafePath):
            resolve(root, rel).unlink()


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
