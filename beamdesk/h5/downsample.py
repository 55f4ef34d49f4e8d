"""Reduce a 2-D selection to screen size: block mean/max/min or decimation.

The image is read in bands of whole bins along its first axis (rounded to the chunk
height so each chunk is decompressed once), and each band is reduced with ``reduceat``,
which also handles the partial bins at the right and bottom edges. Only one band is held
in memory at a time.
"""

from __future__ import annotations

import math
import re
from typing import Any

import h5py
import numpy as np

from beamdesk.errors import Invalid, TooLarge
from beamdesk.h5.reading import SLAB_BYTES, check_size, read
from beamdesk.h5.selection import Selection

METHODS = ("mean", "max", "min", "decimate")
# A mean/max/min view reads every value of the selection, one band at a time: it may scan this
# many times the read limit (4 GiB by default, a few seconds), never a 64 GiB dataset.
SCAN_FACTOR = 16
_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


def parse_size(text: str) -> tuple[int, int]:
    match = _SIZE.match(text)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise Invalid(
            f"Invalid downsample {text!r}: expected NxM with positive "
            "integers, the largest output in rows x columns, e.g. 1024x1024.",
        )
    return int(match[1]), int(match[2])


def factors(shape: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    return (max(1, math.ceil(shape[0] / size[0])), max(1, math.ceil(shape[1] / size[1])))


def _reduce_axis(x: np.ndarray, f: int, axis: int, ufunc: np.ufunc, acc: type | None) -> np.ndarray:
    """Reduce runs of ``f`` along ``axis`` (0 or 1 of a 2-D array); the last run may be short.

    Full runs go through a reshape (contiguous, several times faster than ``reduceat``).
    """
    n = x.shape[axis]
    full = n // f * f
    head = x[:full] if axis == 0 else x[:, :full]
    shape = (full // f, f, x.shape[1]) if axis == 0 else (x.shape[0], full // f, f)
    kwargs: dict[str, Any] = {"dtype": acc} if acc is not None else {}
    parts = [ufunc.reduce(head.reshape(shape), axis=axis + 1, **kwargs)]
    if full < n:
        tail = x[full:] if axis == 0 else x[:, full:]
        parts.append(ufunc.reduce(tail, axis=axis, keepdims=True, **kwargs))
    return np.concatenate(parts, axis=axis) if len(parts) > 1 else parts[0]


def downsample(
    dataset: h5py.Dataset, sel: Selection, size: tuple[int, int], method: str, limit: int
) -> tuple[np.ndarray, tuple[int, int]]:
    """The reduced image and the bin factors (rows, columns) used."""
    if method not in METHODS:
        raise Invalid(f"Invalid downsample_method {method!r}: use one of {', '.join(METHODS)}.")
    if len(sel.result_shape) != 2:
        raise Invalid(
            f"Downsampling needs a 2-D selection; this one has shape "
            f"{list(sel.result_shape)}. Fix the other axes, e.g. "
            "selection=0,:,: for the first frame of a stack.",
        )
    ax0, ax1 = sel.sliced_axes
    s0, s1 = sel.slice_at(ax0), sel.slice_at(ax1)
    if s0.step != 1 or s1.step != 1:
        raise Invalid("Downsampling needs slices with step 1.")
    if dataset.dtype.kind not in "biuf":
        raise Invalid(f"Cannot downsample values of dtype {dataset.dtype}.")
    fy, fx = factors(sel.result_shape, size)
    if method == "decimate":
        members = list(sel.members)
        members[ax0] = slice(s0.start, s0.stop, fy)
        members[ax1] = slice(s1.start, s1.stop, fx)
        decimated = Selection(sel.shape, tuple(members))
        check_size(dataset, decimated, limit)
        return np.asarray(read(dataset, decimated)), (fy, fx)
    height, width = sel.result_shape
    row_bytes = width * dataset.dtype.itemsize
    if height * row_bytes > SCAN_FACTOR * limit:
        raise TooLarge(
            f"A {method} view of this selection reads {height * row_bytes / 2**30:.1f} GiB, more "
            f"than one view may ({SCAN_FACTOR * limit / 2**30:.1f} GiB): use "
            "downsample_method=decimate, or a smaller selection.",
        )
    if fy * row_bytes > limit:
        raise TooLarge(
            f"One band of {fy} rows is larger than the read limit; ask for a narrower selection.",
        )
    chunk = dataset.chunks[ax0] if dataset.chunks else 1
    band = max(1, SLAB_BYTES // (row_bytes * fy)) * fy
    band = max(fy, band // math.lcm(fy, chunk) * math.lcm(fy, chunk)) if chunk > 1 else band
    band = min(band, max(fy, limit // row_bytes // fy * fy))
    col_edges = np.arange(0, width, fx)
    ufunc = {"mean": np.add, "max": np.maximum, "min": np.minimum}[method]
    out = []
    start0 = s0.start
    for top in range(0, height, band):
        rows = min(band, height - top)
        members = list(sel.members)
        members[ax0] = slice(start0 + top, start0 + top + rows, 1)
        block = np.asarray(read(dataset, Selection(sel.shape, tuple(members))))
        acc = np.float64 if method == "mean" else None
        reduced = _reduce_axis(_reduce_axis(block, fy, 0, ufunc, acc), fx, 1, ufunc, acc)
        if method == "mean":
            counts_y = np.diff(np.append(np.arange(0, rows, fy), rows))
            counts_x = np.diff(np.append(col_edges, width))
            reduced = reduced / np.outer(counts_y, counts_x)
        out.append(reduced)
    return np.concatenate(out, axis=0), (fy, fx)
