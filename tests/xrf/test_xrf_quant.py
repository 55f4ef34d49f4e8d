"""Mass fractions: certificate / PyMca test values for Steel, 500 ppm standard for XRFSpectrum,
secondary fluorescence against an independent double integral, uncertainty pulls."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import xraylib
from scipy import integrate
from scipy.special import exp1
from xrf_synth import DATA, ELEMENTS, expected_spectrum

from beamdesk.xrf.config import Layer, MaterialDef, load_config
from beamdesk.xrf.fit import FitResult, fit_spectrum
from beamdesk.xrf.model import Params
from beamdesk.xrf.quant import QuantError, covariance_pairs, mass_fractions, quantify
from beamdesk.xrf.readers import read_spectrum
from beamdesk.xrf.secondary import Layer as SampleLayer
from beamdesk.xrf.secondary import depth_profile, enhancement

# SRM 1155 certificate (mass fractions)
CERT = {"Cr K": 0.1837, "Mn K": 0.01619, "Ni K": 0.1235}


@pytest.fixture(scope="module")
def steel() -> tuple[dict[str, float], FitResult]:
    """Steel.spe fitted once with Steel.cfg as shipped (primary excitation in the rates)."""
    cfg = load_config(DATA / "Steel.cfg")
    r = fit_spectrum(read_spectrum(DATA / "Steel.spe").counts, cfg)
    return {k: v.area for k, v in r.groups.items()}, r


def _steel_fractions(areas: dict[str, float], secondary: int) -> dict[str, float]:
    cfg = load_config(DATA / "Steel.cfg")
    cfg.concentrations.secondary = secondary
    return mass_fractions(areas, cfg)


def test_steel_internal_standard_primary_only(steel) -> None:
    mf = _steel_fractions(steel[0], 0)
    assert abs(mf["Fe Ka"] - 0.65) < 0.03  # PyMca's own test
    # primary excitation only overestimates Cr (Fe/Ni K radiation excites Cr in reality);
    # PyMca's test: Cr > 0.30 and the main components sum above 1
    assert mf["Cr K"] > 0.30
    assert mf["Cr K"] + mf["V K"] + mf["Mn K"] + mf["Fe Ka"] + mf["Ni K"] > 1.0
    assert 0.01619 / 1.6 < mf["Mn K"] < 0.01619 * 1.6
    assert 0.1235 / 1.6 < mf["Ni K"] < 0.1235 * 1.6


def test_steel_secondary_and_tertiary_excitation(steel) -> None:
    """PyMca's test applies tertiary excitation to the primary fit: Cr in (0.18, 0.20)."""
    secondary = _steel_fractions(steel[0], 1)
    tertiary = _steel_fractions(steel[0], 2)
    primary = _steel_fractions(steel[0], 0)
    for mf in (secondary, tertiary):
        assert abs(mf["Fe Ka"] - 0.65) < 0.03
        assert mf["Cr K"] + mf["Mn K"] + mf["Fe Ka"] + mf["Ni K"] < 1.0
    assert 0.18 < tertiary["Cr K"] < 0.20
    # each order lowers Cr (Fe and Ni K lines excite it), tertiary by far less than secondary
    assert tertiary["Cr K"] < secondary["Cr K"] < primary["Cr K"]
    assert primary["Cr K"] - secondary["Cr K"] > 5 * (secondary["Cr K"] - tertiary["Cr K"])
    # certificate: Ni within 7 %, Mn within 20 % (Mn Kβ sits under Fe Kα: its area is
    # the least certain of the majors, see docs/xrf.md)
    assert tertiary["Ni K"] == pytest.approx(CERT["Ni K"], rel=0.07)
    assert tertiary["Mn K"] == pytest.approx(CERT["Mn K"], rel=0.20)


