"""Download formats beyond h5grove's: CSV, TIFF stacks, colour-mapped PNG, HDF5 subsets."""

from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path

import h5py
import numpy as np

from beamdesk.h5.errors import H5RequestError

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
        raise H5RequestError(422, f"format={fmt} needs numeric data, not dtype {arr.dtype}.")
    return arr


def to_csv(data: np.ndarray) -> bytes:
    """Numbers only (``_numeric`` refuses text), so no cell can be a formula (see csvsafe)."""
    arr = _numeric(data, "csv")
    if arr.ndim not in (1, 2):
        raise H5RequestError(
            422,
            f"format=csv needs a 1-D or 2-D selection, not {arr.ndim}-D; "
            "fix the other axes with the selection parameter.",
        )
    fmt = "%d" if arr.dtype.kind in "biu" else "%.17g"
    if arr.dtype.kind == "c":
        arr, fmt = np.concatenate([arr.real, arr.imag], axis=-1), "%.17g"
    buf = io.BytesIO()
    np.savetxt(buf, arr.astype(np.int64) if arr.dtype.kind == "b" else arr, fmt=fmt, delimiter=",")
    return buf.getvalue()


def to_tiff(data: np.ndarray) -> bytes:
    arr = _numeric(data, "tiff")
    if arr.ndim not in (2, 3) or arr.dtype.kind == "c":
        raise H5RequestError(422, "format=tiff needs a real-valued 2-D image or 3-D stack.")
    buf = io.BytesIO()
    import tifffile  # on first TIFF export: ~24 MiB a server need not carry otherwise

    tifffile.imwrite(buf, arr, photometric="minisblack")
    return buf.getvalue()


def to_png(
    data: np.ndarray,
    colormap: str = "viridis",
    scale: str = "linear",
    vmin: float | None = None,
    vmax: float | None = None,
) -> bytes:
    import matplotlib
    from PIL import Image

    arr = _numeric(data, "png")
    if arr.ndim != 2 or arr.dtype.kind == "c":
        raise H5RequestError(422, "format=png needs a real-valued 2-D selection.")
    if scale not in SCALES:
        raise H5RequestError(422, f"Invalid scale {scale!r}: use one of {', '.join(SCALES)}.")
    try:
        cmap = matplotlib.colormaps[colormap]
    except KeyError as exc:
        raise H5RequestError(
            422, f"Unknown colormap {colormap!r}, e.g. viridis, gray, inferno."
        ) from exc
    if arr.size > MAX_PNG_PIXELS:
        raise H5RequestError(
            413,
            f"A PNG of {arr.shape[0]}×{arr.shape[1]} pixels is larger "
            f"than the {MAX_PNG_PIXELS // 2**20} Mpx a picture export "
            "makes: add downsample=4096x4096, or export TIFF or NPY.",
        )
    values = arr.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        if scale == "log":
            values = np.where(values > 0, np.log10(values), np.nan)
        elif scale == "sqrt":
            values = np.where(values >= 0, np.sqrt(values), np.nan)
    finite = values[np.isfinite(values)]
    transform = {
        "linear": float,
        "log": lambda v: np.log10(v) if v > 0 else np.nan,
        "sqrt": lambda v: np.sqrt(v) if v >= 0 else np.nan,
    }[scale]
    lo = transform(vmin) if vmin is not None else (finite.min() if finite.size else 0.0)
    hi = transform(vmax) if vmax is not None else (finite.max() if finite.size else 1.0)
    span = hi - lo if np.isfinite(hi - lo) and hi != lo else 1.0
    rgba = cmap(np.clip((values - lo) / span, 0, 1), bytes=True)
    rgba[~np.isfinite(values)] = 0
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return buf.getvalue()


def _copy_attrs(src: h5py.HLObject, dst: h5py.HLObject) -> None:
    for key, value in src.attrs.items():
        dst.attrs[key] = value


def write_subset(root: h5py.File, objects: list[tuple[str, h5py.HLObject]], budget: int) -> Path:
    """A new HDF5 file (a temporary path) holding ``objects`` at their paths, with their
    attributes and their parent groups' attributes (NX_class…), so it opens in a viewer."""
    total = sum(o.size * o.dtype.itemsize for _, o in objects if isinstance(o, h5py.Dataset))
    if total > budget:
        raise H5RequestError(
            413,
            f"The chosen datasets hold {total / 2**20:.1f} MiB, more than "
            f"the {budget / 2**20:.0f} MiB allowed; choose fewer or smaller.",
        )
    fd, name = tempfile.mkstemp(suffix=".h5", prefix="beamdesk-subset-")
    import os

    os.close(fd)
    with h5py.File(name, "w") as out:
        for path, obj in objects:
            parts = [p for p in path.split("/") if p]
            src_group: h5py.Group | None = root["/"]
            dst_group = out["/"]
            _copy_attrs(root["/"], dst_group)
            for part in parts[:-1]:
                dst_group = dst_group.require_group(part)
                # Parents' attributes only through hard links: libhdf5 would follow an
                # external link anywhere, and the object itself was already confined.
                link = src_group.get(part, getlink=True) if src_group is not None else None
                src_group = src_group[part] if isinstance(link, h5py.HardLink) else None
                if isinstance(src_group, h5py.Group):
                    _copy_attrs(src_group, dst_group)
                else:
                    src_group = None
            if parts and parts[-1] not in dst_group:
                dst_group.copy(obj, parts[-1])
    return Path(name)
