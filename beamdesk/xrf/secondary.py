"""Secondary fluorescence (inter-element enhancement) in a homogeneous sample layer.

Primary photons (E₀) absorbed at mass depth z make element j emit line m (energy E_m),
isotropically. Those photons can ionise shell S of element i at depth z′, which then emits
line l towards the detector. For a layer of mass thickness T = ρd, incidence angle ψ₁ and
take-off angle ψ₂ (μ in cm²/g, z in g/cm², per unit incident flux and per 1/sin ψ₁ as the
primary term), the standard result (Shiraiwa & Fujino 1966; de Boer 1990) is

    I_sec(l) = ½ C_i ω_S R_l Σ_{j,m} C_j Y_jm(E₀) τ_iS(E_m) · J(p, q_l, s_m, T)
    J = ∫₀ᵀ dz ∫₀ᵀ dz′ e^{−p z} E₁(s_m |z − z′|) e^{−q_l z′}

with p = μ(E₀)/sin ψ₁, q_l = μ(E_l)/sin ψ₂, s_m = μ(E_m), Y_jm(E₀) = τ_j(E₀)-vacancies × ω ×
rate of line m, and E₁ the exponential integral: ½E₁(s|Δz|)·s is the probability density
that an isotropic photon emitted at z is absorbed at z′ (integral over the emission polar
angle). The primary term is I_prim(l) = C_i ω_S R_l τ_iS(E₀) (1 − e^{−(p+q_l)T})/(p+q_l).

J is evaluated by writing E₁(x) = ∫₁^∞ e^{−xu}/u du: for fixed u the depth integrals are
elementary (K below), and the remaining integral over ln(1/u) = ln cos θ is smooth and done
by composite Gauss–Legendre quadrature. For T → ∞ this reproduces the closed form
J = [ln(1 + p/s)/p + ln(1 + q/s)/q]/(p + q).

Vacancies include Coster–Kronig transfers (xraylib), so the enhancement of a line is computed
per initial shell: (I_prim + I_sec [+ I_ter])/I_prim.

Tertiary excitation (E₀ → line m of j → line n of k → line l of i) adds

    I_ter(l) = ¼ C_i ω_S R_l Σ_{m,n} y_m Y′_kn(E_m) τ_iS(E_n) ∫₀ᵀ A(p, s_m, z′) A(q_l, s_n, z′) dz′

with y_m = C_j Y_jm(E₀), Y′_kn(E_m) = C_k × vacancies(E_m) × ω × rate of line n, and
A(a, s, z′) = ∫₀ᵀ e^{−az} E₁(s|z − z′|) dz (elementary for each angle, then the same
quadrature as J). The outer depth integral uses Gauss–Legendre panels on a geometric grid.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from beamdesk.xrf import physics

_SHELL = re.compile(r"^(K|L[123]|M[1-5])")

# quadrature over y = ln(cos θ) ∈ [Y_MIN, 0]: below, the integrand is < e^{Y_MIN} of its peak
_Y_MIN = -30.0
_PANELS = 15
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(16)


def _y_grid() -> tuple[np.ndarray, np.ndarray]:
    edges = np.linspace(_Y_MIN, 0.0, _PANELS + 1)
    ys, ws = [], []
    for a, b in itertools.pairwise(edges):
        ys.append(0.5 * (b - a) * _NODES + 0.5 * (a + b))
        ws.append(0.5 * (b - a) * _WEIGHTS)
    return np.concatenate(ys), np.concatenate(ws)


_Y, _W = _y_grid()


def _slab(x: np.ndarray, t: float) -> np.ndarray:
    """L(x) = ∫₀ᵀ e^{−xz} dz = (1 − e^{−xT})/x (x > 0; T may be inf)."""
    if math.isinf(t):
        return 1.0 / x
    return -np.expm1(-x * t) / x


def _separate(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """b nudged away from a when they (almost) coincide: divided differences stay finite."""
    close = np.abs(b - a) <= 1e-7 * np.maximum(np.abs(a), np.abs(b))
    return np.where(close, a * (1.0 + 1e-6) + 1e-12, b)


def _kernel(p: float, q: np.ndarray, k: np.ndarray, t: float) -> np.ndarray:
    """K = ∫₀ᵀ∫₀ᵀ e^{−pz − qz′ − k|z − z′|} dz dz′ (all arguments > 0)."""
    k1 = _separate(q, k)
    lpq = _slab(p + q, t)
    term1 = (lpq - _slab(p + k1, t)) / (k1 - q)  # z′ < z
    if math.isinf(t):
        tail = np.zeros_like(k)
    else:
        k2 = _separate(np.full_like(k, p), k)
        # e^{−(q+k)T}·L(p − k), written so that nothing overflows for k > p
        tail = (np.exp(-(q + k2) * t) - np.exp(-(p + q) * t)) / (p - k2)
    term2 = (lpq - tail) / (q + k)  # z′ > z
    return term1 + term2


def depth_integral(
    p: float, q: np.ndarray | float, s: float, mass_thickness: float = math.inf
) -> np.ndarray:
    """J(p, q, s, T) = ∫₀ᵀ∫₀ᵀ e^{−pz} E₁(s|z − z′|) e^{−qz′} dz dz′ (g²/cm⁴ · cm²/g …)."""
    q = np.atleast_1d(np.asarray(q, dtype=float))
    # E₁(s|Δ|) = ∫₁^∞ e^{−s|Δ|u}/u du, u = e^{−y}: du/u = −dy
    k = s * np.exp(-_Y)  # (nodes,)
    vals = _kernel(p, q[:, None], k[None, :], mass_thickness)
    return vals @ _W


@dataclass(frozen=True)
class Layer:
    """A homogeneous sample layer seen by the beam at ψ₁ and the detector at ψ₂."""

    composition: tuple[tuple[str, float], ...]
    mass_thickness: float  # ρ·d (g/cm²)
    sin_in: float
    sin_out: float
    excitation: float  # keV

    def mu(self, energy: float | np.ndarray) -> np.ndarray:
        return physics.mass_attenuation(dict(self.composition), energy)


@lru_cache(maxsize=256)
def _exciting_lines(layer: Layer) -> tuple[tuple[float, float], ...]:
    """(E_m, Σ C_j Y_jm(E₀)) of every line of every element of the layer, merged < 10 eV."""
    lines: list[physics.Line] = []
    for el, c in layer.composition:
        for group in ("K", "L", "M"):
            for line in physics.raw_lines(el, group, layer.excitation):
                lines.append(physics.Line(line.name, line.energy, c * line.rate))
    merged = physics.merge_lines(lines)
    if not merged:
        return ()
    top = max(x.rate for x in merged)
    return tuple((x.energy, x.rate) for x in merged if x.rate > 1e-6 * top)


@lru_cache(maxsize=4096)
def _vacancies(element: str, energy: float) -> dict[str, float]:
    return physics.shell_vacancies(element, energy)


def line_shell(name: str) -> str:
    """Initial shell of an IUPAC line name such as 'KL3' or 'L3M5'."""
    m = _SHELL.match(name)
    if not m:
        raise physics.PhysicsError(f"cannot tell the initial shell of line {name!r}")
    return m.group(1)


def depth_profile(
    a: float, s: float, z: np.ndarray, mass_thickness: float = math.inf
) -> np.ndarray:
    """A(a, s, z′) = ∫₀ᵀ e^{−az} E₁(s|z − z′|) dz at depths z′ (g/cm²)."""
    k = s * np.exp(-_Y)[None, :]
    zz = np.asarray(z, dtype=float)[:, None]
    k1 = _separate(np.full_like(k, a), k)
    below = (np.exp(-a * zz) - np.exp(-k1 * zz)) / (k1 - a)  # z < z′
    if math.isinf(mass_thickness):
        above = np.exp(-a * zz) / (a + k)
    else:
        above = (np.exp(-a * zz) - np.exp(-a * mass_thickness - k * (mass_thickness - zz))) / (
            a + k
        )
    return (below + above) @ _W


def _depth_grid(length: float, panels: int = 24, nodes: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes/weights on [0, length], panels growing geometrically from 0."""
    edges = np.r_[0.0, np.geomspace(length * 1e-6, length, panels)]
    x, w = np.polynomial.legendre.leggauss(nodes)
    zs, ws = [], []
    for lo, hi in itertools.pairwise(edges):
        zs.append(0.5 * (hi - lo) * x + 0.5 * (hi + lo))
        ws.append(0.5 * (hi - lo) * w)
    return np.concatenate(zs), np.concatenate(ws)


