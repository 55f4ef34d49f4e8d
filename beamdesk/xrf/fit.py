"""Single-spectrum fit: nonlinear least squares of calibration/resolution/tails around linear areas.

Variable projection: for every trial θ of the few nonlinear parameters the group areas are the
exact weighted linear least-squares solution, so the optimiser (scipy ``least_squares`` with
bounds) only ever sees θ. Weights are Poisson weights from the *model*, not the data: a first
pass uses max(data, 1), then the weights are recomputed from the fitted model and the fit
repeated (iteratively reweighted), which removes the low-count bias of data weighting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares, lsq_linear

from beamdesk.errors import Invalid
from beamdesk.xrf import background as bg
from beamdesk.xrf.config import XRFConfig
from beamdesk.xrf.model import (
    Params,
    SpectrumModel,
    continuum_columns,
    fwhm,
    params_from_config,
    pileup_column,
)


class FitError(Invalid, RuntimeError):
    """The fit could not be carried out (empty range, no groups …)."""


@dataclass
class GroupResult:
    area: float
    sigma: float


@dataclass
class FitResult:
    params: Params
    param_sigma: dict[str, float]
    groups: dict[str, GroupResult]
    chi2_reduced: float
    channels: np.ndarray
    energy: np.ndarray
    data: np.ndarray
    background: np.ndarray  # stripped/SNIP background + fitted continuum + pile-up
    fit: np.ndarray  # full model (background included)
    group_models: dict[str, np.ndarray] = field(default_factory=dict)
    iterations: int = 0
    mass_fractions: dict[str, float] = field(default_factory=dict)
    mass_fraction_sigmas: dict[str, float] = field(default_factory=dict)
    # covariance of the reported group areas (order of `groups`), for error propagation
    area_covariance: np.ndarray | None = None

    @property
    def residuals(self) -> np.ndarray:
        return self.data - self.fit

    def to_dict(self) -> dict[str, Any]:
        return {
            "calibration": {
                "zero": self.params.zero,
                "gain": self.params.gain,
                "quad": self.params.quad,
            },
            "noise": self.params.noise,
            "fano": self.params.fano,
            "chi2_reduced": self.chi2_reduced,
            "groups": {k: {"area": v.area, "sigma": v.sigma} for k, v in self.groups.items()},
            "mass_fractions": dict(self.mass_fractions),
            "mass_fraction_sigmas": dict(self.mass_fraction_sigmas),
        }


def fit_range(cfg: XRFConfig, n: int) -> slice:
    if not cfg.fit.use_limit:
        return slice(0, n)
    lo = max(int(cfg.fit.xmin), 0)
    hi = int(cfg.fit.xmax) if cfg.fit.xmax > 0 else n - 1
    hi = min(hi, n - 1)
    if hi - lo < 16:
        raise FitError(f"fit range {lo}..{hi} is empty or too short for a {n}-channel spectrum")
    return slice(lo, hi + 1)


def estimate_background(y: np.ndarray, cfg: XRFConfig) -> np.ndarray:
    f = cfg.fit
    return bg.estimate(
        y,
        f.background,
        snip_width=f.snip_width,
        strip_width=f.strip_width,
        strip_iterations=f.strip_iterations,
        strip_constant=f.strip_constant,
        filter_width=f.strip_filter_width,
    )


def free_parameters(
    cfg: XRFConfig, p: Params, scatter: bool
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Which nonlinear parameters vary, with bounds (PyMca's value ± delta semantics)."""
    d, s = cfg.detector, cfg.peakshape
    names: list[str] = []
    lo: list[float] = []
    hi: list[float] = []

    def add(name: str, value: float, low: float, high: float) -> None:
        names.append(name)
        lo.append(min(low, value))
        hi.append(max(high, value + 1e-12))

    if not d.fixed_zero:
        add("zero", p.zero, p.zero - abs(d.delta_zero), p.zero + abs(d.delta_zero))
    if not d.fixed_gain:
        dg = abs(d.delta_gain) or 0.05 * abs(p.gain)
        add("gain", p.gain, p.gain - dg, p.gain + dg)
    if not d.fixed_noise:
        add("noise", p.noise, max(1e-3, p.noise - abs(d.delta_noise)), p.noise + abs(d.delta_noise))
    if not d.fixed_fano:
        add("fano", p.fano, max(1e-3, p.fano - abs(d.delta_fano)), p.fano + abs(d.delta_fano))
    if not s.fixed_tails:
        if s.short_tail:
            add("st_area", p.st_area, 0.0, 1.0)
            add("st_slope", p.st_slope, 0.05, 5.0)
        if s.long_tail:
            add("lt_area", p.lt_area, 0.0, 1.0)
            add("lt_slope", p.lt_slope, 1.0, 100.0)
        if s.step:
            add("step", p.step, 0.0, 0.05)
    if scatter:
        add("compton_width", p.compton_width, 0.0, 1.0)
    return tuple(names), np.array(lo), np.array(hi)


