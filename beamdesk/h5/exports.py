"""Download formats beyond h5grove's: CSV, TIFF stacks, colour-mapped PNG (subsets: ``subset``)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from beamdesk.errors import Invalid, TooLarge

SCALES = ("linear", "log", "sqrt")
# A picture, not data: 16 Mpx of RGBA is 64 MiB, and the colour mapping needs ~5× that.
MAX_PNG_PIXELS = 16 * 2**20


def download_name(file: str, dataset_path: str, selection: str, ext: str) -> str:
    """'<file stem>_<dataset name>_<selection>.<ext>', with only safe characters."""
    stem = Path(file).stem
    name = dataset_path.rstrip("/").split("/")[-1] or "root"
    selection = re.sub(r"(,:)+$", "", selection)  # "3:10,:,:" names the same as "3:10"
    parts = [stem, name] + ([selection.replace(":", "-").replace(",", "_")] if selection else [])
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(parts)).strip("-_") or "data"
    return f"{safe[:150]}.{ext}"


def _numeric(data: np.ndarray, fmt: str) -> np.ndarray:
    arr = np.asarray(data)
    if arr.dtype.kind not in "biufc":
        raise Invalid(f"format={fmt} needs numeric data, not dtype {arr.dtype}.")
    return arr


def to_csv(data: np.ndarray) -> bytes:
    """Numbers only (``_numeric`` refuses text), so no cell can be a formula (see csvsafe)."""
    arr = _numeric(data, "csv")
    if arr.ndim not in (1, 2):
        raise Invalid(
            f"format=csv needs a 1-D or 2-D selection, not {arr.ndim}-D; "
            "fix the other axes with the selection parameter.",
        )
    fmt = "%d" if arr.dtype.kind in "biu" else "%.17g"
    if arr.dtype.kind == "c":
        arr, fmt = np.concatenate([arr.real, arr.imag], axis=-1), "%.17g"
    buf = io.BytesIO()
    np.savetxt(buf, arr.astype(np.int64) if arr.dtype.kind == "b" else arr, fmt=fmt, delimiter=",")
    return buf.getvalue()


def tiff_array(data: np.ndarray) -> np.ndarray:
    """The values as TIFF stores them: the source dtype for 8-64-bit integers and 16-64-bit
    floats (native byte order), booleans as uint8 0/1, longer floats as float64."""
    arr = _numeric(data, "tiff")
    if arr.ndim not in (2, 3) or arr.dtype.kind == "c":
        raise Invalid("format=tiff needs a real-valued 2-D image or 3-D stack.")
    if arr.dtype.kind == "b":
        return arr.astype(np.uint8)  # tifffile would pack 1-bit pages few readers open
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
        return arr.astype(np.float64)  # TIFF has no 80/128-bit floats
    return arr.astype(arr.dtype.newbyteorder("=")) if not arr.dtype.isnative else arr


def to_tiff(data: np.ndarray) -> bytes:
    arr = tiff_array(data)
    buf = io.BytesIO()
    import tifffile  # on first TIFF export: ~24 MiB a server need not carry otherwise

    tifffile.imwrite(buf, arr, photometric="minisblack")
    return buf.getvalue()


def colormap_named(name: str) -> Any:
    """A matplotlib colour map by name, any case ("Viridis", H5Web's spelling, works too);
    a ``_r`` suffix reverses it (H5Web's "invert")."""
    import matplotlib

    names = {n.lower(): n for n in matplotlib.colormaps}
    found = name if name in matplotlib.colormaps else names.get(name.lower())
    if found is None:
        raise Invalid(f"Unknown colormap {name!r}, e.g. viridis, gray, inferno.")
    return matplotlib.colormaps[found]


_Scale = Callable[[Any], Any]  # elementwise on floats and float arrays
_FORWARD: dict[str, _Scale] = {"linear": lambda v: v, "log": np.log10, "sqrt": np.sqrt}
_BACK: dict[str, _Scale] = {
    "linear": lambda v: v,
    "log": lambda v: 10.0**v,
    "sqrt": lambda v: v * v,
}


def to_png(
    data: np.ndarray,
    colormap: str = "viridis",
    scale: str = "linear",
    vmin: float | None = None,
    vmax: float | None = None,
    flip_y: bool = False,
    flip_x: bool = False,
    colorbar: bool = True,
) -> bytes:
    """The 2-D selection as H5Web's heatmap draws it: one pixel per value, row 0 at the
    bottom (``flip_y``: at the top, H5Web's "Flip Y"), column 0 at the left (``flip_x``:
    at the right), colours ``colormap(normalised value)``, a colour bar at the right."""
    from PIL import Image

    from beamdesk.h5 import colorbar as bar

    arr = _numeric(data, "png")
    if arr.ndim != 2 or arr.dtype.kind == "c":
        raise Invalid("format=png needs a real-valued 2-D selection.")
    if scale not in SCALES:
        raise Invalid(f"Invalid scale {scale!r}: use one of {', '.join(SCALES)}.")
    cmap = colormap_named(colormap)
    if arr.size > MAX_PNG_PIXELS:
        raise TooLarge(
            f"A PNG of {arr.shape[0]}×{arr.shape[1]} pixels is larger "
            f"than the {MAX_PNG_PIXELS // 2**20} Mpx a picture export "
            "makes: add downsample=4096x4096, or export TIFF or NPY.",
        )
    values = arr.astype(np.float64)  # float32 would merge values of 1e9 + a few
    checks: dict[str, _Scale] = {
        "linear": np.isfinite,
        "log": lambda v: v > 0,
        "sqrt": lambda v: v >= 0,
    }
    valid = checks[scale]
    with np.errstate(divide="ignore", invalid="ignore"):
        values[~valid(values)] = np.nan
        values = _FORWARD[scale](values)
        finite = np.isfinite(values)
        lo = _transform(vmin, scale) if vmin is not None else None
        hi = _transform(vmax, scale) if vmax is not None else None
        if lo is None or not np.isfinite(lo):
            lo = float(values[finite].min()) if finite.any() else 0.0
        if hi is None or not np.isfinite(hi):
            hi = float(values[finite].max()) if finite.any() else 1.0
        span = hi - lo if np.isfinite(hi - lo) and hi != lo else 1.0
        np.subtract(values, lo, out=values)
        np.divide(values, span, out=values)
    np.clip(values, 0, 1, out=values)
    rgba = cmap(values, bytes=True)
    rgba[~finite] = 0  # no value: transparent
    if not flip_y:
        rgba = rgba[::-1]
    if flip_x:
        rgba = rgba[:, ::-1]
    rows, cols = arr.shape
    text = {
        "BeamDesk:data-box": f"0,0,{cols},{rows}",
        "BeamDesk:origin": "upper" if flip_y else "lower",
        "BeamDesk:colormap": cmap.name,
        "BeamDesk:scale": scale,
        "BeamDesk:range": f"{_BACK[scale](lo)!r},{_BACK[scale](hi)!r}",
    }
    if colorbar:
        image = bar.compose(rgba, cmap, _BACK[scale](lo), _BACK[scale](hi))
    else:
        image = Image.fromarray(np.ascontiguousarray(rgba), "RGBA")
    return bar.png_bytes(image, text)


def _transform(value: float, scale: str) -> float:
    if (scale == "log" and value <= 0) or (scale == "sqrt" and value < 0):
        return float("nan")
    return float(_FORWARD[scale](float(value)))
