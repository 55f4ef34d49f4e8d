"""h5grove-compatible HDF5 content API, per proposal: /api/proposals/{number}/h5/...

Every request passes the portal's access check (``ReadableProposal``) and path confinement
(``resolve_in_proposal``) before any file is opened; the HDF5 work is in beamdesk.h5.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import h5py
import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from h5grove.encoders import orjson_default, orjson_encode

from beamdesk.h5 import content, exports, nxline, reading
from beamdesk.h5.downsample import downsample, parse_size
from beamdesk.h5.errors import H5RequestError
from beamdesk.h5.handles import FileCache, refresh
from beamdesk.h5.paths import PathNotFound, resolve_in_proposal
from beamdesk.h5.selection import describe, parse_selection
from beamdesk.portal.auth import audit
from beamdesk.web.deps import DB, AppSettings, CurrentUser, ReadableProposal
from beamdesk.web.problems import Problem

router = APIRouter(prefix="/api/proposals/{number}/h5", tags=["hdf5"])
EXPORTS = {"csv", "npy", "tiff", "png"}
FORMATS = {"json", "bin"} | EXPORTS


def file_cache(request: Request) -> FileCache:
    cache = getattr(request.app.state, "h5_files", None)
    if cache is None:
        cache = request.app.state.h5_files = FileCache(32)
    return cache


@contextmanager
def opened(request: Request, folder: ReadableProposal, file: str,
           path: str | None) -> Iterator[tuple[h5py.File, content.Node]]:
    """The confined file and the node at ``path``; H5 errors become problem details."""
    try:
        target = resolve_in_proposal(folder.data_root, folder.proposal.number, file)
    except PathNotFound as exc:
        raise Problem(404, f"No file {file!r} in this proposal.") from exc
    if not target.is_file():
        raise Problem(404, f"No file {file!r} in this proposal.")
    cache = file_cache(request)
    try:
        handle = cache.get(target)
        opener = content.confined_opener(folder.root, cache.get)
        yield handle, content.resolve(handle, path, opener)
    except H5RequestError as exc:
        raise Problem(exc.status, exc.message) from exc
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        # libhdf5 reports damaged files lazily, e.g. when a group's B-tree is read.
        raise Problem(422, f"Cannot read {path or '/'} in {Path(file).name}: {exc}") from exc


def _json(body: Any) -> Response:
    return Response(orjson_encode(body, default=_default), media_type="application/json")


def _default(o: Any) -> Any:
    if isinstance(o, bytes):  # non-UTF-8 strings must not become a 500
        return o.decode("utf-8", errors="replace")
    if isinstance(o, np.ndarray) and o.dtype.kind in "OV":
        return [_default(x) if isinstance(x, bytes) else x for x in o.tolist()]
    return orjson_default(o)


def _opener(request: Request, folder: ReadableProposal) -> content.Opener:
    return content.confined_opener(folder.root, file_cache(request).get)


@router.get("/meta")
def get_meta(request: Request, folder: ReadableProposal, file: str,
             path: str = "/") -> Response:
    with opened(request, folder, file, path) as (_, node):
        return _json(content.metadata(node, _opener(request, folder)))


@router.get("/attr")
def get_attr(request: Request, folder: ReadableProposal, file: str, path: str = "/",
             attr_keys: Annotated[list[str] | None, Query()] = None) -> Response:
    with opened(request, folder, file, path) as (_, node):
        return _json(content.attributes(node, attr_keys))


@router.get("/paths")
def get_paths(request: Request, folder: ReadableProposal, file: str,
              path: str = "/") -> Response:
    with opened(request, folder, file, path) as (_, node):
        return _json(content.paths(node))


@router.get("/stats")
def get_stats(request: Request, folder: ReadableProposal, settings: AppSettings, file: str,
              path: str = "/", selection: str | None = None) -> Response:
    with opened(request, folder, file, path) as (_, node):
        dataset = content.dataset_of(node)
        content.check_storage(dataset, folder.root)
        sel = parse_selection(selection, dataset.shape)
        reading.check_size(dataset, sel, settings.max_read_bytes)
        return _json(content.stats(reading.read(dataset, sel)))


@router.get("/data")
def get_data(
    request: Request, folder: ReadableProposal, settings: AppSettings, db: DB,
    user: CurrentUser, file: str, path: str = "/", selection: str | None = None,
    format: str = "json", dtype: str = "origin", flatten: bool = False,
    downsample: str | None = None, downsample_method: str = "mean",
    colormap: str = "viridis", scale: str = "linear",
    vmin: float | None = None, vmax: float | None = None,
) -> Response:
    if format not in FORMATS:
        choices = ", ".join(sorted(FORMATS))
        raise Problem(422, f"Unsupported format {format!r}: use one of {choices}.")
    if dtype not in ("origin", "safe"):
        raise Problem(422, f"Unsupported dtype {dtype!r}: use origin or safe.")
    with opened(request, folder, file, path) as (_, node):
        try:
            dataset = content.dataset_of(node)
            content.check_storage(dataset, folder.root)
            refresh(dataset)
            sel = parse_selection(selection, dataset.shape)
            name = exports.download_name(file, node.path, describe(sel) if selection else "",
                                         "npy" if format == "bin" else format)
            if format in EXPORTS:
                target = f"{folder.proposal.number}/{file}::{node.path}"
                audit(db, "data_download", user, target, detail=f"format={format}")
            headers: dict[str, str] = {}
            if downsample is not None:
                image, (fy, fx) = _downsample(dataset, sel, downsample, downsample_method,
                                              settings.max_read_bytes)
                headers["X-Downsample-Factors"] = f"{fy},{fx}"
                data: Any = reading._convert(image, dtype)
            elif format in ("bin", "npy") and dataset.shape not in (None, ()):
                reading.binary_allowed(dataset)
                return _stream(dataset, sel, format, dtype, flatten, name)
            else:
                reading.check_size(dataset, sel, settings.max_read_bytes)
                data = reading.read(dataset, sel, dtype)
            if flatten and isinstance(data, np.ndarray):
                data = data.ravel()
            return _encode(data, format, name, headers, colormap, scale, vmin, vmax)
        except H5RequestError as exc:
            raise Problem(exc.status, exc.message) from exc


def _downsample(dataset: h5py.Dataset, sel: Any, size: str, method: str,
                limit: int) -> tuple[np.ndarray, tuple[int, int]]:
    return downsample(dataset, sel, parse_size(size), method, limit)


def _stream(dataset: h5py.Dataset, sel: Any, fmt: str, dtype: str, flatten: bool,
            name: str) -> Response:
    """bin/npy: header (npy) then the selection slab by slab; one body if it is small."""
    shape = sel.result_shape
    out = reading.out_dtype(dataset, dtype)
    if flatten:
        shape = (int(np.prod(shape, dtype=np.int64)),)
    header = reading.npy_header(shape, out) if fmt == "npy" else b""
    length = len(header) + sel.size() * out.itemsize
    headers = {"Content-Length": str(length)}
    if fmt == "npy":
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    media = "application/octet-stream"
    if length <= reading.SLAB_BYTES and fmt == "bin":  # one slab: send the array's buffer
        body = reading.as_bytes(reading.read(dataset, sel, dtype))
        return Response(body, media_type=media, headers=headers)
    if length <= reading.SLAB_BYTES:
        body = header + b"".join(reading.iter_bytes(dataset, sel, dtype))
        return Response(body, media_type=media, headers=headers)
    file_ref = dataset.file  # keeps the handle open while the body streams

    def body_iter() -> Iterator[bytes | memoryview]:
        _ = file_ref
        yield header
        yield from reading.iter_bytes(dataset, sel, dtype)

    return StreamingResponse(body_iter(), media_type=media, headers=headers)


def _encode(data: Any, fmt: str, name: str, headers: dict[str, str], colormap: str,
            scale: str, vmin: float | None, vmax: float | None) -> Response:
    if fmt == "json":
        response = _json(data)
        response.headers.update(headers)
        return response
    if isinstance(data, h5py.Empty):
        if fmt == "bin":
            return Response(b"", media_type="application/octet-stream", headers=headers)
        raise H5RequestError(422, f"An empty dataset has nothing to export as {fmt}.")
    arr = np.asarray(data)
    if fmt in ("bin", "npy"):
        if arr.dtype.hasobject:
            raise H5RequestError(422, "Variable-length values: ask for format=json.")
        if fmt == "bin":
            return Response(arr.tobytes(), media_type="application/octet-stream",
                            headers=headers)
        body = reading.npy_header(arr.shape, arr.dtype) + np.ascontiguousarray(arr).tobytes()
        media = "application/octet-stream"
    elif fmt == "csv":
        body, media = exports.to_csv(arr), "text/csv"
    elif fmt == "tiff":
        body, media = exports.to_tiff(arr), "image/tiff"
    else:
        body, media = exports.to_png(arr, colormap, scale, vmin, vmax), "image/png"
    headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return Response(body, media_type=media, headers=headers)


@router.get("/line")
def get_line(request: Request, folder: ReadableProposal, settings: AppSettings, db: DB,
             user: CurrentUser, file: str, path: str, selection: str | None = None,
             signal: str = "") -> Response:
    """A NeXus line as CSV: axis, signal, errors and auxiliary signals side by side.

    ``signal`` picks the plotted dataset where the group does not name one (old files).
    """
    with opened(request, folder, file, path) as (_, node):
        if not isinstance(node.entity, h5py.Group):
            raise Problem(422, f"{node.path} is not a group: ask /data for a dataset.")
        try:
            columns = nxline.line_columns(node.entity, selection, settings.max_read_bytes,
                                          signal)
        except H5RequestError as exc:
            raise Problem(exc.status, exc.message) from exc
        body = nxline.to_csv(columns, f"{Path(file).name}::{node.path}"
                             + (f"[{selection}]" if selection else ""))
    audit(db, "data_download", user, f"{folder.proposal.number}/{file}::{node.path}",
          detail="format=nexus-csv")
    name = exports.download_name(file, node.path, selection or "", "csv")
    return Response(body, media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/subset")
def get_subset(request: Request, folder: ReadableProposal, settings: AppSettings, db: DB,
               user: CurrentUser, file: str,
               paths: Annotated[list[str], Query()]) -> Response:
    """Chosen datasets/groups with their attributes and parents' attributes, as a new file."""
    objects = []
    with opened(request, folder, file, "/") as (handle, _):
        opener = _opener(request, folder)
        try:
            for p in paths:
                node = content.resolve(handle, p, opener)
                if node.entity is None:
                    raise H5RequestError(422, f"{p} is a link that cannot be followed.")
                if isinstance(node.entity, h5py.Dataset):
                    content.check_storage(node.entity, folder.root)
                objects.append((node.path, node.entity))
            temp = exports.write_subset(handle, objects, settings.max_read_bytes)
        except H5RequestError as exc:
            raise Problem(exc.status, exc.message) from exc
    audit(db, "data_download", user, f"{folder.proposal.number}/{file}::{','.join(paths)}",
          detail="format=subset")
    name = exports.download_name(file, "subset", "", "h5")
    size = temp.stat().st_size

    def body_iter() -> Iterator[bytes]:
        try:
            with temp.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    yield chunk
        finally:
            os.unlink(temp)

    return StreamingResponse(body_iter(), media_type="application/x-hdf5", headers={
        "Content-Length": str(size), "Content-Disposition": f'attachment; filename="{name}"'})
