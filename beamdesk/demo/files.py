"""NeXus files for the demo facility, written the way beamline software writes them.

Numbers are physical, not random filler: XRF spectra are built from xraylib line energies
and radiative rates with a silicon-detector resolution and Poisson counts; the absorption
scan has a Fe K edge at the tabulated energy; SAXS frames show the Guinier fall-off of
spheres; the tomography stack is the Radon projection of a rotating cylinder. Each writer
is deterministic (fixed seeds), so the demo is the same on every machine.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import xraylib

from beamdesk.xrf.config import BeamLine, Detector, Fit, XRFConfig, save_config

# The demo's silicon drift detector: 2048 channels of 10 eV.
ZERO_KEV, GAIN_KEV, NOISE_KEV, FANO = 0.0, 0.010, 0.110, 0.114
N_CHANNELS = 2048
BEAM_KEV = 17.0
Progress = Callable[[str], None]


@contextmanager
def atomic_h5(path: Path) -> Iterator[h5py.File]:
    """Write to a hidden temporary name and rename, so no half-written file is ever seen."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    with h5py.File(tmp, "w") as fh:
        fh.attrs["creator"] = "BeamDesk demo"
        fh.attrs["NX_class"] = "NXroot"
        yield fh
    os.replace(tmp, path)


def _entry(
    fh: h5py.File,
    name: str,
    *,
    title: str,
    start: datetime,
    seconds: float,
    instrument: str,
    sample: str,
    definition: str = "",
) -> h5py.Group:
    entry = fh.create_group(name)
    entry.attrs["NX_class"] = "NXentry"
    fh.attrs["default"] = name
    entry["title"] = title
    entry["start_time"] = start.isoformat()
    entry["end_time"] = (start + timedelta(seconds=seconds)).isoformat()
    if definition:
        entry["definition"] = definition
    inst = entry.create_group("instrument")
    inst.attrs["NX_class"] = "NXinstrument"
    inst["name"] = instrument
    source = inst.create_group("source")
    source.attrs["NX_class"] = "NXsource"
    source["name"] = "Elettra"
    source["type"] = "Synchrotron X-ray Source"
    source["probe"] = "x-ray"
    source["energy"] = 2.4
    source["energy"].attrs["units"] = "GeV"
    smp = entry.create_group("sample")
    smp.attrs["NX_class"] = "NXsample"
    smp["name"] = sample
    return entry


def _nxdata(parent: h5py.Group, name: str, signal: str, axes: list[str]) -> h5py.Group:
    group = parent.create_group(name)
    group.attrs["NX_class"] = "NXdata"
    group.attrs["signal"] = signal
    group.attrs["axes"] = axes
    return group


# --- XRF ---------------------------------------------------------------------------------


def _lines(symbol: str, shell: str) -> list[tuple[float, float]]:
    """(energy keV, relative rate) of the element's K or L lines excitable by the beam."""
    z = xraylib.SymbolToAtomicNumber(symbol)
    out: list[tuple[float, float]] = []
    for name in dir(xraylib):
        if not (name.endswith("_LINE") and name.startswith(shell) and len(name) == 8):
            continue
        macro = getattr(xraylib, name)
        try:
            energy, rate = xraylib.LineEnergy(z, macro), xraylib.RadRate(z, macro)
        except ValueError:
            continue
        if 0 < energy < BEAM_KEV and rate > 1e-3:
            out.append((energy, rate))
    return out


def _gaussian(energy: np.ndarray, centre: float, area: float) -> np.ndarray:
    fwhm = math.sqrt(NOISE_KEV**2 + 2.3548**2 * 0.00385 * FANO * centre)
    sigma = fwhm / 2.3548
    return (
        area
        * GAIN_KEV
        / (sigma * math.sqrt(2 * math.pi))
        * np.exp(-0.5 * ((energy - centre) / sigma) ** 2)
    )


