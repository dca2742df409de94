"""Artifact files under one root, with a row per file (size, sha256)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from neuroreg.names import ARTIFACT_NAME_MAX, ARTIFACT_NAME_PATTERN, artifact_name_problem
from server.store.models import Artifact

# one definition with the client's, which checks a name before it builds a URL with it
NAME_PATTERN, NAME_MAX = ARTIFACT_NAME_PATTERN, ARTIFACT_NAME_MAX


class UnsafePath(ValueError):
    pass


def check_name(name: str) -> str:
    """Artifact names are single path components of safe characters."""
    problem = artifact_name_problem(name)
    if problem is not None:
        raise UnsafePath(problem)
    return name


def resolve(root: Path, relative: str) -> Path:
    """The file for a stored relative path; never outside ``root``."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise UnsafePath(f"{relative!r} escapes the artifact root")
    return path


def save_artifact(
    session: Session, root: Path, *, run_id: int, name: str, data: bytes, media_type: str
) -> Artifact:
    """Write ``data`` atomically to ``root/<run>/<name>``; saving a name again replaces it."""
    relative = f"{run_id}/{check_name(name)}"
    target = resolve(root, relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, target)
    digest = hashlib.sha256(data).hexdigest()
    return _record(session, run_id, name, relative, media_type, len(data), digest)


async def save_artifact_stream(
    session: Session, root: Path, *, run_id: int, name: str, chunks: AsyncIterator[bytes],
    media_type: str, limit: int,
) -> Artifact:
    """Stream an upload to ``root/<run>/<name>`` (atomically, hashing as it goes).

    Raises:
        UnsafePath: a bad name.
        OverflowError: more than ``limit`` bytes (nothing is kept).
    """
    relative = f"{run_id}/{check_name(name)}"
    target = resolve(root, relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise OverflowError(f"upload exceeds {limit} bytes")
                digest.update(chunk)
                f.write(chunk)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return _record(session, run_id, name, relative, media_type, size, digest.hexdigest())


def _record(session: Session, run_id: int, name: str, relative: str, media_type: str,
            size: int, sha256: str) -> Artifact:
    """The artifact's row, created or updated for the file just written."""
    row = session.execute(
        select(Artifact).where(Artifact.run_id == run_id, Artifact.name == name)
    ).scalar_one_or_none()
    if row is None:
        row = Artifact(run_id=run_id, name=name, path=relative)
        session.add(row)
    row.media_type, row.size_bytes, row.sha256 = media_type, size, sha256
    session.flush()
    return row


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
