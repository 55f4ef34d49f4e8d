"""Read a selection within a memory budget, whole or as slabs along its first sliced axis.

Binary downloads are produced slab by slab: each slab is a run of indices along the first
sliced axis, aligned to the dataset's chunk boundaries so no chunk is decompressed twice,
and small enough that the server holds at most one slab at a time whatever the total size.
Everything else (JSON, CSV, TIFF, PNG, stats) needs the whole array and is refused with 413
above ``max_read_bytes``, with a hint of a selection that fits.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5grove.utils import QueryArgumentError, convert

from beamdesk.errors import Conflict, Invalid, TooLarge
from beamdesk.h5.selection import Selection, describe

SLAB_BYTES = 8 * 1024 * 1024
MiB = 1024 * 1024


def out_dtype(dataset: h5py.Dataset, dtype: str) -> np.dtype:
    """The dtype the response will carry (``safe``: one with a JavaScript typed array)."""
    sample = np.zeros((0,), dtype=dataset.dtype)
    return _convert(sample, dtype).dtype


def _convert(data: Any, dtype: str) -> Any:
    try:
        return convert(data, dtype)
    except QueryArgumentError as exc:
        raise Invalid(f"{exc}; use dtype=origin for this dataset.") from exc


def hint(sel: Selection, itemsize: int, limit: int) -> str:
    """An example selection of the same dataset that fits in ``limit`` bytes."""
    members = list(sel.members)
    for axis in sel.sliced_axes:
        m = sel.slice_at(axis)
        trial = Selection(sel.shape, (*members[:axis], m.start, *members[axis + 1 :]))
        if trial.size() * itemsize <= limit:
            rows = max(1, limit // max(1, trial.size() * itemsize))
            members[axis] = slice(m.start, min(m.stop, m.start + rows * m.step), m.step)
            return describe(Selection(sel.shape, tuple(members)))
        members[axis] = m.start  # one index of this axis is still too much: fix it too
    return describe(Selection(sel.shape, tuple(members)))


def check_size(dataset: h5py.Dataset, sel: Selection, limit: int, what: str = "read") -> None:
    nbytes = sel.size() * dataset.dtype.itemsize
    if nbytes > limit:
        raise TooLarge(
            f"This selection would {what} {nbytes / MiB:.1f} MiB, more than the "
            f"{limit / MiB:.0f} MiB allowed per request (dataset shape {list(dataset.shape)}, "
            f"dtype {dataset.dtype}). Ask for a slice, e.g. "
            f"selection={hint(sel, dataset.dtype.itemsize, limit)}, "
            "or download it in binary form (format=npy or bin), which is streamed.",
        )


def read(dataset: h5py.Dataset, sel: Selection, dtype: str = "origin") -> Any:
    """The selection as numpy (or h5py.Empty / a scalar), like h5py's own read."""
    try:
        data = dataset[()] if dataset.shape in (None, ()) else dataset[sel.key]
    except OSError as exc:  # a damaged chunk or a missing filter, in libhdf5's words
        raise Invalid(
            f"Cannot read {dataset.name}: its data is damaged or compressed with a filter "
            "BeamDesk lacks."
        ) from exc
    if isinstance(data, h5py.Empty):
        return data
    return _convert(data, dtype)


def slab_ranges(dataset: h5py.Dataset, sel: Selection, slab_bytes: int) -> Iterator[Selection]:
    """Sub-selections covering ``sel`` along its first sliced axis, chunk-aligned."""
    if not sel.sliced_axes or sel.size() == 0:
        yield sel
        return
    axis = sel.sliced_axes[0]
    m = sel.slice_at(axis)
    count = len(range(m.start, m.stop, m.step))
    row_bytes = max(1, sel.size() // count * dataset.dtype.itemsize)
    per_slab = max(1, slab_bytes // row_bytes)
    chunk = dataset.chunks[axis] if dataset.chunks else 1
    if m.step == 1 and chunk > 1:
        per_slab = max(chunk, per_slab // chunk * chunk)
    i = 0
    while i < count:
        start = m.start + i * m.step
        n = per_slab
        if m.step == 1 and chunk > 1:  # end on a chunk boundary
            n = min(per_slab, (start // chunk + per_slab // chunk) * chunk - start) or per_slab
        n = min(n, count - i)
        members = list(sel.members)
        members[axis] = slice(start, start + (n - 1) * m.step + 1, m.step)
        yield Selection(sel.shape, tuple(members))
        i += n


def as_bytes(data: Any) -> memoryview:
    """The array's C-order bytes without a copy (a byte view the server can send as is)."""
    if isinstance(data, h5py.Empty) or np.size(data) == 0:
        return memoryview(b"")
    # As bytes first: the buffer protocol has no format for some dtypes (datetime64 from
    # tagged opaque data), so a memoryview of the array itself would fail.
    return np.ascontiguousarray(data).reshape(-1).view(np.uint8).data


def _file_state(dataset: h5py.Dataset) -> tuple[int, int] | None:
    """Size and mtime of the open file itself (not of its name: a deleted file still
    reads correctly through its open handle); None where the driver has no descriptor."""
    try:
        st = os.fstat(dataset.file.id.get_vfd_handle())
    except (OSError, ValueError, TypeError, RuntimeError):
        return None
    return (st.st_size, st.st_mtime_ns)


def iter_bytes(
    dataset: h5py.Dataset, sel: Selection, dtype: str, slab_bytes: int = SLAB_BYTES
) -> Iterator[memoryview]:
    """The raw C-order bytes of the selection, one slab at a time.

    A file truncated or rewritten while it is streamed reads as zeros past its new end
    (libhdf5 does not notice), so each slab is sent only if the file is unchanged since
    the stream began; otherwise the stream stops with an error and the client, short of
    the announced Content-Length, knows the download failed.
    """
    # A file open for SWMR reading grows under its writer (what is written stays).
    before = None if dataset.file.swmr_mode else _file_state(dataset)
    for part in slab_ranges(dataset, sel, slab_bytes):
        data = as_bytes(read(dataset, part, dtype))
        if before is not None and _file_state(dataset) != before:
            raise Conflict(
                f"{Path(dataset.file.filename).name} changed while it was being read; ask again.",
            )
        yield data


def npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """The .npy header for an array written after it in C order."""
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    buf = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(buf, header)
    except ValueError:  # headers over 64 KiB (huge compound dtypes) need version 2
        buf = io.BytesIO()
        np.lib.format.write_array_header_2_0(buf, header)
    return buf.getvalue()


def binary_allowed(dataset: h5py.Dataset) -> None:
    if dataset.dtype.kind == "O" or dataset.dtype.hasobject:
        raise Invalid(
            f"{dataset.name} holds variable-length values (dtype {dataset.dtype}); "
            "ask for format=json.",
        )