@pytest.mark.slow
def test_steel_refit_with_tertiary_rates() -> None:
    """Fitting with higher-order rates in the model (as PyMca's test does next) keeps Cr in
    range and gives mass-fraction uncertainties."""
    cfg = load_config(DATA / "Steel.cfg")
    cfg.concentrations.secondary = 2
    r = fit_spectrum(read_spectrum(DATA / "Steel.spe").counts, cfg)
    q = quantify(
        {k: v.area for k, v in r.groups.items()},
        cfg,
        {k: v.sigma for k, v in r.groups.items()},
        covariance_pairs(list(r.groups), r.area_covariance),
    )
    assert 0.18 < q.fractions["Cr K"] < 0.20
    assert q.sigmas["Fe Ka"] == 0.0  # the standard's fraction is given
    # Cr: relative σ combines Cr's and Fe's area errors (both ~0.1 %)
    rel = q.sigmas["Cr K"] / q.fractions["Cr K"]
    assert 5e-4 < rel < 5e-3


def test_xrfspectrum_co_internal_standard() -> None:
    """Thin multi-element standard: every K element at 500 ppm like Co.

    Tolerance ±15 %: what remains after a correct fit is the physics data (fluorescence
    yields and K-shell cross sections, a few % each in the 20–30 range), the standard's own
    certified spread and the weak, overlapped groups (Ca at 3.7 keV behind 8 µm Be and air,
    Sr Kβ near the Mo scatter peaks); most elements fall within 5 %."""
    cfg = load_config(DATA / "XRFSpectrum_XrfTest.cfg")
    r = fit_spectrum(read_spectrum(DATA / "XRFSpectrum.mca").counts, cfg)
    q = quantify(
        {k: v.area for k, v in r.groups.items()},
        cfg,
        {k: v.sigma for k, v in r.groups.items()},
        covariance_pairs(list(r.groups), r.area_covariance),
    )
    mf = q.fractions
    assert mf["Co K"] == pytest.approx(500e-6)
    elements = ("Ca", "Ti", "V", "Cr", "Mn", "Fe", "Ni", "Cu", "Zn", "As", "Se", "Sr")
    for el in elements:
        assert mf[f"{el} K"] == pytest.approx(500e-6, rel=0.15), el
        assert 0 < q.sigmas[f"{el} K"] < 0.1 * mf[f"{el} K"], el
    within_5 = sum(abs(mf[f"{el} K"] / 500e-6 - 1) < 0.05 for el in elements)
    assert within_5 >= 9
    # higher orders in 100 µm of water with 500 ppm each: below 0.5 %
    cfg.concentrations.secondary = 2
    mf2 = mass_fractions({k: v.area for k, v in r.groups.items()}, cfg)
    for el in elements:
        assert mf2[f"{el} K"] == pytest.approx(mf[f"{el} K"], rel=5e-3), el


def test_fundamental_parameters_scale_with_flux(tmp_path) -> None:
    cfg = load_config(DATA / "XRFSpectrum_XrfTest.cfg")
    cfg.concentrations.reference = "Auto"
    areas = {"Fe K": 1000.0}
    a = mass_fractions(areas, cfg)["Fe K"]
    cfg.concentrations.flux *= 2
    assert mass_fractions(areas, cfg)["Fe K"] == pytest.approx(a / 2)
    cfg.concentrations.reference = "Os"
    with pytest.raises(QuantError):
        mass_fractions(areas, cfg)


def test_steel_close_to_pymca_mass_fractions(steel) -> None:
    """Same method as PyMca (primary only): within 2.5 % on the majors (remaining: attenuation
    data, xraylib vs PyMca's tables; see docs/xrf.md)."""
    ref = json.loads((Path(__file__).parent / "reference" / "pymca_steel.json").read_text())
    pymca = ref["steel"]["mass_fractions"]
    mf = _steel_fractions(steel[0], 0)
    for group in ("Cr K", "Mn K", "Ni K"):
        assert mf[group] == pytest.approx(pymca[group], rel=0.025), group
    for group in ("V K", "Cu K"):
        assert mf[group] == pytest.approx(pymca[group], rel=0.07), group
    assert mf["Fe Ka"] == pytest.approx(pymca["Fe Ka"], rel=1e-3)


def test_cr_attenuation_smooth_above_k_edge() -> None:
    """μ/ρ of Cr falls as a power law above its K edge (like its neighbours V and Mn):
    at 6.40 keV (Fe Kα) it must lie within 3 % of the log-log interpolation 6.0 → 8.0 keV."""
    from beamdesk.xrf.physics import mass_attenuation

    for el, lo, hi, mid in (("Cr", 6.0, 8.0, 6.4), ("Cr", 6.0, 8.0, 7.06), ("Mn", 6.6, 8.6, 7.06)):
        a, b, m = mass_attenuation({el: 1.0}, [lo, hi, mid])
        slope = math.log(b / a) / math.log(hi / lo)
        assert m == pytest.approx(a * (mid / lo) ** slope, rel=0.03), (el, mid)


