"""Mass fractions by fundamental parameters (primary excitation) or by an internal standard.

For a group g of element i in a homogeneous layer (density ρ, thickness d) the expected area is

    A_g = Φ·t·(Ω/4π)·T_beam(E0)/sin α_in · C_i · Σ_l Y_l(E0)·ε(E_l)·(1 − e^{−χ_l ρ d})/χ_l

with Y_l = τ_shell(E0)·ω·rate (xraylib, Coster–Kronig included), ε the detector efficiency
(filters × crystal absorption), χ_l = μ(E0)/sin α_in + μ(E_l)/sin α_out for the configured
matrix, Ω = area/distance². With ``[concentrations] secondary = 1`` (PyMca's
``usemultilayersecondary``) each line's term is multiplied by its secondary-fluorescence
enhancement (see ``secondary.py``), computed with the configured matrix composition.

With an internal standard (``[concentrations] reference = Fe``) the instrumental constant
Φ·t·Ω cancels: C_i = C_ref · (A_g/S_g) / (A_ref/S_ref), with C_ref taken from the matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from beamdesk.errors import Invalid
from beamdesk.xrf import physics
from beamdesk.xrf.config import XRFConfig, material_composition
from beamdesk.xrf.model import detector_efficiency, matrix_factor, secondary_factor

if TYPE_CHECKING:
    from beamdesk.xrf.fit import FitResult


class QuantError(Invalid, ValueError):
    """Quantification impossible with this configuration (no beam energy, no standard …)."""


@dataclass
class QuantFactors:
    """Mass fraction per unit group area, and the internal standard if any."""

    factors: dict[str, float]  # group → mass fraction per count (FP scale)
    sensitivity: dict[str, float] = field(default_factory=dict)  # S_g (counts per unit C)
    reference: str | None = None  # internal-standard group
    reference_fraction: float = 0.0


def _groups(cfg: XRFConfig) -> list[tuple[str, str, str]]:
    return [(f"{el} {g}", el, g) for el, gs in cfg.peaks.items() for g in gs]


def group_sensitivity(cfg: XRFConfig, element: str, group: str) -> float:
    """Σ_l Y_l ε(E_l) M(E_l): expected counts per unit mass fraction and unit instrument."""
    e0 = cfg.excitation_energy
    if not e0:
        raise QuantError("no excitation energy in the configuration ([fit] energy)")
    lines = physics.raw_lines(element, group, e0)
    if not lines:
        return 0.0
    energies = np.array([x.energy for x in lines])
    yields = np.array([x.rate for x in lines])
    eff = detector_efficiency(cfg, energies) if cfg.concentrations.use_attenuators else 1.0
    # without a matrix: a thin sample, counts per unit mass thickness
    m = matrix_factor(cfg, energies, e0) if cfg.matrix else np.ones_like(energies)
    m = m * secondary_factor(cfg, element, lines)
    return float(np.sum(yields * eff * m))


def instrument_constant(cfg: XRFConfig) -> float:
    """Φ·t·Ω/(4π)·T_beam(E0)/sin α_in."""
    c = cfg.concentrations
    e0 = cfg.excitation_energy or 0.0
    omega = c.area / c.distance**2 if c.distance > 0 else 0.0
    t_beam = 1.0
    for layer in cfg.beam_filters:
        comp = material_composition(cfg, layer.material)
        t_beam *= float(
            physics.transmission(comp, layer.density, layer.thickness, e0, layer.funny)[0]
        )
    sin_in = math.sin(math.radians(cfg.geometry.alpha_in)) if cfg.matrix else 1.0
    return c.flux * c.time * omega / (4 * math.pi) * t_beam / sin_in


def reference_group(cfg: XRFConfig) -> str | None:
    ref = (cfg.concentrations.reference or "Auto").strip()
    if ref.lower() in ("auto", "", "none"):
        return None
    names = [n for n, el, _ in _groups(cfg) if el == ref]
    if not names:
        raise QuantError(f"internal standard {ref} has no fitted line group")
    for preferred in ("K", "Ka", "L", "L3", "M"):
        if f"{ref} {preferred}" in names:
            return f"{ref} {preferred}"
    return names[0]


def reference_fraction(cfg: XRFConfig, element: str) -> float:
    """Mass fraction of the standard in the (top) matrix layer."""
    if not cfg.matrix:
        raise QuantError("an internal standard needs a matrix with the standard's content")
    comp = material_composition(cfg, cfg.matrix[0].material)
    if element not in comp:
        raise QuantError(f"internal standard {element} is not in matrix {cfg.matrix[0].material}")
    return comp[element]


def quantify_factors(cfg: XRFConfig) -> QuantFactors:
    sens = {}
    for name, el, g in _groups(cfg):
        sens[name] = group_sensitivity(cfg, el, g)
    k = instrument_constant(cfg)
    factors = {n: (1.0 / (k * s) if k > 0 and s > 0 else 0.0) for n, s in sens.items()}
    ref = reference_group(cfg)
    out = QuantFactors(factors, sens)
    if ref is not None:
        out.reference = ref
        out.reference_fraction = reference_fraction(cfg, ref.split()[0])
    return out


@dataclass
class Quantification:
    """Mass fractions per group and their 1σ uncertainties from the area uncertainties."""

    fractions: dict[str, float]
    sigmas: dict[str, float]


def quantify(
    areas: dict[str, float],
    cfg: XRFConfig,
    sigmas: dict[str, float] | None = None,
    covariance: dict[tuple[str, str], float] | None = None,
) -> Quantification:
    """Mass fractions and their uncertainties (first-order propagation of the area errors).

    Fundamental parameters: σ_C = f·σ_A. Internal standard r: C_i = C_r·(A_i/S_i)/(A_r/S_r),
    so (σ_C/C)² = (σ_i/A_i)² + (σ_r/A_r)² − 2·cov(A_i, A_r)/(A_i·A_r), written with
    derivatives so that it stays finite for areas near zero; the standard itself has σ = 0
    (its fraction is given). `covariance` maps (group, group) to the area covariance; without
    it the areas are taken as independent. Physics constants carry no uncertainty here.
    """
    fractions = mass_fractions(areas, cfg)
    sig = sigmas or {}
    cov = covariance or {}
    q = quantify_factors(cfg)
    out: dict[str, float] = {}
    if q.reference is None:
        for name, f in q.factors.items():
            if name in fractions:
                out[name] = abs(f) * sig.get(name, 0.0)
        return Quantification(fractions, out)
    ref = q.reference
    a_ref = areas[ref]
    s_ref = sig.get(ref, 0.0)
    for name, c in fractions.items():
        if name == ref:
            out[name] = 0.0
            continue
        d_own = q.reference_fraction * q.sensitivity[ref] / (q.sensitivity[name] * a_ref)
        d_ref = -c / a_ref
        s_own = sig.get(name, 0.0)
        c_or = cov.get((name, ref), cov.get((ref, name), 0.0))
        var = (d_own * s_own) ** 2 + (d_ref * s_ref) ** 2 + 2.0 * d_own * d_ref * c_or
        out[name] = math.sqrt(max(var, 0.0))
    return Quantification(fractions, out)


def covariance_pairs(names: list[str], matrix: np.ndarray | None) -> dict[tuple[str, str], float]:
    """A covariance matrix (rows/columns in `names` order) as a {(a, b): cov} mapping."""
    if matrix is None:
        return {}
    return {(a, b): float(matrix[i, j]) for i, a in enumerate(names) for j, b in enumerate(names)}


def mass_fractions(areas: dict[str, float], cfg: XRFConfig) -> dict[str, float]:
    """Mass fraction per fitted group (from group areas in counts)."""
    q = quantify_factors(cfg)
    out = {}
    if q.reference is not None:
        ref_area = areas.get(q.reference, 0.0)
        if ref_area <= 0:
            raise QuantError(f"internal standard group {q.reference} has no counts")
        per_c = ref_area / (q.reference_fraction * q.sensitivity[q.reference])
        for name, s in q.sensitivity.items():
            if name in areas and s > 0:
                out[name] = areas[name] / (per_c * s)
        return out
    for name, f in q.factors.items():
        if name in areas:
            out[name] = areas[name] * f
    return out


def fit_and_quantify(counts: np.ndarray, cfg: XRFConfig) -> tuple[FitResult, dict[str, Any]]:
    """Fit ``counts`` and, where the configuration allows, turn the group areas into mass
    fractions (``result.mass_fractions`` and their σ). The second value says how, as the
    command line, the workbench and the JSON outputs report it: ``method`` (``"internal
    standard"``, ``"fundamental parameters"`` or None), ``reference``, ``secondary`` and, when
    there are no mass fractions, ``message`` with the reason."""
    from beamdesk.xrf.fit import fit_spectrum

    result = fit_spectrum(counts, cfg)
    how: dict[str, Any] = {
        "method": None,
        "reference": None,
        "secondary": min(cfg.concentrations.secondary, 2),
    }
    try:
        q = quantify(
            {k: v.area for k, v in result.groups.items()},
            cfg,
            {k: v.sigma for k, v in result.groups.items()},
            covariance_pairs(list(result.groups), result.area_covariance),
        )
        ref = reference_group(cfg)
    except QuantError as exc:
        how["message"] = str(exc)
        return result, how
    result.mass_fractions, result.mass_fraction_sigmas = q.fractions, q.sigmas
    how.update(method="internal standard" if ref else "fundamental parameters", reference=ref)
    return result, how
