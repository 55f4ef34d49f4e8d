"""The h5grove-compatible content operations: parameters in, an encoded answer out.

Each function answers one endpoint of the HDF5 content API (meta, attr, paths, stats,
data, line, subset) for one proposal's files, through the one opener
(:class:`~beamdesk.h5.opener.ProposalFiles`). It returns a :class:`Reply` (small bodies) or
a :class:`Stream` (big binary downloads, slab by slab), already encoded, so it can run in
a sandboxed reader worker and only bytes cross back to the server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import h5py
import numpy as np
from h5grove.encoders import orjson_default, orjson_encode

from beamdesk.errors import Invalid, TooLarge
from beamdesk.h5 import content, exports, nxline, reading
from beamdesk.h5.downsample import downsample, parse_size
from beamdesk.h5.handles import refresh
from beamdesk.h5.opener import ProposalFiles
from beamdesk.h5.selection import describe, parse_selection
from beamdesk.h5.subset import write_subset

EXPORTS = {"csv", "npy", "tiff", "png"}
FORMATS = {"json", "bin"} | EXPORTS
# Formats written as text: each value takes up to ~25 bytes, and the whole answer is held
# by the worker and then by the server, so they get 1/64 of the read limit in values
# (4,194,304 for 256 MiB, a 2048² image). Binary formats are streamed instead.
TEXT_FORMATS = {"json", "csv"}
TEXT_SHARE = 64
JSON = "application/json"
BINARY = "application/octet-stream"


@dataclass
class Reply:
    body: bytes | memoryview
    media_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Stream:
    chunks: Iterator[bytes | memoryview]
    media_type: str = BINARY
    headers: dict[str, str] = field(default_factory=dict)


def _default(o: Any) -> Any:
    if isinstance(o, bytes):  # non-UTF-8 strings must not become a 500
        return o.decode("utf-8", errors="replace")
    if isinstance(o, np.ndarray) and o.dtype.kind in "OV":
        return [_default(x) if isinstance(x, bytes) else x for x in o.tolist()]
    return orjson_default(o)


def _native(o: Any) -> Any:
    """Arrays in native byte order: orjson refuses big-endian arrays (a TypeError, without
    asking ``default``), and HDF5 files from other machines hold them."""
    if isinstance(o, np.ndarray) and not o.dtype.isnative:
        return o.astype(o.dtype.newbyteorder("="))
    if isinstance(o, dict):
        return {k: _native(v) for k, v in o.items()}
    return o


def _json(body: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(orjson_encode(_native(body), default=_default), JSON, headers or {})


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def meta(
    files: ProposalFiles, file: str, path: str = "/", resolve_links: str | None = None
) -> Reply:
    links = content.link_resolution(resolve_links)
    return _json(content.metadata(files.node(file, path, links), files.links))


def attr(
    files: ProposalFiles, file: str, path: str = "/", attr_keys: list[str] | None = None
) -> Reply:
    return _json(content.attributes(files.node(file, path), attr_keys))


def paths(files: ProposalFiles, file: str, path: str = "/") -> Reply:
    return _json(content.paths(files.node(file, path)))


def stats(
    files: ProposalFiles, file: str, path: str, selection: str | None, max_read_bytes: int
) -> Reply:
    dataset = files.dataset(file, path)
    sel = parse_selection(selection, dataset.shape)
    reading.check_size(dataset, sel, max_read_bytes)
    return _json(content.stats(reading.read(dataset, sel)))


@dataclass(frozen=True)
class DataQuery:
    """The /data parameters, as h5grove names them, plus BeamDesk's downsampling and PNG."""

    selection: str | None = None
    format: str = "json"
    dtype: str = "origin"
    flatten: bool = False
    downsample: str | None = None
    downsample_method: str = "mean"
    colormap: str = "viridis"
    scale: str = "linear"
    vmin: float | None = None
    vmax: float | None = None
    flip_y: bool = False
    flip_x: bool = False
    colorbar: bool = True

    def check(self) -> None:
        if self.format not in FORMATS:
            raise Invalid(
                f"Unsupported format {self.format!r}: use one of {', '.join(sorted(FORMATS))}."
            )
        if self.dtype not in ("origin", "safe"):
            raise Invalid(f"Unsupported dtype {self.dtype!r}: use origin or safe.")


