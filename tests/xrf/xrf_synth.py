"""Shared helpers for the XRF tests: an INDEPENDENT forward model and synthetic data.

The forward model below is written directly from xraylib (line energies × radiative rates ×
Gaussians with the FWHM formula, plus a smooth exponential continuum). It shares no code with
beamdesk.xrf, so tests built on it compare the engine against physics, not against itself.
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import xraylib

DATA = Path("/work/shared/data/xrf")

# synthetic detector: 1024 channels, 20 eV/channel
ZERO, GAIN, NOISE, FANO = -0.010, 0.020, 0.100, 0.114
N_CHANNELS = 1024
ELEMENTS = ("Ti", "Fe", "Cu", "Zn", "Sr")


def k_lines(symbol: str) -> list[tuple[float, float]]:
    """(energy keV, rate) of every K line with rate > 1e-3, rates normalised to 1."""
    z = xraylib.SymbolToAtomicNumber(symbol)
    out = []
    for name in dir(xraylib):
        if not (name.startswith("K") and name.endswith("_LINE")) or len(name) != 8:
            continue  # IUPAC K lines: KL1_LINE … KP5_LINE (8 characters)
        macro = getattr(xraylib, name)
        try:
            e = xraylib.LineEnergy(z, macro)
            r = xraylib.RadRate(z, macro)
        except ValueError:
            continue
        if e > 0 and r > 1e-3:
            out.append((e, r))
    total = sum(r for _, r in out)
    return [(e, r / total) for e, r in out]


def expected_spectrum(
    areas: dict[str, float], continuum: float = 20.0, channels: np.ndarray | None = None
) -> np.ndarray:
    """Expected counts per channel for given K-group areas (independent of beamdesk)."""
    ch = np.arange(N_CHANNELS, dtype=float) if channels is None else channels
    e = ZERO + GAIN * ch
    y = continuum * np.exp(-np.clip(e, 0, None) / 6.0) + 0.05 * continuum
    for el, area in areas.items():
        for energy, rate in k_lines(el):
            fwhm = math.sqrt(NOISE**2 + 2.3548**2 * 0.00385 * FANO * energy)
            sigma = fwhm / 2.3548
            y = y + area * rate * GAIN / (sigma * math.sqrt(2 * math.pi)) * np.exp(
                -0.5 * ((e - energy) / sigma) ** 2
            )
    return y


def synthetic_cfg_text(continuum_order: int = 4) -> str:
    """A PyMca-style .cfg for the synthetic detector (no filters, no escape, no scatter)."""
    peaks = "\n".join(f"{el} = K" for el in ELEMENTS)
    return f"""[peaks]
{peaks}

[fit]
xmin = 60
xmax = 1000
use_limit = 1
energy = 20.0, None
energyweight = 1.0, 0.0
energyflag = 1, 0
energyscatter = 0, 0
escapeflag = 0
sumflag = 0
scatterflag = 0
stripflag = 0
continuum = {1 if continuum_order else 0}
linpolorder = {continuum_order}
linearfitflag = 0
fitweight = 1
hypermetflag = 1
maxiter = 10

[detector]
detele = Si
zero = {ZERO + 0.003}
gain = {GAIN * 1.001}
noise = {NOISE * 1.1}
fano = {FANO * 0.9}
deltazero = 0.05
deltagain = 0.001
deltanoise = 0.05
deltafano = 0.1
sum = 0.0

[attenuators]
Matrix = 0, MULTILAYER, 0.0, 0.0, 45.0, 45.0, 0, 90.0
"""


def write_map(
    path: Path,
    truth: dict[str, np.ndarray],
    continuum: float,
    seed: int = 0,
    chunks: tuple[int, int, int] | None = (5, 10, N_CHANNELS),
) -> None:
    """Poisson map whose pixel (i, j) has K-group areas truth[el][i, j]."""
    rng = np.random.default_rng(seed)
    shape = next(iter(truth.values())).shape
    unit = {el: expected_spectrum({el: 1.0}, continuum=0.0) for el in truth}
    base = expected_spectrum({}, continuum=continuum)
    mean = np.broadcast_to(base, (*shape, N_CHANNELS)).copy()
    for el, a in truth.items():
        mean += a[..., None] * unit[el]
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "entry/data/spectra",
            data=rng.poisson(mean).astype(np.uint16),
            chunks=chunks,
            compression="gzip",
        )
