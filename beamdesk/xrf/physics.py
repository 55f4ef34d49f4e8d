"""X-ray physics from xraylib: line groups, yields, vacancies, edges, attenuation, escape peaks.

Every number comes from xraylib so the tables stay consistent and citable; nothing here is
hand-typed except the ionisation energies per electron-hole pair of the detector crystals.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import xraylib as xrl

from beamdesk.errors import Invalid

# Mean energy per electron-hole pair (keV) — enters the Fano term of the resolution.
PAIR_ENERGY_KEV = {"Si": 0.00385, "Ge": 0.00296}

# PyMca merges lines closer than this (keV) into one peak: they cannot be resolved anyway and
# fewer peaks make the model cheaper.
MERGE_TOLERANCE_KEV = 0.010

SHELLS = ("K", "L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5")
GROUP_SHELLS = {
    "K": ("K",),
    "Ka": ("K",),
    "Kb": ("K",),
    "L": ("L1", "L2", "L3"),
    "L1": ("L1",),
    "L2": ("L2",),
    "L3": ("L3",),
    "M": ("M1", "M2", "M3", "M4", "M5"),
    "M1": ("M1",),
    "M2": ("M2",),
    "M3": ("M3",),
    "M4": ("M4",),
    "M5": ("M5",),
}
VALID_GROUPS = tuple(GROUP_SHELLS)

_IUPAC = re.compile(r"^(K|L[123]|M[1-5])([LMNOPQ][1-7])_LINE$")


class PhysicsError(Invalid, ValueError):
    """Unknown element, line group or material."""


@dataclass(frozen=True)
class Line:
    """One (possibly merged) emission line: energy in keV and relative rate within its group."""

    name: str
    energy: float
    rate: float


@lru_cache(maxsize=1)
def _iupac_lines() -> tuple[tuple[str, str, int], ...]:
    """(initial shell, final shell, xraylib macro) for every IUPAC line xraylib knows."""
    out = []
    for attr in dir(xrl):
        m = _IUPAC.match(attr)
        if m:
            out.append((m.group(1), m.group(2), getattr(xrl, attr)))
    return tuple(sorted(out, key=lambda t: t[2]))


def atomic_number(symbol: str) -> int:
    try:
        z = xrl.SymbolToAtomicNumber(symbol)
    except ValueError as exc:
        raise PhysicsError(f"unknown element {symbol!r}") from exc
    if z <= 0:
        raise PhysicsError(f"unknown element {symbol!r}")
    return int(z)


def symbol(z: int) -> str:
    return str(xrl.AtomicNumberToSymbol(int(z)))


def edge_energy(element: str, shell: str) -> float:
    """Absorption edge (keV); 0 when xraylib has none."""
    try:
        return float(xrl.EdgeEnergy(atomic_number(element), getattr(xrl, f"{shell}_SHELL")))
    except ValueError:
        return 0.0


def fluorescence_yield(element: str, shell: str) -> float:
    try:
        return float(xrl.FluorYield(atomic_number(element), getattr(xrl, f"{shell}_SHELL")))
    except ValueError:
        return 0.0


def _safe(fn, *args) -> float:  # type: ignore[no-untyped-def]
    """xraylib raises ValueError for 'no data'; for us that simply means zero."""
    try:
        return float(fn(*args))
    except ValueError:
        return 0.0


def shell_vacancies(element: str, excitation_kev: float | None) -> dict[str, float]:
    """Primary vacancies per shell after Coster–Kronig redistribution (per unit flux, cm²/g).

    Photo-ionisation by subshell (Kissel partial cross sections) creates the primary vacancies;
    Coster–Kronig transitions then move L1→L2/L3, L2→L3 and M_i→M_j before fluorescence.
    Without an excitation energy every shell is given one vacancy (rates within a shell only).
    """
    z = atomic_number(element)
    if excitation_kev is None or excitation_kev <= 0:
        return dict.fromkeys(SHELLS, 1.0)
    v = {
        s: _safe(xrl.CS_Photo_Partial, z, getattr(xrl, f"{s}_SHELL"), excitation_kev)
        for s in SHELLS
    }
    f = {
        name: _safe(xrl.CosKronTransProb, z, getattr(xrl, f"{name}_TRANS"))
        for name in (
            "FL12",
            "FL13",
            "FL23",
            "FM12",
            "FM13",
            "FM14",
            "FM15",
            "FM23",
            "FM24",
            "FM25",
            "FM34",
            "FM35",
            "FM45",
        )
    }
    v["L2"] += f["FL12"] * v["L1"]
    v["L3"] += f["FL13"] * v["L1"] + f["FL23"] * v["L2"]
    # M shells: same cascade, ordered from M1 downwards.
    for i in range(1, 5):
        for j in range(i + 1, 6):
            v[f"M{j}"] += f[f"FM{i}{j}"] * v[f"M{i}"]
    return v


def raw_lines(element: str, group: str, excitation_kev: float | None) -> list[Line]:
    """Unmerged lines with absolute weights: vacancies × fluorescence yield × radiative rate."""
    if group not in GROUP_SHELLS:
        raise PhysicsError(f"unknown line group {group!r} (use one of {', '.join(VALID_GROUPS)})")
    z = atomic_number(element)
    shells = GROUP_SHELLS[group]
    vac = shell_vacancies(element, excitation_kev)
    lines = []
    for initial, final, macro in _iupac_lines():
        if initial not in shells:
            continue
        if group == "Ka" and not final.startswith("L"):
            continue
        if group == "Kb" and final.startswith("L"):
            continue
        if excitation_kev and edge_energy(element, initial) > excitation_kev:
            continue
        energy = _safe(xrl.LineEnergy, z, macro)
        rate = _safe(xrl.RadRate, z, macro)
        if energy <= 0 or rate <= 0:
            continue
        # intensity ∝ vacancies × fluorescence yield × radiative branching ratio
        weight = vac[initial] * fluorescence_yield(element, initial) * rate
        if weight > 0:
            lines.append(Line(f"{initial}{final}", energy, weight))
    return lines


def merge_lines(lines: list[Line], tolerance: float = MERGE_TOLERANCE_KEV) -> list[Line]:
    """Merge lines closer than `tolerance` keV into one at the rate-weighted mean energy."""
    out: list[Line] = []
    for line in sorted(lines, key=lambda x: x.energy):
        if out and line.energy - out[-1].energy < tolerance:
            prev = out[-1]
            total = prev.rate + line.rate
            out[-1] = Line(
                prev.name, (prev.energy * prev.rate + line.energy * line.rate) / total, total
            )
        else:
            out.append(line)
    return out


@lru_cache(maxsize=4096)
def group_lines(
    element: str, group: str, excitation_kev: float | None = None, min_rate: float = 1e-4
) -> tuple[Line, ...]:
    """Lines of one element group with rates normalised to sum 1 (before any attenuation)."""
    lines = merge_lines(raw_lines(element, group, excitation_kev))
    total = sum(line.rate for line in lines)
    if total <= 0:
        return ()
    lines = [Line(x.name, x.energy, x.rate / total) for x in lines if x.rate / total >= min_rate]
    total = sum(line.rate for line in lines)
    return tuple(Line(x.name, x.energy, x.rate / total) for x in lines)


def group_yield(element: str, group: str, excitation_kev: float | None) -> float:
    """Fluorescence photons of the group per unit flux and mass (cm²/g): vacancies × ω × Σrate."""
    return sum(line.rate for line in raw_lines(element, group, excitation_kev))


# --- materials and attenuation -------------------------------------------------------------


@dataclass(frozen=True)
class Material:
    """Mass fractions by element symbol and a density (g/cm³)."""

    fractions: tuple[tuple[str, float], ...]
    density: float = 1.0


def parse_compound(formula: str) -> dict[str, float]:
    """Mass fractions of a chemical formula or NIST compound name."""
    try:
        data = xrl.CompoundParser(formula)
        return {
            symbol(z): float(w)
            for z, w in zip(data["Elements"], data["massFractions"], strict=True)
        }
    except ValueError:
        pass
    try:
        data = xrl.GetCompoundDataNISTByName(formula)
    except ValueError as exc:
        raise PhysicsError(f"unknown material or formula {formula!r}") from exc
    return {
        symbol(z): float(w) for z, w in zip(data["Elements"], data["massFractions"], strict=True)
    }


def mixture(components: list[tuple[str, float]]) -> dict[str, float]:
    """Element mass fractions of a mixture of formulas given with (unnormalised) weights."""
    total = sum(w for _, w in components)
    out: dict[str, float] = {}
    for formula, w in components:
        for el, f in parse_compound(formula).items():
            out[el] = out.get(el, 0.0) + f * w / total
    return out


# Photo-ionisation: xraylib's default CS_Photo table overshoots by up to 12 % between 6.1 and
# 7.6 keV for Cr (just above its K edge; its neighbours V and Mn agree with Kissel's data to
# 1 %), which biased the self-absorption of Fe Kα in steel. Kissel's subshell cross sections,
# which already give the vacancies, are smooth there; their sum is used where it is reliable:
# Z ≥ 11 (for lighter atoms the subshell sum misses most of the cross section) and E ≤ 60 keV
# (above, the sum drops below the tabulated total for Z < 22). Elsewhere: xraylib's CS_Photo.
KISSEL_MIN_Z = 11
KISSEL_MAX_KEV = 60.0


@lru_cache(maxsize=65536)
def element_photo(z: int, energy_kev: float) -> float:
    """Photo-electric mass absorption coefficient τ/ρ (cm²/g) of one element."""
    if energy_kev <= 0:
        return 0.0
    if z >= KISSEL_MIN_Z and energy_kev <= KISSEL_MAX_KEV:
        value = _safe(xrl.CS_Photo_Total, z, energy_kev)
        if value > 0:
            return value
    return _safe(xrl.CS_Photo, z, energy_kev)


@lru_cache(maxsize=65536)
def element_total(z: int, energy_kev: float) -> float:
    """Total mass attenuation μ/ρ (cm²/g) of one element: photo + Rayleigh + Compton."""
    if energy_kev <= 0:
        return 0.0
    return (
        element_photo(z, energy_kev)
        + _safe(xrl.CS_Rayl, z, energy_kev)
        + _safe(xrl.CS_Compt, z, energy_kev)
    )


def mass_attenuation(composition: dict[str, float], energy_kev: float | np.ndarray) -> np.ndarray:
    """Total mass attenuation coefficient μ/ρ (cm²/g) of a composition at energies (keV)."""
    e = np.atleast_1d(np.asarray(energy_kev, dtype=float))
    mu = np.zeros_like(e)
    for el, w in composition.items():
        z = atomic_number(el)
        mu += w * np.array([element_total(z, float(x)) for x in e])
    return mu


def photo_absorption(composition: dict[str, float], energy_kev: float | np.ndarray) -> np.ndarray:
    """Photo-electric mass absorption coefficient τ/ρ (cm²/g) — what a detector converts."""
    e = np.atleast_1d(np.asarray(energy_kev, dtype=float))
    mu = np.zeros_like(e)
    for el, w in composition.items():
        z = atomic_number(el)
        mu += w * np.array([element_photo(z, float(x)) for x in e])
    return mu


def transmission(
    composition: dict[str, float],
    density: float,
    thickness_cm: float,
    energy_kev: float | np.ndarray,
    funny: float = 1.0,
) -> np.ndarray:
    """exp(-μ ρ d): fraction transmitted by a filter (PyMca's 'funny factor' scales it)."""
    return np.exp(-mass_attenuation(composition, energy_kev) * density * thickness_cm * funny)


def compton_energy(energy_kev: float, angle_deg: float) -> float:
    """Energy of photons Compton-scattered by a free electron through `angle_deg`."""
    return float(xrl.ComptonEnergy(energy_kev, math.radians(angle_deg)))


# --- detector escape peaks -----------------------------------------------------------------


def escape_lines(detector: str, energy_kev: float) -> list[tuple[float, float]]:
    """(escape energy offset keV, probability) of the detector's K fluorescence escaping.

    Normal-incidence thick-detector approximation (Reed & Ware): a fraction
    ½ ω_K (1 − 1/J_K) of the absorbed photons create K fluorescence, of which
    ½[1 − (μ_f/μ_i) ln(1 + μ_i/μ_f)] leaves through the front face.
    """
    z = atomic_number(detector)
    edge = xrl.EdgeEnergy(z, xrl.K_SHELL)
    if energy_kev <= edge:
        return []
    comp = {detector: 1.0}
    mu_i = float(mass_attenuation(comp, energy_kev)[0])
    jump = xrl.JumpFactor(z, xrl.K_SHELL)
    photo_k = (1.0 - 1.0 / jump) * float(photo_absorption(comp, energy_kev)[0]) / mu_i
    omega = xrl.FluorYield(z, xrl.K_SHELL)
    out = []
    for line in group_lines(detector, "K"):
        mu_f = float(mass_attenuation(comp, line.energy)[0])
        geom = 0.5 * (1.0 - (mu_f / mu_i) * math.log(1.0 + mu_i / mu_f))
        out.append((line.energy, omega * photo_k * line.rate * geom))
    return out