def xrf_basis(elements: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-element unit-area spectra (elements × channels) and the channels' energies."""
    energy = ZERO_KEV + GAIN_KEV * np.arange(N_CHANNELS)
    rows = []
    for symbol, shell in elements.items():
        lines = _lines(symbol, shell)
        total = sum(rate for _, rate in lines)
        rows.append(sum(_gaussian(energy, e, r / total) for e, r in lines))
    return np.array(rows), energy


def _scatter_and_continuum(energy: np.ndarray) -> np.ndarray:
    """Rayleigh and Compton peaks of the beam (90° scattering) and a smooth continuum."""
    compton = BEAM_KEV / (1 + BEAM_KEV / 511.0)  # 1 - cos 90° = 1
    # Compton is Doppler-broadened far beyond the detector resolution: σ ≈ 0.35 keV here.
    sigma_compton = 0.35
    shape = 40 * np.exp(-energy / 4.0) * (energy > 0.8)
    shape += _gaussian(energy, BEAM_KEV, 1500.0)
    shape += (
        4000.0
        * GAIN_KEV
        / (sigma_compton * math.sqrt(2 * math.pi))
        * np.exp(-0.5 * ((energy - compton) / sigma_compton) ** 2)
    )
    return shape


def _blob(yy: np.ndarray, xx: np.ndarray, y: float, x: float, r: float) -> np.ndarray:
    return np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * r * r))


def xrf_map_counts(
    rows: int, cols: int, elements: dict[str, str], seed: int, dwell_scale: float = 1.0
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Poisson counts (rows × cols × channels) and the true per-element area maps."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(float)
    areas: dict[str, np.ndarray] = {}
    for k, symbol in enumerate(elements):
        # Growth bands (like a shell's layers) plus a few inclusions rich in each element.
        bands = 0.5 + 0.5 * np.sin(2 * np.pi * (yy / rows * (2 + k) + 0.15 * k + xx / cols))
        spots = sum(
            _blob(yy, xx, rng.uniform(0, rows), rng.uniform(0, cols), rng.uniform(2, 6))
            for _ in range(3)
        )
        level = 400.0 / (1 + k)
        areas[symbol] = dwell_scale * level * (0.3 + bands + 2.5 * spots)
    basis, energy = xrf_basis(elements)
    background = _scatter_and_continuum(energy)
    expected = np.einsum("yxe,ec->yxc", np.stack(list(areas.values()), axis=-1), basis)
    expected += dwell_scale * background
    return rng.poisson(expected).astype(np.int32), areas


def xrf_config(elements: dict[str, str]) -> XRFConfig:
    """The fit configuration that matches the demo detector (what a scientist would save)."""
    return XRFConfig(
        peaks={symbol: [shell] for symbol, shell in elements.items()},
        detector=Detector(zero=ZERO_KEV, gain=GAIN_KEV, noise=NOISE_KEV, fano=FANO),
        fit=Fit(
            xmin=100,
            xmax=1500,
            beam=[BeamLine(energy=BEAM_KEV)],
            escape=False,
            background="snip",
            snip_width=30,
        ),
    )


def write_xrf_map(
    path: Path,
    *,
    rows: int,
    cols: int,
    elements: dict[str, str],
    seed: int,
    title: str,
    sample: str,
    start: datetime,
) -> dict[str, np.ndarray]:
    """A fluorescence map as an XRF beamline writes it; returns the true area maps."""
    counts, areas = xrf_map_counts(rows, cols, elements, seed)
    energy = ZERO_KEV + GAIN_KEV * np.arange(N_CHANNELS)
    y = np.arange(rows) * 0.005  # 5 µm steps, in mm
    x = np.arange(cols) * 0.005
    with atomic_h5(path) as fh:
        entry = _entry(
            fh,
            "entry",
            title=title,
            start=start,
            seconds=rows * cols * 0.1,
            instrument="XRF",
            sample=sample,
        )
        entry.attrs["default"] = "maps"
        det = entry["instrument"].create_group("fluorescence")
        det.attrs["NX_class"] = "NXdetector"
        det["description"] = "Silicon drift detector, 2048 channels"
        det["calibration"] = [ZERO_KEV, GAIN_KEV, 0.0]
        det["calibration"].attrs["units"] = "keV"
        mono = entry["instrument"].create_group("monochromator")
        mono.attrs["NX_class"] = "NXmonochromator"
        mono["energy"] = BEAM_KEV
        mono["energy"].attrs["units"] = "keV"
        spectra = _nxdata(entry, "spectra", "data", ["y", "x", "energy"])
        ds = spectra.create_dataset(
            "data",
            data=counts,
            chunks=(1, cols, N_CHANNELS),
            **hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE),
        )
        ds.attrs["interpretation"] = "spectrum"
        ds.attrs["units"] = "counts"
        for name, values, unit in (("y", y, "mm"), ("x", x, "mm"), ("energy", energy, "keV")):
            spectra[name] = values
            spectra[name].attrs["units"] = unit
        total = _nxdata(entry, "maps", "total_counts", ["y", "x"])
        total["total_counts"] = counts.sum(axis=-1)
        total["y"], total["x"] = y, x
        total.attrs["title"] = "Total counts per pixel"
        summed = _nxdata(entry, "sum_spectrum", "counts", ["energy"])
        summed["counts"] = counts.sum(axis=(0, 1))
        summed["energy"] = energy
        summed["energy"].attrs["units"] = "keV"
    return areas