# --- secondary fluorescence against an independent double integral ------------------------


def _mu(comp: dict[int, float], e: float) -> float:
    """μ/ρ from xraylib directly: Kissel photo-ionisation + Rayleigh + Compton."""
    return sum(
        w * (xraylib.CS_Photo_Total(z, e) + xraylib.CS_Rayl(z, e) + xraylib.CS_Compt(z, e))
        for z, w in comp.items()
    )


def _fe_k_lines() -> list[tuple[float, float]]:
    """(energy, ω_K × radiative rate) of Fe's K lines (IUPAC names only: KL3_LINE …, not the
    Siegbahn aliases KA1_LINE … which would count lines twice)."""
    out = []
    for name in dir(xraylib):
        if re.fullmatch(r"K[L-Q][1-7]_LINE", name):
            try:
                e = xraylib.LineEnergy(26, getattr(xraylib, name))
                r = xraylib.RadRate(26, getattr(xraylib, name))
            except ValueError:
                continue
            if e > 0 and r > 0:
                out.append((e, xraylib.FluorYield(26, xraylib.K_SHELL) * r))
    return out


@pytest.mark.parametrize("thickness_um", [5.0, 20.0])
def test_secondary_fe_cr_matches_direct_double_integral(thickness_um: float) -> None:
    """Cr K enhanced by Fe K in an Fe–Cr alloy foil, written out from the physics:

    sec/prim = ½ C_Fe τ_FeK(E0) Σ_m ω R_m τ_CrK(E_m) ∫∫ e^{−pz} E1(s_m|z−z′|) e^{−qz′}
               / (τ_CrK(E0) ∫ e^{−(p+q)z})
    with the double integral done by scipy's adaptive quadrature (split at z = z′)."""
    c_fe, c_cr, rho = 0.8, 0.2, 7.8
    t = rho * thickness_um * 1e-4
    e0, alpha_in, alpha_out = 12.0, 45.0, 45.0
    comp = {26: c_fe, 24: c_cr}
    e_cr = xraylib.LineEnergy(24, xraylib.KL3_LINE)
    p = _mu(comp, e0) / math.sin(math.radians(alpha_in))
    q = _mu(comp, e_cr) / math.sin(math.radians(alpha_out))
    tau_cr = lambda e: xraylib.CS_Photo_Partial(24, xraylib.K_SHELL, e)  # noqa: E731
    primary = tau_cr(e0) * (1 - math.exp(-(p + q) * t)) / (p + q)
    sec = 0.0
    for e_m, yr in _fe_k_lines():
        s = _mu(comp, e_m)

        def f(zp: float, z: float, s: float = s) -> float:
            d = abs(z - zp)
            return math.exp(-p * z - q * zp) * exp1(s * d) if d > 0 else 0.0

        lower = integrate.dblquad(f, 0, t, 0, lambda z: z, epsrel=1e-7)[0]
        upper = integrate.dblquad(f, 0, t, lambda z: z, t, epsrel=1e-7)[0]
        sec += (
            0.5
            * c_fe
            * xraylib.CS_Photo_Partial(26, xraylib.K_SHELL, e0)
            * yr
            * tau_cr(e_m)
            * (lower + upper)
        )
    expected = 1 + sec / primary
    layer = SampleLayer(
        (("Cr", c_cr), ("Fe", c_fe)),
        t,
        math.sin(math.radians(alpha_in)),
        math.sin(math.radians(alpha_out)),
        e0,
    )
    got = enhancement(layer, "Cr", "K", [e_cr])[0]
    assert got == pytest.approx(expected, rel=2e-3)
    assert 1.05 < got < 2.0  # a real effect (Cr is the minor element here)