def data(
    files: ProposalFiles, file: str, path: str, query: DataQuery, max_read_bytes: int
) -> Reply | Stream:
    query.check()
    dataset = files.dataset(file, path)
    refresh(dataset)
    sel = parse_selection(query.selection, dataset.shape)
    name = exports.download_name(
        file,
        dataset.name or path,
        describe(sel) if query.selection else "",
        "npy" if query.format == "bin" else query.format,
    )
    headers: dict[str, str] = {}
    if query.downsample is not None:
        image, (fy, fx) = downsample(
            dataset, sel, parse_size(query.downsample), query.downsample_method, max_read_bytes
        )
        headers["X-Downsample-Factors"] = f"{fy},{fx}"
        if query.format in TEXT_FORMATS:
            check_text_size(int(np.size(image)), max_read_bytes, query.format)
        values: Any = reading._convert(image, query.dtype)
    elif query.format in ("bin", "npy") and dataset.shape not in (None, ()):
        reading.binary_allowed(dataset)
        return _stream(dataset, sel, query.format, query.dtype, query.flatten, name)
    else:
        limit = max_read_bytes
        if query.format in TEXT_FORMATS:  # fewer values as text; the hint then fits too
            limit = min(limit, (max_read_bytes // TEXT_SHARE) * max(1, dataset.dtype.itemsize))
        reading.check_size(dataset, sel, limit)
        values = reading.read(dataset, sel, query.dtype)
    if query.flatten and isinstance(values, np.ndarray):
        values = values.ravel()
    return _encode(values, query, name, headers)


def check_text_size(values: int, max_read_bytes: int, fmt: str) -> None:
    limit = max_read_bytes // TEXT_SHARE
    if values > limit:
        raise TooLarge(
            f"This selection has {values:,} values; as {fmt.upper()} at most {limit:,} are "
            "sent. Download it in binary form (format=npy or bin), which is streamed, or ask "
            "for a smaller selection.",
        )


def _stream(
    dataset: h5py.Dataset, sel: Any, fmt: str, dtype: str, flatten: bool, name: str
) -> Reply | Stream:
    """bin/npy: header (npy) then the selection slab by slab; one body if it is small."""
    # An HDF5 array type reads as trailing axes: h5py gives dtype ('<i2', (3,)) as (…, 3).
    shape = (*sel.result_shape, *dataset.dtype.shape)
    out = reading.out_dtype(dataset, dtype)
    count = int(np.prod(shape, dtype=np.int64))
    if flatten:
        shape = (count,)
    header = reading.npy_header(shape, out) if fmt == "npy" else b""
    length = len(header) + count * out.itemsize
    headers = {"Content-Length": str(length)}
    if fmt == "npy":
        headers.update(_attachment(name))
    if length <= reading.SLAB_BYTES and fmt == "bin":  # one slab: send the array's buffer
        return Reply(reading.as_bytes(reading.read(dataset, sel, dtype)), BINARY, headers)
    if length <= reading.SLAB_BYTES:
        return Reply(header + b"".join(reading.iter_bytes(dataset, sel, dtype)), BINARY, headers)

    def chunks() -> Iterator[bytes | memoryview]:
        yield header
        yield from reading.iter_bytes(dataset, sel, dtype)

    return Stream(chunks(), BINARY, headers)


def _encode(values: Any, query: DataQuery, name: str, headers: dict[str, str]) -> Reply:
    fmt = query.format
    if fmt == "json":
        return _json(values, headers)
    if isinstance(values, h5py.Empty):
        if fmt == "bin":
            return Reply(b"", BINARY, headers)
        raise Invalid(f"An empty dataset has nothing to export as {fmt}.")
    arr = np.asarray(values)
    if fmt in ("bin", "npy"):
        if arr.dtype.hasobject:
            raise Invalid("Variable-length values: ask for format=json.")
        if fmt == "bin":
            return Reply(arr.tobytes(), BINARY, headers)
        body = reading.npy_header(arr.shape, arr.dtype) + np.ascontiguousarray(arr).tobytes()
        media = BINARY
    elif fmt == "csv":
        body, media = exports.to_csv(arr), "text/csv"
    elif fmt == "tiff":
        body, media = exports.to_tiff(arr), "image/tiff"
    else:
        body = exports.to_png(
            arr,
            query.colormap,
            query.scale,
            query.vmin,
            query.vmax,
            flip_y=query.flip_y,
            flip_x=query.flip_x,
            colorbar=query.colorbar,
        )
        media = "image/png"
    return Reply(body, media, {**headers, **_attachment(name)})


def line(
    files: ProposalFiles,
    file: str,
    path: str,
    selection: str | None,
    signal: str,
    max_read_bytes: int,
) -> Reply:
    """A NeXus line as CSV: axis, signal, errors and auxiliary signals side by side."""
    group = files.group(file, path)
    columns = nxline.line_columns(group, selection, max_read_bytes, signal, files.child)
    body = nxline.to_csv(
        columns, f"{Path(file).name}::{group.name}" + (f"[{selection}]" if selection else "")
    )
    name = exports.download_name(file, group.name or path, selection or "", "csv")
    return Reply(body, "text/csv", _attachment(name))


def subset(files: ProposalFiles, file: str, paths: list[str], max_read_bytes: int) -> Stream:
    """Chosen datasets/groups as a new file that reopens as NeXus (see ``h5.subset``)."""
    temp, omitted = write_subset(files, files.file(file), paths, max_read_bytes)
    size = temp.stat().st_size
    name = exports.download_name(file, "subset", "", "h5")

    def chunks() -> Iterator[bytes]:
        try:
            with temp.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    yield chunk
        finally:
            os.unlink(temp)

    headers = {"Content-Length": str(size), **_attachment(name)}
    if omitted:  # also named in the file's root attribute subset_omitted
        headers["X-Subset-Omitted"] = ", ".join(quote(p, safe="/") for p in sorted(omitted))
    return Stream(chunks(), "application/x-hdf5", headers)