# --- scans, images, stacks ---------------------------------------------------------------


def write_xanes_scan(path: Path, *, start: datetime, seed: int, sample: str) -> None:
    """A Fe K-edge transmission scan: I0, It and μ(E) = ln(I0/It) with errors."""
    rng = np.random.default_rng(seed)
    edge = xraylib.EdgeEnergy(26, xraylib.K_SHELL)
    energy = np.concatenate(
        [
            np.linspace(edge - 0.15, edge - 0.02, 40),
            np.linspace(edge - 0.02, edge + 0.05, 120),
            np.linspace(edge + 0.05, edge + 0.4, 80),
        ]
    )
    mu_true = 0.4 + 1.0 * (0.5 + np.arctan((energy - edge) / 0.0015) / np.pi)
    mu_true += 0.35 * np.exp(-(((energy - edge - 0.012) / 0.004) ** 2))  # white line
    i0 = rng.poisson(2e5, energy.size).astype(float)
    it = rng.poisson(i0 * np.exp(-mu_true)).astype(float)
    mu = np.log(i0 / it)
    errors = np.sqrt(1 / i0 + 1 / it)
    with atomic_h5(path) as fh:
        entry = _entry(
            fh,
            "entry",
            title=f"Fe K-edge XANES of {sample}",
            start=start,
            seconds=energy.size * 0.5,
            instrument="XRF",
            sample=sample,
            definition="NXxas",
        )
        entry.attrs["default"] = "data"
        data = _nxdata(entry, "data", "mu", ["energy"])
        data["mu"] = mu
        data["mu"].attrs["long_name"] = "absorption ln(I0/It)"
        data["mu_errors"] = errors
        data["energy"] = energy
        data["energy"].attrs["units"] = "keV"
        data["I0"], data["It"] = i0, it
        # NeXus plots auxiliary signals with the signal, in its units: μ has none; the
        # counts I0 and It (same units, same scale) are their own plot, sharing the datasets.
        intensities = _nxdata(entry, "intensities", "I0", ["energy"])
        intensities.attrs["auxiliary_signals"] = ["It"]
        for name in ("I0", "It", "energy"):
            intensities[name] = data[name]  # hard links: one copy of the values
        for name in ("I0", "It"):
            data[name].attrs["units"] = "counts"