@lru_cache(maxsize=64)
def _tertiary_sources(
    layer: Layer,
) -> tuple[np.ndarray, np.ndarray, tuple[tuple[float, np.ndarray], ...]]:
    """Depth grid and, per secondary line n (energy E_n), its emission density at depth z′.

    src_n(z′) = ½ Σ_m y_m Y′_kn(E_m) A(p, s_m, z′): photons of line n per unit depth.
    """
    p = float(layer.mu(layer.excitation)[0]) / layer.sin_in
    exciting = _exciting_lines(layer)
    mus = [float(layer.mu(e)[0]) for e, _ in exciting]
    reach = min([p, *mus]) if mus else p
    length = min(layer.mass_thickness, 40.0 / reach)
    z, w = _depth_grid(length)
    lines: list[physics.Line] = []
    profiles: list[np.ndarray] = []
    for (e_m, y_m), s_m in zip(exciting, mus, strict=True):
        prof = None
        for el, c in layer.composition:
            for group in ("K", "L", "M"):
                for line in physics.raw_lines(el, group, round(e_m, 6)):
                    if prof is None:
                        prof = 0.5 * y_m * depth_profile(p, s_m, z, layer.mass_thickness)
                    lines.append(physics.Line(line.name, line.energy, c * line.rate))
                    profiles.append(line.rate * c * prof)
    if not lines:
        return z, w, ()
    # merge secondary lines within 10 eV (their profiles add)
    order = np.argsort([x.energy for x in lines])
    merged: list[tuple[float, np.ndarray]] = []
    for i in order:
        e = lines[i].energy
        if merged and e - merged[-1][0] < physics.MERGE_TOLERANCE_KEV:
            merged[-1] = (merged[-1][0], merged[-1][1] + profiles[i])
        else:
            merged.append((e, profiles[i].copy()))
    top = max(float(np.max(pr)) for _, pr in merged)
    return z, w, tuple((e, pr) for e, pr in merged if float(np.max(pr)) > 1e-6 * top)