def spline_columns(n: int, spacing: int) -> np.ndarray:
    """Cubic B-spline basis on n channels with knots every `spacing` channels."""
    from scipy.interpolate import BSpline

    inner = np.linspace(0, n - 1, max(round((n - 1) / spacing), 1) + 1)
    knots = np.r_[[inner[0]] * 3, inner, [inner[-1]] * 3]
    return BSpline.design_matrix(np.arange(n, dtype=float), knots, 3).toarray()


def _design(model: SpectrumModel, p: Params, extra: np.ndarray) -> np.ndarray:
    b = model.basis(p)
    return np.hstack([b, extra]) if extra.size else b


def _solve(design: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(design * sw[:, None], y * sw, rcond=None)
    return coef


def fit_spectrum(
    counts: np.ndarray,
    cfg: XRFConfig,
    *,
    channels: np.ndarray | None = None,
    linear: bool | None = None,
    params: Params | None = None,
    reweight: int = 2,
    nonnegative: bool = True,
    spline_continuum: bool = False,
) -> FitResult:
    """Fit one spectrum with a configuration; see module doc for the method.

    `spline_continuum`: fit the continuum as smooth cubic B-splines together with the peaks
    instead of subtracting a SNIP/strip estimate first (used for the sum spectrum of maps,
    where clipping filters visibly under-cut dense peak clusters).
    """
    counts = np.asarray(counts, dtype=float)
    if channels is None:
        channels = np.arange(counts.size, dtype=float)
    sl = fit_range(cfg, counts.size)
    x, y = channels[sl], counts[sl]
    p0 = params or params_from_config(cfg)
    model = SpectrumModel(cfg, x)
    if not model.groups:
        raise FitError("no line groups configured (the [peaks] section is empty)")
    back = estimate_background(y, cfg)
    net = y - back
    extra_cols = []
    extra_names = []
    if cfg.fit.pileup:
        extra_cols.append(pileup_column(net, x, p0)[:, None])
        extra_names.append("pile-up")
    if cfg.fit.continuum_order > 0:
        poly = continuum_columns(x, cfg.fit.continuum_order)
        extra_cols.append(poly)
        extra_names += [f"continuum{i}" for i in range(poly.shape[1])]
    if spline_continuum and cfg.fit.background != "none":
        # the continuum becomes part of the linear model: smooth cubic B-splines fitted
        # together with the peaks, so it cannot ride up on dense peak clusters the way a
        # clipping filter does; the SNIP/strip estimate only seeds the pile-up column
        # knots far enough apart (≥ 6 FWHM at 5 keV) that splines cannot mimic peaks
        fwhm_ch = float(fwhm(5.0, p0, cfg.detector.material)) / abs(p0.gain)
        spacing = max(2 * cfg.fit.snip_width, int(6 * fwhm_ch))
        spline = spline_columns(x.size, spacing)
        extra_cols.append(spline)
        extra_names += [f"spline{i}" for i in range(spline.shape[1])]
        back = np.zeros_like(y)
        net = y.copy()
    extra = np.hstack(extra_cols) if extra_cols else np.zeros((x.size, 0))
    n_groups = len(model.groups)
    scatter = any(g.kind == "compton" for g in model.groups)
    names, lo, hi = free_parameters(cfg, p0, scatter)
    if linear if linear is not None else cfg.fit.linear:
        names, lo, hi = (), np.array([]), np.array([])

    # first weights from the data (only to start), later from the model
    w = 1.0 / np.maximum(y, 1.0) if cfg.fit.weight else np.ones_like(y)
    p = p0
    nfev = 0

    def residual(theta: np.ndarray, weights: np.ndarray) -> np.ndarray:
        q = p.with_vector(names, theta)
        d = _design(model, q, extra)
        a = _solve(d, net, weights)
        return (net - d @ a) * np.sqrt(weights)

    for it in range(reweight + 1):
        if names:
            sol = least_squares(
                residual,
                p.vector(names),
                bounds=(lo, hi),
                args=(w,),
                x_scale="jac",
                max_nfev=50 * max(cfg.fit.max_iter, 1),
                ftol=1e-8 if it else 1e-6,
                xtol=1e-10,
            )
            p = p.with_vector(names, sol.x)
            nfev += sol.nfev
        design = _design(model, p, extra)
        coef = _solve(design, net, w)
        if nonnegative and np.any(coef[:n_groups] < 0):
            lower = np.r_[np.zeros(n_groups), np.full(extra.shape[1], -np.inf)]
            sw = np.sqrt(w)
            coef = lsq_linear(
                design * sw[:, None], net * sw, bounds=(lower, np.full(lower.size, np.inf))
            ).x
        mfit = back + design @ coef
        if it == reweight or not cfg.fit.weight:
            break
        # Poisson variance of each channel is the expected count: use the model, not the data
        if cfg.fit.weight:
            w = 1.0 / np.maximum(mfit, 0.5)

    # covariance from the weighted Jacobian of all free parameters (nonlinear + linear)
    sw = np.sqrt(w)
    jac_cols = [design * sw[:, None]]
    for i, _name in enumerate(names):
        h = 1e-6 * max(abs(p.vector(names)[i]), 1e-3)
        q = p.with_vector(names, p.vector(names) + np.eye(len(names))[i] * h)
        dm = (_design(model, q, extra) @ coef - design @ coef) / h
        jac_cols.append((dm * sw)[:, None])
    jac = np.hstack(jac_cols)
    # normalise columns first: pile-up/continuum columns differ from peaks by many decades
    norm = np.linalg.norm(jac, axis=0)
    norm[norm == 0] = 1.0
    cov = np.linalg.pinv((jac / norm).T @ (jac / norm)) / np.outer(norm, norm)
    sig = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    resid = (y - mfit) * sw
    dof = max(y.size - jac.shape[1], 1)
    chi2 = float(resid @ resid / dof)

    factor = model.group_area_factor(p)
    basis = design[:, :n_groups]
    groups = {}
    group_models = {}
    for i, g in enumerate(model.groups):
        groups[g.name] = GroupResult(float(coef[i] * factor[i]), float(sig[i] * factor[i]))
        group_models[g.name] = basis[:, i] * coef[i]
    psig = {name: float(sig[design.shape[1] + i]) for i, name in enumerate(names)}
    background = mfit - basis @ coef[:n_groups]
    area_cov = cov[:n_groups, :n_groups] * np.outer(factor, factor)
    return FitResult(
        p,
        psig,
        groups,
        chi2,
        x,
        model.energy(p),
        y,
        background,
        mfit,
        group_models,
        nfev,
        area_covariance=area_cov,
    )
