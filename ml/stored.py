"""Reading ``.npz`` files that someone else wrote: no pickles, and no allocation beyond a
bound decided before a byte is decompressed.

An ``.npz`` is a zip of ``.npy`` members. Each member's header states its dtype and
shape, and ``numpy`` allocates that much when it reads the member — so a 0.5 MiB file of
deflated zeros can claim a gigabyte (a decompression bomb). :func:`load_npz` reads the
zip's central directory and every member's header first, refuses object dtypes and
anything whose arrays would exceed ``max_bytes`` in all, and only then reads the arrays.
Every complaint is a :class:`StoredFileError` that names the file (``what``).
"""

from __future__ import annotations

import io
import math
import os
import struct
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

DIRECTORY_MAX = 1 << 20
"""Bytes of zip central directory read at most (about ten thousand members)."""
_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_EOCD_SIGNATURE = b"PK\x05\x06"
_HEADER_MAX = 10_000  # bytes of one .npy header (numpy's own default bound)


class StoredFileError(ValueError):
    """A stored file that cannot be read safely: malformed, holding a pickle, or larger
    than the reader may allocate. The message starts with the file's name."""


def load_npz(source: str | Path | bytes | IO[bytes], *, what: str, max_bytes: int,
             ) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (keyed as ``np.load`` keys them), or a
    :class:`StoredFileError`.

    Args:
        source: a path, the file's bytes, or a seekable binary file.
        what: the file's name in messages (an artifact's name, a path).
        max_bytes: the arrays' total size, in bytes, that the caller may hold.
    """
    fh: IO[bytes] = io.BytesIO(source) if isinstance(source, bytes) else (
        open(source, "rb") if isinstance(source, str | os.PathLike) else source)
    try:
        _check_directory(fh, what)
        try:
            with zipfile.ZipFile(fh) as zf:
                members = [i for i in zf.infolist() if i.filename.endswith(".npy")]
                sizes = [_member_bytes(zf, info, what) for info in members]
                if sum(sizes) > max_bytes:
                    raise StoredFileError(
                        f"{what}: its arrays take {sum(sizes):,} bytes, more than the "
                        f"{max_bytes:,} this reader may allocate")
                return {info.filename.removesuffix(".npy"): _read(zf, info, what)
                        for info in members}
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError,
                RuntimeError) as exc:
            if isinstance(exc, StoredFileError):
                raise
            raise StoredFileError(f"{what}: not a readable .npz ({exc})") from None
    finally:
        if fh is not source:
            fh.close()


def _check_directory(fh: IO[bytes], what: str) -> None:
    """Refuse a central directory larger than :data:`DIRECTORY_MAX` before ``zipfile``
    builds an object per entry of it (the end record is within 64 KiB of the end)."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    tail_start = max(0, size - (_EOCD.size + 0xFFFF))
    fh.seek(tail_start)
    tail = fh.read()
    at = tail.rfind(_EOCD_SIGNATURE)
    if at < 0 or at + _EOCD.size > len(tail):
        raise StoredFileError(f"{what}: not a readable .npz (no zip directory)")
    directory_bytes = _EOCD.unpack_from(tail, at)[5]
    if directory_bytes > DIRECTORY_MAX:
        raise StoredFileError(f"{what}: its zip directory takes {directory_bytes:,} bytes, "
                              f"more than {DIRECTORY_MAX:,}")
    fh.seek(0)


def _header(fh: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh, max_header_size=_HEADER_MAX)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(fh, max_header_size=_HEADER_MAX)
    raise ValueError(f".npy format version {version} is not read here")


def _member_bytes(zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> int:
    """The bytes member ``info`` would allocate, from its header alone."""
    with zf.open(info) as member:
        shape, _, dtype = _header(member)
    name = info.filename.removesuffix(".npy")
    if dtype.hasobject:
        raise StoredFileError(f"{what}: {name!r} is an object array (a pickle); "
                              "stored arrays hold numbers and text only")
    if any(n < 0 for n in shape):
        raise StoredFileError(f"{what}: {name!r} has a negative dimension {shape}")
    return math.prod(shape) * dtype.itemsize


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> np.ndarray:
    with zf.open(info) as member:
        try:
            return np.lib.format.read_array(member, allow_pickle=False,
                                            max_header_size=_HEADER_MAX)
        except ValueError as exc:  # fewer bytes than the header promised, and the like
            raise StoredFileError(
                f"{what}: {info.filename.removesuffix('.npy')!r} is damaged ({exc})") from None