def write_saxs_frames(
    path: Path, *, frames: int, start: datetime, seed: int, radius_nm: float, sample: str
) -> None:
    """Pilatus-like frames of dilute spheres (bitshuffle-LZ4, as detectors write them)."""
    rng = np.random.default_rng(seed)
    ny, nx, pixel_mm, distance_mm, wavelength_nm = 619, 487, 0.172, 2000.0, 0.1
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    r_mm = np.hypot(yy - 300.5, xx - 240.5) * pixel_mm
    q = 4 * np.pi / wavelength_nm * np.sin(np.arctan(r_mm / distance_mm) / 2)
    qr = q * radius_nm
    form = np.where(qr > 1e-6, 3 * (np.sin(qr) - qr * np.cos(qr)) / np.maximum(qr, 1e-6) ** 3, 1)
    intensity = 5e4 * form**2 + 2.0
    intensity[r_mm < 3.0] = 0  # beam stop
    intensity[:, 240:245] = 0  # module gap
    with atomic_h5(path) as fh:
        entry = _entry(
            fh,
            "entry",
            title=f"SAXS of {sample}",
            start=start,
            seconds=frames * 10.0,
            instrument="SAXS",
            sample=sample,
            definition="NXsas",
        )
        entry.attrs["default"] = "data"
        data = _nxdata(entry, "data", "data", [".", "y", "x"])
        ds = data.create_dataset(
            "data",
            shape=(frames, ny, nx),
            dtype=np.int32,
            chunks=(1, ny, nx),
            **hdf5plugin.Bitshuffle(cname="lz4"),
        )
        for k in range(frames):
            ds[k] = rng.poisson(intensity * (1 + 0.02 * k))
        ds.attrs["interpretation"] = "image"
        data["y"] = (np.arange(ny) - 300.5) * pixel_mm
        data["x"] = (np.arange(nx) - 240.5) * pixel_mm
        data["y"].attrs["units"] = data["x"].attrs["units"] = "mm"
        det = entry["instrument"].create_group("detector")
        det.attrs["NX_class"] = "NXdetector"
        det["distance"] = distance_mm
        det["distance"].attrs["units"] = "mm"
        det["x_pixel_size"] = pixel_mm
        det["x_pixel_size"].attrs["units"] = "mm"
        mono = entry["instrument"].create_group("monochromator")
        mono.attrs["NX_class"] = "NXmonochromator"
        mono["wavelength"] = wavelength_nm
        mono["wavelength"].attrs["units"] = "nm"
        # The reduced curve, as the beamline's pipeline writes it next to the frames.
        reduced = _nxdata(entry, "reduced", "I", ["q"])
        bins = np.linspace(0.05, q.max(), 200)
        idx = np.digitize(q.ravel(), bins)
        first = ds[0].ravel().astype(float)
        valid = intensity.ravel() > 0
        sums = np.bincount(idx[valid], first[valid], bins.size + 1)[1:-1]
        counts = np.bincount(idx[valid], minlength=bins.size + 1)[1:-1]
        keep = counts > 0
        centres = 0.5 * (bins[1:] + bins[:-1])
        reduced["I"] = sums[keep] / counts[keep]
        reduced["I_errors"] = np.sqrt(sums[keep]) / counts[keep]
        reduced["q"] = centres[keep]
        reduced["q"].attrs["units"] = "1/nm"


STACK_PIXEL_MM = 0.0065  # the projection stack's detector pixel


@dataclass(frozen=True)
class StackShape:
    frames: int = 520
    rows: int = 1024
    cols: int = 1024

    @property
    def nbytes(self) -> int:
        return self.frames * self.rows * self.cols * 2


