"""The spectrum model: calibration, resolution, peak shapes and the per-group basis.

A spectrum is modelled as  background + Σ_g A_g · B_g(θ)  where A_g is the area of line group g
(its non-escape Gaussian area in counts, PyMca's convention) and B_g the group's response
to unit area: its lines with fixed relative rates, each a Gaussian or Hypermet peak, plus the
detector escape peaks. θ are the few nonlinear parameters (calibration, noise, Fano, tails).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np
from scipy.special import erfc

from beamdesk.xrf import physics, secondary
from beamdesk.xrf.config import Layer, XRFConfig, material_composition

SQRT2 = math.sqrt(2.0)
SQRT2PI = math.sqrt(2.0 * math.pi)
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548


@dataclass(frozen=True)
class Params:
    """Nonlinear model parameters (energies keV, noise as FWHM keV)."""

    zero: float
    gain: float
    quad: float = 0.0
    noise: float = 0.1
    fano: float = 0.114
    st_area: float = 0.05
    st_slope: float = 0.5
    lt_area: float = 0.02
    lt_slope: float = 10.0
    step: float = 1e-4
    compton_width: float = 0.05  # extra FWHM (keV) of the Compton peak (Doppler broadening)

    def vector(self, names: tuple[str, ...]) -> np.ndarray:
        return np.array([getattr(self, n) for n in names], dtype=float)

    def with_vector(self, names: tuple[str, ...], values: np.ndarray) -> Params:
        return replace(self, **{n: float(v) for n, v in zip(names, values, strict=True)})


PARAM_NAMES = tuple(f.name for f in fields(Params))


def params_from_config(cfg: XRFConfig) -> Params:
    d, s = cfg.detector, cfg.peakshape
    return Params(
        d.zero,
        d.gain,
        d.quad,
        d.noise,
        d.fano,
        s.st_arearatio,
        s.st_sloperatio,
        s.lt_arearatio,
        s.lt_sloperatio,
        s.step_heightratio,
    )


def energy_axis(channels: np.ndarray, p: Params) -> np.ndarray:
    return p.zero + p.gain * channels + p.quad * channels**2


def fwhm(energy: np.ndarray | float, p: Params, detector: str = "Si") -> np.ndarray:
    """FWHM² = noise² + 2.3548²·ε·F·E (keV)."""
    eps = physics.PAIR_ENERGY_KEV.get(detector, physics.PAIR_ENERGY_KEV["Si"])
    e = np.clip(np.asarray(energy, dtype=float), 0.0, None)
    return np.sqrt(p.noise**2 + FWHM_PER_SIGMA**2 * eps * p.fano * e)


def hypermet(
    e: np.ndarray,
    e0: np.ndarray,
    sigma: np.ndarray,
    p: Params,
    *,
    short_tail: bool,
    long_tail: bool,
    step: bool,
) -> np.ndarray:
    """Peak profiles per keV for unit Gaussian area; arrays broadcast (channels × peaks).

    Tails are exponentials convolved with the Gaussian (slopes in units of σ) carrying
    `st_area`/`lt_area` times the Gaussian area; the step is an erfc shelf of relative height
    `step` (incomplete charge collection). Tails add to the Gaussian area, as in PyMca.
    """
    x = e - e0
    out = np.exp(-0.5 * (x / sigma) ** 2) / (SQRT2PI * sigma)
    for on, ratio, slope in (
        (short_tail, p.st_area, p.st_slope),
        (long_tail, p.lt_area, p.lt_slope),
    ):
        if on and ratio > 0:
            beta = max(slope, 1e-3) * sigma
            arg = x / beta + 0.5 * (sigma / beta) ** 2
            # exp(arg)·erfc(z) overflows far left; clip the exponent — erfc is ~0 there anyway
            tail = np.exp(np.minimum(arg, 700.0)) * erfc(
                x / (SQRT2 * sigma) + sigma / (SQRT2 * beta)
            )
            out = out + ratio * tail / (2.0 * beta)
    if step and p.step > 0:
        out = out + p.step * 0.5 * erfc(x / (SQRT2 * sigma)) / (SQRT2PI * sigma)
    return out


@dataclass
class PeakGroup:
    """A fitted component: its lines (keV) and relative rates, normalised to sum 1."""

    name: str
    element: str | None
    energies: np.ndarray
    rates: np.ndarray
    kind: str = "fluorescence"  # fluorescence | rayleigh | compton


# --- rate corrections ------------------------------------------------------------------------


def _layer_transmission(cfg: XRFConfig, layer: Layer, energies: np.ndarray) -> np.ndarray:
    comp = material_composition(cfg, layer.material)
    return physics.transmission(comp, layer.density, layer.thickness, energies, layer.funny)


def detector_efficiency(cfg: XRFConfig, energies: np.ndarray) -> np.ndarray:
    """Filters between sample and detector × absorption in the detector crystal."""
    eff = np.ones_like(np.asarray(energies, dtype=float))
    for layer in cfg.filters:
        eff *= _layer_transmission(cfg, layer, energies)
    if cfg.detector_layer is not None:
        eff *= 1.0 - _layer_transmission(cfg, cfg.detector_layer, energies)
    return eff


def matrix_factor(cfg: XRFConfig, energies: np.ndarray, excitation: float | None) -> np.ndarray:
    """Self-absorption of a homogeneous single-layer sample (primary excitation only):

    (1 − exp(−χρd))/χ with χ = μ(E0)/sin α_in + μ(E)/sin α_out. Multilayers use the top layer.
    """
    if not cfg.matrix or not excitation:
        return np.ones_like(np.asarray(energies, dtype=float))
    layer = cfg.matrix[0]
    comp = material_composition(cfg, layer.material)
    sin_in = math.sin(math.radians(cfg.geometry.alpha_in))
    sin_out = math.sin(math.radians(cfg.geometry.alpha_out))
    chi = (
        physics.mass_attenuation(comp, excitation)[0] / sin_in
        + physics.mass_attenuation(comp, energies) / sin_out
    )
    rho_d = layer.density * layer.thickness
    return -np.expm1(-chi * rho_d) / chi


def sample_layer(cfg: XRFConfig) -> secondary.Layer | None:
    """The (top) matrix layer as seen by the secondary-fluorescence model, if one is set."""
    e0 = cfg.excitation_energy
    if not cfg.matrix or not e0:
        return None
    layer = cfg.matrix[0]
    comp = material_composition(cfg, layer.material)
    return secondary.Layer(
        tuple(sorted(comp.items())),
        layer.density * layer.thickness,
        math.sin(math.radians(cfg.geometry.alpha_in)),
        math.sin(math.radians(cfg.geometry.alpha_out)),
        float(e0),
    )


def secondary_factor(
    cfg: XRFConfig, element: str, lines: list[physics.Line] | tuple[physics.Line, ...]
) -> np.ndarray:
    """Higher-order enhancement per line: ``concentrations.secondary`` 1 adds secondary,
    2 also tertiary fluorescence (PyMca's usemultilayersecondary); 0 gives 1."""
    ones = np.ones(len(lines))
    layer = sample_layer(cfg) if cfg.concentrations.secondary > 0 else None
    if layer is None:
        return ones
    out = ones.copy()
    shells = [secondary.line_shell(x.name) for x in lines]
    for shell in set(shells):
        idx = [i for i, s in enumerate(shells) if s == shell]
        out[idx] = secondary.enhancement(
            layer,
            element,
            shell,
            np.array([lines[i].energy for i in idx]),
            order=min(cfg.concentrations.secondary, 2),
        )
    return out


def build_groups(cfg: XRFConfig, *, corrections: bool = True) -> list[PeakGroup]:
    """Fluorescence groups from `cfg.peaks` plus Rayleigh/Compton peaks when enabled.

    Rates are xraylib's (vacancy distribution at the beam energy, Coster–Kronig, yields,
    branching ratios) multiplied by filter transmission, detector efficiency and matrix
    self-absorption, then renormalised so a group's area is what is seen in the spectrum.
    """
    excitation = cfg.excitation_energy
    groups = []
    for element, names in cfg.peaks.items():
        for g in names:
            lines = physics.group_lines(element, g, excitation)
            if not lines:
                continue
            e = np.array([x.energy for x in lines])
            r = np.array([x.rate for x in lines])
            if corrections:
                r = (
                    r
                    * detector_efficiency(cfg, e)
                    * matrix_factor(cfg, e, excitation)
                    * secondary_factor(cfg, element, lines)
                )
            if r.sum() <= 0:
                raise physics.PhysicsError(f"{element} {g}: all lines absorbed by the filters")
            groups.append(PeakGroup(f"{element} {g}", element, e, r / r.sum()))
    if cfg.fit.scatter:
        angle = cfg.geometry.scattering_angle or (cfg.geometry.alpha_in + cfg.geometry.alpha_out)
        for i, b in enumerate(cfg.fit.beam):
            if not b.scatter:
                continue
            groups.append(
                PeakGroup(
                    f"Scatter Peak{i:03d}", None, np.array([b.energy]), np.array([1.0]), "rayleigh"
                )
            )
            groups.append(
                PeakGroup(
                    f"Scatter Compton{i:03d}",
                    None,
                    np.array([physics.compton_energy(b.energy, angle)]),
                    np.array([1.0]),
                    "compton",
                )
            )
    return groups


# --- the model -----------------------------------------------------------------------------


class SpectrumModel:
    """Evaluates the per-group basis B(θ) (channels × groups) on a channel grid."""

    def __init__(self, cfg: XRFConfig, channels: np.ndarray, groups: list[PeakGroup] | None = None):
        self.cfg = cfg
        self.channels = np.asarray(channels, dtype=float)
        self.groups = build_groups(cfg) if groups is None else groups
        self.names = [g.name for g in self.groups]
        self.detector = cfg.detector.material
        shape = cfg.peakshape
        self.tails = {
            "short_tail": shape.short_tail,
            "long_tail": shape.long_tail,
            "step": shape.step,
        }
        # Flatten all lines: energy, weight, owning group, whether it is an escape peak.
        energies, weights, owner, escape, compton = [], [], [], [], []
        for gi, g in enumerate(self.groups):
            for e, r in zip(g.energies, g.rates, strict=True):
                energies.append(e)
                weights.append(r)
                owner.append(gi)
                escape.append(False)
                compton.append(g.kind == "compton")
                if cfg.fit.escape:
                    for de, prob in physics.escape_lines(self.detector, float(e)):
                        if e - de > 0.2 and prob * r > 1e-5:
                            energies.append(e - de)
                            weights.append(r * prob)
                            owner.append(gi)
                            escape.append(True)
                            compton.append(False)
        self.line_energy = np.array(energies, dtype=float)
        self.line_weight = np.array(weights, dtype=float)
        self.line_owner = np.array(owner, dtype=int)
        self.line_escape = np.array(escape, dtype=bool)
        self.line_compton = np.array(compton, dtype=bool)
        # lines × groups mixing matrix: the basis is (profiles @ mixing)
        self.mixing = np.zeros((len(energies), len(self.groups)))
        self.mixing[np.arange(len(energies)), self.line_owner] = self.line_weight

    def energy(self, p: Params) -> np.ndarray:
        return energy_axis(self.channels, p)

    def basis(self, p: Params) -> np.ndarray:
        """Counts per channel for unit area of each group (channels × groups)."""
        if not len(self.groups):
            return np.zeros((self.channels.size, 0))
        e = self.energy(p)[:, None]
        de_dch = np.abs(p.gain + 2.0 * p.quad * self.channels)[:, None]
        width = fwhm(self.line_energy, p, self.detector)
        width = np.where(self.line_compton, np.hypot(width, p.compton_width), width)
        sigma = width / FWHM_PER_SIGMA
        # escape peaks have no tails (their shape is dominated by the parent Gaussian)
        profiles = np.empty((self.channels.size, self.line_energy.size))
        main = ~self.line_escape
        profiles[:, main] = hypermet(e, self.line_energy[main], sigma[main], p, **self.tails)
        profiles[:, ~main] = hypermet(
            e,
            self.line_energy[~main],
            sigma[~main],
            p,
            short_tail=False,
            long_tail=False,
            step=False,
        )
        return (profiles * de_dch) @ self.mixing

    def group_area_factor(self, p: Params) -> np.ndarray:
        """Reported area per unit parameter: 1 + short-tail ratio when tails are on (PyMca)."""
        f = 1.0 + (p.st_area if self.tails["short_tail"] else 0.0)
        return np.full(len(self.groups), f)


def pileup_column(net: np.ndarray, channels: np.ndarray, p: Params) -> np.ndarray:
    """Shape of random summing: the self-convolution of the net spectrum in energy.

    Two photons E1 + E2 land at channel c1 + c2 + zero/gain; built from the measured net counts
    (so it is linear in the fit) and normalised to unit sum.
    """
    y = np.clip(net, 0.0, None)
    conv = np.convolve(y, y)
    first = channels[0]
    shift = p.zero / p.gain
    # conv[k] corresponds to channel 2*first + k; place at target channels by interpolation
    pos = 2 * first + np.arange(conv.size) + shift
    col = np.interp(channels, pos, conv, left=0.0, right=0.0)
    total = col.sum()
    return col / total if total > 0 else col


def continuum_columns(channels: np.ndarray, order: int) -> np.ndarray:
    """Legendre polynomials over the fit range: a smooth continuum fitted linearly."""
    x = np.linspace(-1.0, 1.0, channels.size)
    return np.polynomial.legendre.legvander(x, order) if order > 0 else np.zeros((x.size, 0))
