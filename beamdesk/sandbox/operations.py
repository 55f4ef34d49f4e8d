"""What a reader worker may be asked to do: a closed table of named operations.

Each takes the worker's :class:`~beamdesk.h5.opener.ProposalFiles` first and keyword
arguments made of plain values, and returns plain values, numpy arrays, or an encoded
``Reply``/``Stream`` (see :mod:`beamdesk.sandbox.codec`). The server names an operation;
it never sends code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from beamdesk.errors import BeamDeskError, Invalid, NotFound, TooLarge
from beamdesk.h5 import api, content, nexus
from beamdesk.h5.opener import ProposalFiles


def h5_data(
    files: ProposalFiles, file: str, path: str, query: dict[str, Any], max_read_bytes: int
) -> api.Reply | api.Stream:
    return api.data(files, file, path, api.DataQuery(**query), max_read_bytes)


def xrf_spectrum(
    files: ProposalFiles,
    file: str,
    path: str | None = None,
    pixel: list[int] | None = None,
    rows: list[int] | None = None,
    cols: list[int] | None = None,
    *,
    max_bytes: int,
    max_sum_bytes: int,
) -> dict[str, Any]:
    """The counts of a spectrum file, a dataset, a pixel, a region or a map's sum."""
    from beamdesk.xrf.readers import SpectrumReadError, read_spectrum
    from beamdesk.xrf.sources import map_shape, spectrum_of

    if not path:
        target = files.path(file)
        try:
            counts = read_spectrum(target).counts
        except SpectrumReadError as exc:
            raise Invalid(str(exc).replace(str(target), file)) from exc
        return {"counts": np.asarray(counts, dtype=float), "map_shape": None}
    ds = _map_dataset(files, file, path)
    counts = spectrum_of(
        ds,
        path,
        pixel=pixel,
        rows=rows,
        cols=cols,
        max_bytes=max_bytes,
        max_sum_bytes=max_sum_bytes,
    )
    return {"counts": counts, "map_shape": map_shape(ds)}


def _map_dataset(files: ProposalFiles, file: str, path: str) -> Any:
    """The dataset of a spectrum or map; a file without it is bad input (422), as is a
    name that is no dataset; a missing file stays 404."""
    files.path(file)
    try:
        return files.dataset(file, path)
    except BeamDeskError as exc:
        raise Invalid(exc.detail) from exc


def xrf_spectra(files: ProposalFiles, file: str) -> list[dict[str, Any]]:
    from beamdesk.xrf.sources import spectrum_datasets

    return spectrum_datasets(files.file(file))


def xrf_result_groups(files: ProposalFiles, file: str) -> list[str]:
    from beamdesk.xrf.sources import RESULT_PARAMETERS, result_groups

    files.path(file)
    try:
        node = files.node(file, RESULT_PARAMETERS)
    except BeamDeskError:
        node = None
    if node is None or node.entity is None:
        raise Invalid(f"The file is not a map-fit result (no /{RESULT_PARAMETERS}).")
    return result_groups(node.entity)


def xrf_result_maps(
    files: ProposalFiles, file: str, groups: list[str], max_pixels: int
) -> dict[str, np.ndarray]:
    from beamdesk.xrf.sources import result_map_path

    maps = {}
    for group in groups:
        try:
            ds = files.dataset(file, result_map_path(group))
        except BeamDeskError as exc:
            if exc.status != 404:
                raise
            raise Invalid(f"The result has no map {group!r}.") from exc
        if ds.size > max_pixels:
            raise TooLarge(
                f"The maps have {ds.size} pixels, more than the "
                f"{max_pixels} the correlator handles; use /h5/data.",
            )
        maps[group] = np.asarray(ds[()], dtype=float)
    return maps


def xrf_roi(
    files: ProposalFiles,
    file: str,
    path: str,
    windows: list[list[Any]],
    *,
    zero: float,
    gain: float,
    quad: float,
    max_pixels: int,
    max_sum_bytes: int,
) -> dict[str, np.ndarray]:
    from beamdesk.xrf.roi import roi_maps_of
    from beamdesk.xrf.sources import check_map_size, check_numeric

    ds = _map_dataset(files, file, path)
    check_numeric(ds, path)
    if ds.ndim < 2:
        raise Invalid(f"{path} is a single spectrum, not a map.")
    pixels = int(np.prod(ds.shape[:-1], dtype=np.int64))
    if pixels > max_pixels:
        raise TooLarge(
            f"The map has {pixels} pixels, more than {max_pixels}: run `beamdesk xrf roi` instead.",
        )
    check_map_size(ds, max_sum_bytes)
    return roi_maps_of(  # a window outside the spectrum is a WindowError (Invalid)
        ds,
        [(str(n), float(a), float(b)) for n, a, b in windows],
        zero=zero,
        gain=gain,
        quad=quad,
    )


def map_info(files: ProposalFiles, file: str, path: str) -> dict[str, Any]:
    """Shape, chunks and dtype of a map a job will fit."""
    ds = files.dataset(file, path)
    if ds.ndim < 2:
        raise Invalid("a map needs at least 2 axes (pixels, channels)")
    return {
        "shape": list(ds.shape),
        "chunks": list(ds.chunks) if ds.chunks else None,
        "dtype": ds.dtype.str,
    }


def map_block(files: ProposalFiles, file: str, path: str, block: list[list[int]]) -> np.ndarray:
    ds = files.dataset(file, path)
    return np.asarray(ds[tuple(slice(a, b) for a, b in block)])


def catalogue_metadata(files: ProposalFiles, file: str) -> dict[str, Any]:
    meta = nexus.describe(files.file(file))
    out = dataclasses.asdict(meta)
    for key in ("start_time", "end_time"):
        out[key] = out[key].isoformat() if out[key] is not None else None
    return out


def notebook_dataset(files: ProposalFiles, file: str, target: str) -> dict[str, Any]:
    """The dataset a notebook should load: the one asked for, or the file's default."""
    root = files.file(file)
    path = target or nexus.default_signal(root)
    if not path:
        raise NotFound("This file has no dataset to open in a notebook.")
    obj = nexus.inside(root, path)
    if obj is not None and not hasattr(obj, "shape"):  # a group picked in the viewer
        # An NXdata group: its own signal (what H5Web plots, and what its slice is of);
        # any other group: the file's default plot.
        signal = nexus.text(obj.attrs.get("signal", "")) if nexus.nx_class(obj) == "NXdata" else ""
        found = nexus.inside(obj, signal) if signal else None
        if found is not None and hasattr(found, "shape"):
            obj = found
        else:
            path = nexus.default_signal(root)
            obj = nexus.inside(root, path) if path else None
    if obj is None or not hasattr(obj, "shape"):
        raise NotFound(f"No dataset {path!r} in this file.")
    content.check_storage(obj, files.folder)
    return {"path": obj.name or path, "shape": list(obj.shape or ())}


OPERATIONS: dict[str, Callable[..., Any]] = {
    "h5.meta": api.meta,
    "h5.attr": api.attr,
    "h5.paths": api.paths,
    "h5.stats": api.stats,
    "h5.data": h5_data,
    "h5.line": api.line,
    "h5.subset": api.subset,
    "xrf.spectrum": xrf_spectrum,
    "xrf.spectra": xrf_spectra,
    "xrf.result_groups": xrf_result_groups,
    "xrf.result_maps": xrf_result_maps,
    "xrf.roi": xrf_roi,
    "map.info": map_info,
    "map.block": map_block,
    "catalogue.metadata": catalogue_metadata,
    "notebook.dataset": notebook_dataset,
}