def tertiary(layer: Layer, element: str, shell: str, e_line: np.ndarray) -> np.ndarray:
    """I_ter/(C_i ω_S R_l) per line: see the module docstring."""
    edge = physics.edge_energy(element, shell)
    z, w, sources = _tertiary_sources(layer)
    out = np.zeros_like(e_line)
    if not sources:
        return out
    q = layer.mu(e_line) / layer.sin_out
    for e_n, src in sources:
        if e_n <= edge:
            continue
        vac = _vacancies(element, round(e_n, 6)).get(shell, 0.0)
        if vac <= 0:
            continue
        s_n = float(layer.mu(e_n)[0])
        for i, qi in enumerate(q):
            out[i] += (
                0.5 * vac * float(np.sum(w * src * depth_profile(qi, s_n, z, layer.mass_thickness)))
            )
    return out


def enhancement(
    layer: Layer, element: str, shell: str, energies: np.ndarray | list[float], order: int = 1
) -> np.ndarray:
    """(primary + secondary)/primary for lines of `element` from `shell` at `energies` (keV).

    `order` 2 adds tertiary excitation.

    The ratio does not depend on C_i, the fluorescence yield or the radiative rate, only on the
    vacancies created in the shell by E₀ versus by the matrix lines, and on the geometry.
    """
    e_line = np.atleast_1d(np.asarray(energies, dtype=float))
    primary_vac = _vacancies(element, layer.excitation).get(shell, 0.0)
    if primary_vac <= 0:
        return np.ones_like(e_line)
    edge = physics.edge_energy(element, shell)
    p = float(layer.mu(layer.excitation)[0]) / layer.sin_in
    q = layer.mu(e_line) / layer.sin_out
    primary = _slab(p + q, layer.mass_thickness)
    secondary = np.zeros_like(e_line)
    for e_m, y_m in _exciting_lines(layer):
        if e_m <= edge:  # cannot ionise this shell (nor, via Coster–Kronig, feed it)
            continue
        # vacancies in `shell` per unit flux at E_m: Kissel subshell σ + Coster–Kronig
        vac = _vacancies(element, round(e_m, 6)).get(shell, 0.0)
        if vac <= 0:
            continue
        s = float(layer.mu(e_m)[0])
        secondary += 0.5 * y_m * vac * depth_integral(p, q, s, layer.mass_thickness)
    if order >= 2:
        secondary += tertiary(layer, element, shell, e_line)
    return 1.0 + secondary / (primary_vac * primary)