def write_projection_stack(
    path: Path,
    *,
    start: datetime,
    shape: StackShape = StackShape(),
    progress: Progress | None = None,
) -> None:
    """A tomography stack ≥ 1 GB (uint16), cheap to make and small on disk.

    Each frame is the analytic projection of a cylinder with two inclusions, rotating by
    180°/frames; smooth frames compress ~20× with Blosc-LZ4, so the 1.1 GB dataset takes a
    few seconds and ~50 MB on disk, yet every frame is different and real to slice.
    """
    ys = np.linspace(-1, 1, shape.rows)[:, None]
    xs = np.linspace(-1, 1, shape.cols)[None, :]
    body = 2 * np.sqrt(np.clip(0.64 - xs**2, 0, None)) * np.ones_like(ys)
    with atomic_h5(path) as fh:
        entry = _entry(
            fh,
            "entry",
            title="Tomography projections of a mussel shell",
            start=start,
            seconds=shape.frames * 0.2,
            instrument="XRF",
            sample="Mytilus galloprovincialis shell",
            definition="NXtomo",
        )
        entry.attrs["default"] = "data"
        data = _nxdata(entry, "data", "data", ["rotation_angle", "y", "x"])
        ds = data.create_dataset(
            "data",
            shape=(shape.frames, shape.rows, shape.cols),
            dtype=np.uint16,
            chunks=(1, shape.rows, shape.cols),
            **hdf5plugin.Blosc(cname="lz4", clevel=1, shuffle=hdf5plugin.Blosc.BITSHUFFLE),
        )
        ds.attrs["interpretation"] = "image"
        angles = np.linspace(0, 180, shape.frames, endpoint=False)
        for k, angle in enumerate(np.radians(angles)):
            inclusions: float | np.ndarray = 0.0
            for cx, cy, r, weight in ((0.35, 0.2, 0.12, 3.0), (-0.3, -0.25, 0.08, -0.8)):
                centre = cx * math.cos(angle) - cy * math.sin(angle)
                inclusions = inclusions + weight * 2 * np.sqrt(
                    np.clip(r * r - (xs - centre) ** 2, 0, None)
                )
            vertical = (np.abs(ys) < 0.9).astype(float)
            frame = 60000 * np.exp(-0.9 * (body + inclusions) * vertical)
            ds[k] = frame.astype(np.uint16)
            if progress and k % 64 == 0:
                progress(f"tomography stack: frame {k}/{shape.frames}")
        data["rotation_angle"] = angles
        data["rotation_angle"].attrs["units"] = "degree"
        # Detector pixel centres in mm (6.5 µm pixels), centred on the rotation axis.
        for dim, (name, n) in enumerate(
            (("rotation_angle", shape.frames), ("y", shape.rows), ("x", shape.cols))
        ):
            if name != "rotation_angle":
                data[name] = (np.arange(n) - (n - 1) / 2) * STACK_PIXEL_MM
                data[name].attrs["units"] = "mm"
            data.attrs[f"{name}_indices"] = dim


def write_compound_log(path: Path, *, start: datetime, seed: int) -> None:
    """A beamline log as a compound table (time, ring current, gap, temperature)."""
    rng = np.random.default_rng(seed)
    n = 500
    dtype = np.dtype(
        [
            ("time_s", "f8"),
            ("ring_current_mA", "f4"),
            ("undulator_gap_mm", "f4"),
            ("sample_temperature_K", "f4"),
            ("shutter_open", "?"),
        ]
    )
    table = np.zeros(n, dtype)
    table["time_s"] = np.arange(n) * 6.0
    table["ring_current_mA"] = 310 - 0.02 * table["time_s"] % 10 + rng.normal(0, 0.05, n)
    table["undulator_gap_mm"] = 18.5
    table["sample_temperature_K"] = 295 + rng.normal(0, 0.1, n)
    table["shutter_open"] = True
    with atomic_h5(path) as fh:
        entry = _entry(
            fh,
            "entry",
            title="Beamline log",
            start=start,
            seconds=n * 6,
            instrument="XRF",
            sample="none",
        )
        log = entry.create_group("log")
        log.attrs["NX_class"] = "NXlog"
        log["table"] = table


def save_xrf_configs(folder: Path, elements: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = xrf_config(elements)
    save_config(cfg, folder / "xrf_map.toml")
    save_config(cfg, folder / "xrf_map.cfg")
