"""Spectrum readers: SPEC/.mca, .spe, plain columns, CSV and HDF5 (``file.h5::/path[i,j]``).

Every failure becomes a :class:`SpectrumReadError` with a single line that names the file and
the problem, so command-line tools can print it without a traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from beamdesk.errors import Invalid


class SpectrumReadError(Invalid, ValueError):
    """The file cannot be read as a spectrum; the message is one line."""


@dataclass
class Spectrum:
    counts: np.ndarray  # float64, one value per channel
    channels: np.ndarray  # channel numbers (usually 0..n-1)
    source: str
    calibration: tuple[float, float, float] | None = None  # zero, gain, quad (keV)
    metadata: dict[str, Any] = field(default_factory=dict)


def split_h5_path(spec: str) -> tuple[str, str, tuple[int, ...] | None]:
    """'file.h5::/path[12,7]' → ('file.h5', '/path', (12, 7))."""
    if "::" not in spec:
        return spec, "", None
    fname, _, inner = spec.partition("::")
    index = None
    m = re.fullmatch(r"(.*)\[([\d,\s]+)\]", inner)
    if m:
        inner = m.group(1)
        try:
            index = tuple(int(x) for x in m.group(2).split(",") if x.strip())
        except ValueError as exc:
            raise SpectrumReadError(f"{fname}: bad index [{m.group(2)}]") from exc
    return fname, inner or "/", index


def _finish(counts: np.ndarray, source: str, first: int = 0, **meta: Any) -> Spectrum:
    counts = np.asarray(counts, dtype=np.float64).ravel()
    if counts.size < 8:
        raise SpectrumReadError(f"{source}: only {counts.size} channels, not a spectrum")
    if not np.all(np.isfinite(counts)):
        raise SpectrumReadError(f"{source}: contains non-finite values")
    return Spectrum(
        counts,
        np.arange(first, first + counts.size, dtype=np.float64),
        source,
        meta.pop("calibration", None),
        meta,
    )


def _numbers(tokens: list[str], source: str, where: str) -> list[float]:
    try:
        return [float(t) for t in tokens]
    except ValueError as exc:
        raise SpectrumReadError(f"{source}: {where}: not a number ({exc})") from None


def read_spe(path: Path) -> Spectrum:
    """The ``$KEY:`` block format of Steel.spe (``$DATA:`` then 'first last' then counts)."""
    text = path.read_text(errors="replace")
    blocks: dict[str, list[str]] = {}
    key = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("$") and s.endswith(":"):
            key = s[1:-1]
            blocks[key] = []
        elif key is not None and s:
            blocks[key].append(s)
    if "DATA" not in blocks or not blocks["DATA"]:
        raise SpectrumReadError(f"{path}: no $DATA: block")
    head = blocks["DATA"][0].split()
    if len(head) != 2:
        raise SpectrumReadError(f"{path}: $DATA: must start with 'first last' channel numbers")
    try:
        first, last = (int(x) for x in _numbers(head, str(path), "$DATA channel range"))
    except SpectrumReadError:
        raise
    except (OverflowError, ValueError):  # inf or nan: numbers, but no channel numbers
        raise SpectrumReadError(f"{path}: $DATA: channel numbers must be integers") from None
    values = _numbers(" ".join(blocks["DATA"][1:]).split(), str(path), "$DATA")
    if len(values) != last - first + 1:
        raise SpectrumReadError(
            f"{path}: $DATA: announces {last - first + 1} channels but holds {len(values)}"
        )
    calibration = None
    if "MCA_CAL" in blocks and len(blocks["MCA_CAL"]) > 1:
        coef = _numbers(blocks["MCA_CAL"][1].split()[:3], str(path), "$MCA_CAL")
        c0, c1, c2 = [*coef, 0.0, 0.0, 0.0][:3]
        calibration = (c0, c1, c2)
    return _finish(
        np.array(values),
        str(path),
        first,
        calibration=calibration,
        **{k.lower(): " ".join(v) for k, v in blocks.items() if k != "DATA"},
    )


def read_spec_mca(path: Path) -> Spectrum:
    """A SPEC file with ``@A`` MCA lines (first scan, first MCA) — backslash-continued."""
    counts: list[float] = []
    calibration = None
    collecting = False
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("#@CALIB"):
            c = _numbers(line.split()[1:4], str(path), "#@CALIB")
            calibration = (c[0], c[1], c[2] if len(c) > 2 else 0.0)
        if line.startswith("@A"):
            if counts:  # only the first spectrum of the file
                break
            collecting = True
            line = line[2:]
        if collecting:
            cont = line.rstrip().endswith("\\")
            counts += _numbers(line.replace("\\", " ").split(), str(path), "@A")
            if not cont:
                collecting = False
    if not counts:
        raise SpectrumReadError(f"{path}: SPEC file without @A MCA data")
    return _finish(np.array(counts), str(path), calibration=calibration)


def read_columns(path: Path, delimiter: str | None = None) -> Spectrum:
    """One or more numeric columns, ``#`` comments; the last column holds the counts.

    Two columns whose first one is non-integer are taken as (energy keV, counts) and the
    calibration is derived from the energies.
    """
    rows: list[list[float]] = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = [p for p in (s.split(delimiter) if delimiter else s.split()) if p.strip()]
        try:
            rows.append([float(p) for p in parts])
        except ValueError:
            if not rows and delimiter:  # a CSV header line
                continue
            raise SpectrumReadError(f"{path}: line {number}: not numeric: {s[:40]!r}") from None
    if not rows:
        raise SpectrumReadError(f"{path}: no numeric data")
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        raise SpectrumReadError(f"{path}: rows have different numbers of columns")
    data = np.array(rows)
    calibration = None
    if width >= 2:
        x = data[:, 0]
        if not np.allclose(x, np.round(x)) and x.size > 2:
            coef = np.polyfit(np.arange(x.size), x, 2)
            calibration = (float(coef[2]), float(coef[1]), float(coef[0]))
    return _finish(data[:, -1], str(path), calibration=calibration)


def read_hdf5(spec: str) -> Spectrum:
    import h5py
    import hdf5plugin  # noqa: F401  (registers compression filters)

    fname, inner, index = split_h5_path(spec)
    if not Path(fname).is_file():
        raise SpectrumReadError(f"{fname}: no such file")
    try:
        with h5py.File(fname, "r", locking=False) as f:  # never block a beamline writer
            if inner not in f:
                raise SpectrumReadError(f"{fname}: no dataset {inner}")
            ds = f[inner]
            if not isinstance(ds, h5py.Dataset):
                raise SpectrumReadError(f"{fname}: {inner} is a group, not a dataset")
            if index is None:
                if ds.ndim != 1:
                    # a map without an index: its sum spectrum, read chunk by chunk
                    from beamdesk.xrf.mapfit import sum_spectrum

                    data = sum_spectrum(ds)
                else:
                    data = ds[()]
            else:
                if len(index) != ds.ndim - 1:
                    raise SpectrumReadError(
                        f"{fname}: {inner} has {ds.ndim} axes; give {ds.ndim - 1} indices"
                    )
                try:
                    data = ds[index]
                except (IndexError, ValueError) as exc:
                    raise SpectrumReadError(f"{fname}: index {list(index)} out of range") from exc
    except OSError:
        raise SpectrumReadError(f"{fname}: not an HDF5 file (or unreadable)") from None
    return _finish(np.asarray(data), spec)


def read_spectrum(spec: str | Path) -> Spectrum:
    """Read one spectrum, choosing the reader by extension and content."""
    spec = str(spec)
    if "::" in spec:
        return read_hdf5(spec)
    path = Path(spec)
    if not path.is_file():
        raise SpectrumReadError(f"{path}: no such file")
    try:
        head = path.read_bytes()[:4096]
    except OSError as exc:
        raise SpectrumReadError(f"{path}: cannot read ({exc.strerror})") from None
    if head.startswith(b"\x89HDF"):
        raise SpectrumReadError(f"{path}: HDF5 file: give the dataset as {path}::/path")
    if b"\x00" in head:
        raise SpectrumReadError(f"{path}: binary file of unknown format")
    text = head.decode("latin-1")
    suffix = path.suffix.lower()
    if text.lstrip().startswith("$") or suffix == ".spe":
        return read_spe(path)
    if "\n@A" in text or text.startswith("@A") or "#@MCA" in text:
        return read_spec_mca(path)
    if suffix == ".csv":
        return read_columns(path, ",")
    return read_columns(path)
