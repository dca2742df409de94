"""ml.stored.load_npz: what an .npz would allocate is decided from its headers, before a
byte is decompressed; pickles and damaged files are refused with the file's name."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import numpy as np
import pytest

from ml.stored import DIRECTORY_MAX, StoredFileError, load_npz


def bomb(shape: tuple[int, ...], dtype: str = "<f4", *, written: int | None = None) -> bytes:
    """An .npz whose one member claims ``shape`` and holds deflated zeros (all of them, or
    only ``written`` bytes: a member shorter than its header promises)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, \
            zf.open("factor.npy", "w", force_zip64=True) as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": dtype, "fortran_order": False, "shape": shape})
        left = int(np.prod(shape)) * np.dtype(dtype).itemsize if written is None else written
        chunk = bytes(1 << 22)
        while left > 0:
            fh.write(chunk[:left])
            left -= len(chunk)
    return buf.getvalue()


def test_round_trip_of_what_numpy_writes() -> None:
    buf = io.BytesIO()
    a, b = np.arange(12, dtype=np.float32).reshape(3, 4), np.array("text")
    np.savez_compressed(buf, a=a, b=b)
    got = load_npz(buf.getvalue(), what="x.npz", max_bytes=1 << 20)
    np.testing.assert_array_equal(got["a"], a)
    assert str(got["b"]) == "text"


def test_a_bomb_is_refused_from_its_header_without_allocating_it() -> None:
    raw = bomb((8192, 8192))  # 256 MiB of float32 zeros in about 0.25 MiB
    assert len(raw) < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(StoredFileError, match=r"^target-x\.npz: its arrays take "
                                                  r"268,435,456 bytes, more than the 1,048,576"):
            load_npz(raw, what="target-x.npz", max_bytes=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # the file and the zip's buffers, never the claimed array


def test_the_bound_is_on_all_arrays_together() -> None:
    buf = io.BytesIO()
    np.savez(buf, a=np.zeros(1000, np.float64), b=np.zeros(1000, np.float64))
    assert len(load_npz(buf.getvalue(), what="x", max_bytes=16_000)) == 2
    with pytest.raises(StoredFileError, match="16,000 bytes, more than the 15,999"):
        load_npz(buf.getvalue(), what="x", max_bytes=15_999)


def test_object_arrays_are_refused_before_unpickling() -> None:
    buf = io.BytesIO()
    np.savez(buf, meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(StoredFileError, match=r"'meta' is an object array \(a pickle\)"):
        load_npz(buf.getvalue(), what="x.npz", max_bytes=1 << 20)


@pytest.mark.parametrize("raw", [b"", b"PK\x03\x04 not really", b"garbage" * 100,
                                 bomb((100,), written=40), bomb((10,), dtype="|O")],
                         ids=["empty", "no-directory", "garbage", "short", "object"])
def test_damaged_files_are_a_stored_file_error_naming_the_file(raw: bytes) -> None:
    with pytest.raises(StoredFileError, match=r"^run 3's t\.npz: "):
        load_npz(raw, what="run 3's t.npz", max_bytes=1 << 20)


def test_a_truncated_file_is_refused() -> None:
    buf = io.BytesIO()
    np.savez(buf, a=np.arange(1000))
    raw = buf.getvalue()
    for cut in (len(raw) // 3, len(raw) - 30):
        with pytest.raises(StoredFileError, match="^f: "):
            load_npz(raw[:cut], what="f", max_bytes=1 << 20)


def test_a_huge_zip_directory_is_refused_before_it_is_parsed() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k in range(DIRECTORY_MAX // 40):
            zf.writestr(f"{k:08d}.txt", b"")
    with pytest.raises(StoredFileError, match="zip directory takes"):
        load_npz(buf.getvalue(), what="many.npz", max_bytes=1 << 30)
