"""Where a workbench spectrum or map comes from: one dataset, a pixel, a region, a sum.

Pure reading on an already opened (and confined) h5py dataset or group: the caller, a
sandboxed reader worker, opens it through the proposal's one opener. Errors are
``SpectrumReadError`` with a one-line message naming the dataset, never a file path.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from beamdesk.xrf.mapfit import dataset_name, sum_spectrum
from beamdesk.xrf.readers import SpectrumReadError

RESULT_PARAMETERS = "entry/xrf_fit/results/parameters"


def _mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


def check_numeric(ds: Any, name: str) -> None:
    if ds.ndim == 0 or ds.dtype.kind not in "iuf":
        raise SpectrumReadError(f"{name}: not a numeric spectrum or map")


def spectrum_of(
    ds: Any,
    name: str,
    *,
    pixel: list[int] | None = None,
    rows: list[int] | None = None,
    cols: list[int] | None = None,
    max_bytes: int,
    max_sum_bytes: int,
) -> np.ndarray:
    """The counts of a 1-D dataset, one pixel of a map, a region's sum or the map's sum.

    Sums are read chunk by chunk; what is decompressed is bounded by ``max_sum_bytes``
    (a tiny compressed file can declare gigabytes of zeros).
    """
    check_numeric(ds, name)
    if ds.ndim == 1:
        if pixel is not None or rows is not None or cols is not None:
            raise SpectrumReadError(f"{name}: a single spectrum has no pixels")
        return np.asarray(ds[()], dtype=float)
    if pixel is not None:
        if len(pixel) != ds.ndim - 1:
            raise SpectrumReadError(f"{name} has {ds.ndim} axes: give {ds.ndim - 1} pixel indices")
        if any(not 0 <= i < n for i, n in zip(pixel, ds.shape, strict=False)):
            raise SpectrumReadError(f"pixel {pixel} lies outside the map {list(ds.shape[:-1])}")
        return np.asarray(ds[tuple(pixel)], dtype=float)
    if rows is not None or cols is not None:
        if ds.ndim != 3:
            raise SpectrumReadError("a region needs a map of rows × columns × channels")
        rows = rows or [0, ds.shape[0]]
        cols = cols or [0, ds.shape[1]]
        if not (0 <= rows[0] < rows[1] <= ds.shape[0] and 0 <= cols[0] < cols[1] <= ds.shape[1]):
            raise SpectrumReadError(
                f"region rows {rows}, columns {cols} lies outside the map {list(ds.shape[:-1])}"
            )
        size = (rows[1] - rows[0]) * (cols[1] - cols[0]) * ds.shape[-1] * ds.dtype.itemsize
        if size > max_bytes:
            raise SpectrumReadError(
                f"the region holds {_mib(size)}, more than the "
                f"{_mib(max_bytes)} one request may read: choose a "
                "smaller one"
            )
        block = ds[rows[0] : rows[1], cols[0] : cols[1], :]
        return np.asarray(block, dtype=float).sum(axis=(0, 1))
    check_map_size(ds, max_sum_bytes)
    return sum_spectrum(ds)


def check_map_size(ds: Any, max_sum_bytes: int) -> None:
    """Refuse to decompress more than ``max_sum_bytes`` for one synchronous request."""
    nbytes = math.prod(ds.shape) * ds.dtype.itemsize
    if nbytes > max_sum_bytes:
        raise SpectrumReadError(
            f"the map holds {nbytes / 2**30:.1f} GiB uncompressed, more "
            f"than the {max_sum_bytes / 2**30:.1f} GiB one request may "
            "read: fit it in a map-fit job, or choose a region"
        )


def map_shape(ds: Any) -> list[int] | None:
    """Pixels of a map (all axes but the channels), None for a single spectrum."""
    return list(ds.shape[:-1]) if ds.ndim > 1 else None


def spectrum_datasets(root: Any, limit: int = 20) -> list[dict[str, Any]]:
    """Datasets that look like spectra or maps of spectra, likeliest first."""
    import h5py

    found: list[dict[str, Any]] = []

    def visit(name: str, obj: Any) -> None:
        if len(found) >= 200 or not isinstance(obj, h5py.Dataset):
            return
        if obj.ndim == 0 or obj.dtype.kind not in "iuf" or obj.shape[-1] < 64:
            return
        marked = _text(obj.attrs.get("interpretation", "")) == "spectrum"
        found.append({"path": "/" + name, "shape": list(obj.shape), "spectrum": marked})

    root.visititems(visit)  # hard links only: external links are not followed
    found.sort(key=lambda d: (not d["spectrum"], -math.prod(d["shape"][:-1]), d["path"]))
    return found[:limit]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def result_groups(parameters: Any) -> list[str]:
    """The peak groups of a map-fit result, from its parameters NXdata group."""
    signal = parameters.attrs.get("signal")
    names = [signal] if signal else []
    names += list(parameters.attrs.get("auxiliary_signals", []))
    if not names:
        axes = {str(a) for a in np.atleast_1d(parameters.attrs.get("axes", []))}
        names = [k for k in parameters if k not in axes and parameters[k].ndim >= 1]
    return [str(_text(n)).replace("_", " ", 1) for n in names]


def result_map_path(group: str) -> str:
    return f"/{RESULT_PARAMETERS}/{dataset_name(group)}"