def test_secondary_thick_limit_matches_closed_form() -> None:
    """Infinitely thick sample: J = [ln(1 + p/s)/p + ln(1 + q/s)/q]/(p + q) (literature)."""
    c_fe, c_cr, e0 = 0.7, 0.3, 15.0
    comp = {26: c_fe, 24: c_cr}
    e_cr = xraylib.LineEnergy(24, xraylib.KL3_LINE)
    p, q = _mu(comp, e0) / math.sin(math.radians(60)), _mu(comp, e_cr) / math.sin(math.radians(30))
    sec = 0.0
    for e_m, yr in _fe_k_lines():
        s = _mu(comp, e_m)
        j = (math.log1p(p / s) / p + math.log1p(q / s) / q) / (p + q)
        sec += (
            0.5
            * c_fe
            * xraylib.CS_Photo_Partial(26, xraylib.K_SHELL, e0)
            * yr
            * xraylib.CS_Photo_Partial(24, xraylib.K_SHELL, e_m)
            * j
        )
    expected = 1 + sec / (xraylib.CS_Photo_Partial(24, xraylib.K_SHELL, e0) / (p + q))
    layer = SampleLayer(
        (("Cr", c_cr), ("Fe", c_fe)),
        math.inf,
        math.sin(math.radians(60)),
        math.sin(math.radians(30)),
        e0,
    )
    assert enhancement(layer, "Cr", "K", [e_cr])[0] == pytest.approx(expected, rel=2e-3)


def test_tertiary_depth_profile_matches_quadrature() -> None:
    """A(a, s, z′) = ∫₀ᵀ e^{−az} E1(s|z − z′|) dz, the building block of tertiary excitation."""
    a, s, t = 120.0, 90.0, 0.02
    for zp in (0.0, 3e-4, 5e-3, 0.02):

        def f(z: float, zp: float = zp) -> float:
            return math.exp(-a * z) * exp1(s * abs(z - zp)) if z != zp else 0.0

        pts = [x for x in (zp,) if 0 < x < t]
        ref = integrate.quad(f, 0, t, points=pts or None, limit=400, epsrel=1e-10)[0]
        assert depth_profile(a, s, np.array([zp]), t)[0] == pytest.approx(ref, rel=1e-6)


# --- mass-fraction uncertainties ----------------------------------------------------------

TRUTH = {"Ti": 3000.0, "Fe": 2500.0, "Cu": 8000.0, "Zn": 1500.0, "Sr": 5000.0}


@pytest.mark.parametrize("standard", ["Fe", None])
def test_mass_fraction_pulls(synthetic_cfg, standard: str | None) -> None:
    """(C − C_true)/σ_C over 200 Poisson realisations: std within 0.85–1.15, mean ≈ 0.

    C_true is the mass fraction of the true areas; with an internal standard the pull
    includes the standard's own counting error (Fe has the fewest counts of the majors)."""
    from xrf_synth import FANO, GAIN, NOISE, ZERO

    cfg = synthetic_cfg
    cfg.materials["Std"] = MaterialDef(["H2O", "Fe"], [0.999, 0.001], 1.0, 0.001)
    cfg.matrix = [Layer("Matrix", "Std", 1.0, 1e-4)]  # 1 µm: negligible self-absorption
    cfg.concentrations.reference = standard or "Auto"
    truth_c = mass_fractions({f"{el} K": a for el, a in TRUTH.items()}, cfg)
    rng = np.random.default_rng(5)
    mu = expected_spectrum(TRUTH)
    params = Params(ZERO, GAIN, 0.0, NOISE, FANO)
    pulls: dict[str, list[float]] = {el: [] for el in ELEMENTS if el != standard}
    for _ in range(200):
        r = fit_spectrum(rng.poisson(mu).astype(float), cfg, linear=True, params=params)
        q = quantify(
            {k: v.area for k, v in r.groups.items()},
            cfg,
            {k: v.sigma for k, v in r.groups.items()},
            covariance_pairs(list(r.groups), r.area_covariance),
        )
        for el in pulls:
            g = f"{el} K"
            pulls[el].append((q.fractions[g] - truth_c[g]) / q.sigmas[g])
    for el, p in pulls.items():
        assert 0.85 < np.std(p) < 1.15, (el, np.std(p))
        assert abs(np.mean(p)) < 0.25, (el, np.mean(p))
