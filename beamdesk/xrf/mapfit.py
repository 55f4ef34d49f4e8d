"""Map fitting: every pixel of an XRF map by one linear solve per chunk, streamed and parallel.

Method (see docs/xrf.md):

1. The sum spectrum is accumulated chunk by chunk and fitted with the full nonlinear model;
   calibration, resolution and tails are then fixed for the whole map. Its continuum is
   fitted as smooth B-splines jointly with the peaks (no clipping filter).
2. The design matrix D holds the unit-area response of every line group plus the continuum
   (by default the sum spectrum's continuum shape times 1, x, x², fitted per pixel, so the
   background is part of the linear model and never clipped from noisy single-pixel data;
   ``background="snip"`` instead subtracts a per-pixel SNIP like PyMca's fast fit).
3. Weights are Poisson weights from the *sum-spectrum model*, W = 1/m_sum: fixed, so the
   estimator A = (DᵀWD)⁻¹DᵀW·y = P·y is linear in the counts and therefore unbiased at any
   count level, and the same P serves every pixel (one matrix product per chunk).
4. Uncertainties are the exact sampling variance of that estimator under Poisson statistics,
   var(A_k) = Σ_c P_kc² μ_c, with μ the pixel's own fitted model (not its noisy counts), so
   they follow each pixel's intensity and match the real pixel-to-pixel scatter.
5. Pixels with a negative group area are refitted with those groups constrained to zero
   (active set in the K-dimensional normal equations; only those pixels).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from beamdesk.errors import Invalid
from beamdesk.xrf import background as bg
from beamdesk.xrf.config import XRFConfig, config_text
from beamdesk.xrf.fit import FitResult, fit_range, fit_spectrum
from beamdesk.xrf.model import Params, SpectrumModel, pileup_column

ProgressCallback = Callable[[int, int], None]  # (pixels done, pixels total)

TARGET_BLOCK_BYTES = 48 * 2**20


class MapFitError(Invalid, RuntimeError):
    """The map cannot be fitted (missing dataset, wrong shape …); one-line message."""


# --- streaming over HDF5 ---------------------------------------------------------------------


def plan_blocks(
    shape: tuple[int, ...],
    chunks: tuple[int, ...] | None,
    itemsize: int,
    target_bytes: int = TARGET_BLOCK_BYTES,
) -> list[tuple[slice, ...]]:
    """Chunk-aligned blocks over the leading (pixel) axes, whole channel axis each.

    Blocks are unions of whole HDF5 chunks so every chunk is read (and decompressed) once;
    they grow along the fastest pixel axis first, up to about `target_bytes`.
    """
    lead = shape[:-1]
    if not lead:
        return [()]
    step = list(chunks[:-1]) if chunks else [1] * len(lead)
    per_pixel = shape[-1] * itemsize
    if chunks and chunks[-1] < shape[-1]:
        per_pixel = shape[-1] * itemsize  # still whole spectra: reads several chunks deep
    for axis in reversed(range(len(lead))):
        while step[axis] < lead[axis]:
            grown = min(step[axis] * 2, lead[axis])
            if chunks:
                grown = min(math.ceil(grown / chunks[axis]) * chunks[axis], lead[axis])
            if math.prod([*step[:axis], grown, *step[axis + 1 :]]) * per_pixel > target_bytes:
                break
            step[axis] = grown
        if step[axis] < lead[axis]:
            break
    ranges = [range(0, n, s) for n, s in zip(lead, step, strict=True)]
    return [
        tuple(slice(i, min(i + s, n)) for i, s, n in zip(start, step, lead, strict=True))
        for start in itertools.product(*ranges)
    ]


def open_source(source: Any, dataset: str) -> contextlib.AbstractContextManager[Any]:
    """The map to read: a file name (opened here) or an input that opens itself
    (``open_map``, e.g. ``beamdesk.sandbox.maps.SandboxedMap``, read in a sandbox)."""
    if hasattr(source, "open_map"):
        return source.open_map(dataset)
    return open_dataset(str(source), dataset)


@contextlib.contextmanager
def open_dataset(path: str, dataset: str) -> Iterator[Any]:
    import h5py
    import hdf5plugin  # noqa: F401  (compression filters)

    if not Path(path).is_file():
        raise MapFitError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r", locking=False)  # never block a beamline writer
    except OSError:
        raise MapFitError(f"{path}: not an HDF5 file (or unreadable)") from None
    try:
        if dataset not in f or not isinstance(f[dataset], h5py.Dataset):
            raise MapFitError(f"{path}: no dataset {dataset}")
        ds = f[dataset]
        if ds.ndim < 2:
            raise MapFitError(f"{path}::{dataset}: a map needs at least 2 axes (pixels, channels)")
        yield ds
    finally:
        f.close()


def sum_spectrum(ds: Any) -> np.ndarray:
    """Sum over all pixels, read chunk-aligned block by block (never the whole map)."""
    total = np.zeros(ds.shape[-1])
    for block in plan_blocks(ds.shape, ds.chunks, ds.dtype.itemsize):
        data = ds[block]
        total += data.reshape(-1, ds.shape[-1]).sum(axis=0, dtype=np.float64)
    return total


# --- the prepared linear problem -------------------------------------------------------------


@dataclass
class Prepared:
    """Everything a worker needs for a block: small arrays, shipped once."""

    names: list[str]  # peak groups (first n_groups columns of D)
    n_groups: int
    fit_slice: tuple[int, int]
    design: np.ndarray  # channels × K (float64)
    projector: np.ndarray  # K × channels, P = (DᵀWD)⁻¹DᵀW
    gram: np.ndarray  # DᵀWD
    weights: np.ndarray  # W (per channel)
    area_factor: np.ndarray  # parameter → reported area (tails)
    mass_factor: np.ndarray  # reported area → mass fraction (0: unknown)
    reference: int | None  # internal standard group index or None
    reference_fraction: float
    snip_width: int | None  # per-pixel SNIP when set
    mean_total: float = 1.0  # Σ channels of the average pixel's model (χ² scaling)
    tensor: np.ndarray | None = None  # T_ijl = Σ_c D_ci D_cj D_cl W_c² (refit variances)
    floor: float = 1e-3  # variance floor (counts) per channel


def prepare(
    cfg: XRFConfig,
    total: np.ndarray,
    n_pixels: int,
    *,
    background: str = "model",
    quant: Any | None = None,
) -> tuple[Prepared, FitResult]:
    """Fit the sum spectrum and build the fixed linear problem for the pixels."""
    sum_fit = fit_spectrum(total, cfg, spline_continuum=True)
    p: Params = sum_fit.params
    sl = fit_range(cfg, total.size)
    x = np.arange(total.size, dtype=float)[sl]
    model = SpectrumModel(cfg, x)
    basis = model.basis(p)
    cols = [basis]
    mean_model = sum_fit.fit / max(n_pixels, 1)
    continuum = sum_fit.background / max(n_pixels, 1)
    if background == "model":
        # the sum continuum's shape, allowed to change level and tilt per pixel
        shape = np.clip(continuum, 1e-9, None)
        shape = shape / shape.sum()
        t = np.linspace(-1.0, 1.0, x.size)
        cols.append(np.stack([shape, shape * t, shape * (1.5 * t**2 - 0.5)], axis=1))
    elif background != "snip":
        raise MapFitError(f"unknown map background {background!r} (model or snip)")
    if cfg.fit.pileup:
        net = sum_fit.data - sum_fit.background
        cols.append(pileup_column(net, x, p)[:, None])
    design = np.hstack(cols)
    # weights: Poisson variance = expected counts of an average pixel (scale is irrelevant)
    w = 1.0 / np.maximum(mean_model, 1e-6)
    gram = design.T @ (design * w[:, None])
    projector = np.linalg.solve(gram, (design * w[:, None]).T)
    factor = model.group_area_factor(p)
    names = model.names
    mass = np.zeros(len(names))
    ref = None
    ref_fraction = 0.0
    if quant is not None:
        mass = np.array([quant.factors.get(n, 0.0) for n in names])
        if quant.reference is not None and quant.reference in names:
            ref = names.index(quant.reference)
            ref_fraction = quant.reference_fraction
    prepared = Prepared(
        names,
        len(names),
        (sl.start, sl.stop),
        design,
        projector,
        gram,
        w,
        factor,
        mass,
        ref,
        ref_fraction,
        cfg.fit.snip_width if background == "snip" else None,
        float(np.sum(1.0 / w)),
        np.einsum("ci,cj,cl,c->ijl", design, design, design, w**2, optimize=True),
    )
    return prepared, sum_fit


def _masked_inverse(gram: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Per pixel (G_ff)⁻¹ embedded in K×K with zeros for the held groups.

    Held rows/columns are replaced by the identity and each distinct free set is inverted
    once (pixels share few patterns), then broadcast back to its pixels.
    """
    k = free.shape[1]
    _, first, back = np.unique(
        np.packbits(free, axis=1), axis=0, return_index=True, return_inverse=True
    )
    clamp = ~free[first]
    cross = clamp[:, :, None] | clamp[:, None, :]
    g = np.where(cross, 0.0, gram[None, :, :])
    idx = np.arange(k)
    g[:, idx, idx] = np.where(clamp, 1.0, g[:, idx, idx])
    h = np.linalg.inv(g)
    h[cross] = 0.0
    return h[back.ravel()]


def _refit_nonnegative(
    a: np.ndarray, gram: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Active-set refit of pixels with negative group areas in the normal equations.

    b = G·a reproduces DᵀWy for each pixel, so the constrained problem needs no spectra.
    Groups that go negative are held at zero; a held group whose gradient says the fit would
    improve is released again (KKT), one at a time. Returns the new coefficients, the free
    mask and the per-pixel (G_ff)⁻¹ used for the uncertainties.
    """
    b = a @ gram.T
    free = np.ones_like(a, dtype=bool)
    out = a.copy()
    h = np.broadcast_to(np.linalg.inv(gram), (a.shape[0], *gram.shape)).copy()
    for _ in range(2 * n_groups + 1):
        neg = (out[:, :n_groups] < 0) & free[:, :n_groups]
        grad = b - out @ gram.T
        release = (~free[:, :n_groups]) & (grad[:, :n_groups] > 1e-9 * np.abs(b[:, :n_groups]))
        release &= ~neg.any(axis=1)[:, None]
        if not neg.any() and not release.any():
            break
        free[:, :n_groups] &= ~neg
        rows = np.nonzero(release.any(axis=1))[0]
        free[rows, np.argmax(release[rows], axis=1)] = True
        changed = np.nonzero(neg.any(axis=1) | release.any(axis=1))[0]
        h[changed] = _masked_inverse(gram, free[changed])
        out[changed] = (h[changed] @ b[changed][:, :, None])[:, :, 0]
    out[:, :n_groups][~free[:, :n_groups]] = 0.0
    return out, free, h


def _variance_matrix(design: np.ndarray, projector: np.ndarray) -> np.ndarray:
    """V with var(A) = a·V for a pixel whose expected spectrum is μ = D·a.

    var(A_k) = Σ_c P_kc² μ_c = Σ_j a_j Σ_c D_cj P_kc², so the Poisson variance of every
    area follows from the K fitted coefficients alone — no per-channel work per pixel.
    """
    return design.T @ (projector**2).T


def fit_block_array(y: np.ndarray, prep: Prepared) -> dict[str, np.ndarray]:
    """Fit many spectra (pixels × channels, whole spectra) with the prepared linear model.

    Per pixel only two passes over the channels are made (A = P·y and yᵀWy); everything else
    (variances, χ², the non-negative refit) happens in the K-dimensional coefficient space.
    """
    lo, hi = prep.fit_slice
    pt = prep.projector.T.astype(np.float32)
    w32 = prep.weights.astype(np.float32)
    n = y.shape[0]
    a = np.empty((n, pt.shape[1]))
    ywy = np.empty(n)
    width = prep.snip_width
    bkg = None if width is None else np.empty((n, hi - lo), dtype=np.float32)
    # rows in slices that stay in cache: convert, project and square while the data are hot
    step = 256
    for r in range(0, n, step):
        ys = y[r : r + step, lo:hi].astype(np.float32)
        if bkg is not None and width is not None:
            bkg[r : r + step] = bg.snip(ys, width)
            ys -= bkg[r : r + step]
        a[r : r + step] = ys @ pt
        ywy[r : r + step] = np.square(ys, out=ys) @ w32  # yᵀWy
    b = a @ prep.gram.T  # DᵀWy, reproduced from the unconstrained solution
    ng = prep.n_groups
    bad = np.nonzero((a[:, :ng] < 0).any(axis=1))[0]
    h = None
    if bad.size:
        a[bad], free, h = _refit_nonnegative(a[bad], prep.gram, ng)
    vmat = _variance_matrix(prep.design, prep.projector)
    floor = (prep.projector**2).sum(axis=1) * prep.floor
    variance = np.maximum(a @ vmat, floor)
    if bkg is not None:
        # the subtracted continuum still carries Poisson noise
        variance += bkg @ (prep.projector**2).T.astype(np.float32)
    if h is not None:
        # constrained pixels: P_f = H·DᵀW with H = (G_ff)⁻¹, and
        # var_k = Σ_c P_kc² μ_c = Σ_ij H_ki H_kj M_ij with M_ij = Σ_l T_ijl a_l and
        # T_ijl = Σ_c D_ci D_cj D_cl W_c²: only the K³ tensor T, never the channels again
        k = a.shape[1]
        assert prep.tensor is not None  # prepare() always computes it
        m = (a[bad] @ prep.tensor.reshape(k * k, k).T).reshape(-1, k, k)
        if bkg is not None:
            dw = prep.design * prep.weights[:, None]
            m += np.einsum("pc,ci,cj->pij", bkg[bad], dw, dw, optimize=True)
        var_c = np.maximum(np.sum((h @ m) * h, axis=2), floor)  # diag(H·M·Hᵀ)
        # groups held at zero keep the unconstrained σ: "0 ± σ", never "0 ± 0"
        variance[bad] = np.where(free, var_c, variance[bad])
    # χ² with the sum-model weights rescaled to each pixel's intensity (exact when the pixel
    # spectrum has the mean shape): Σ(y−Da)²W = yᵀWy − 2aᵀb + aᵀGa, all in K-space.
    resid = ywy - 2 * np.sum(a * b, axis=1) + np.sum((a @ prep.gram) * a, axis=1)
    scale = (a @ prep.design.sum(axis=0)) / prep.mean_total
    dof = max((hi - lo) - a.shape[1], 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = np.where(scale > 0, np.maximum(resid, 0) / (scale * dof), np.nan)
    areas = a[:, :ng] * prep.area_factor
    sigmas = np.sqrt(variance[:, :ng]) * prep.area_factor
    if prep.reference is not None:
        r = prep.reference
        ref = areas[:, r] * prep.mass_factor[r]
        with np.errstate(divide="ignore", invalid="ignore"):
            per = np.where(ref > 0, prep.reference_fraction / ref, np.nan)
            mass = areas * prep.mass_factor * per[:, None]
            # C_k = A_k f_k C_r/(A_r f_r): first-order propagation with cov(A_k, A_r) =
            # Σ_c P_kc P_rc μ_c (Poisson, unconstrained estimator), in coefficient space
            cmat = prep.design.T @ (prep.projector * prep.projector[r]).T
            cov = (a @ cmat)[:, :ng] * prep.area_factor * prep.area_factor[r]
            d_own = prep.mass_factor * per[:, None]
            d_ref = -mass / areas[:, r : r + 1]
            var = (
                (d_own * sigmas) ** 2
                + (d_ref * sigmas[:, r : r + 1]) ** 2
                + 2.0 * d_own * d_ref * cov
            )
            mass_sigma = np.sqrt(np.maximum(var, 0.0))
        mass_sigma[:, r] = np.where(np.isfinite(per), 0.0, np.nan)
    else:
        mass = areas * prep.mass_factor
        mass_sigma = sigmas * np.abs(prep.mass_factor)
    return {
        "areas": areas.astype(np.float32),
        "sigmas": sigmas.astype(np.float32),
        "mass": mass.astype(np.float32),
        "mass_sigma": mass_sigma.astype(np.float32),
        "chi2": chi2.astype(np.float32),
        "refit": np.array(int(bad.size)),
    }


def _fit_block_file(
    path: Any, dataset: str, block: tuple[slice, ...], prep: Prepared, single_thread: bool = True
) -> tuple[tuple[slice, ...], dict[str, np.ndarray]]:
    """Worker task: read one chunk-aligned block from the file and fit it."""
    limiter: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if single_thread:
        # one BLAS thread per worker: the cluster already runs one worker per core
        # (threadpoolctl comes with scikit-learn; without it BLAS keeps its defaults)
        with contextlib.suppress(ImportError):
            from threadpoolctl import threadpool_limits

            limiter = threadpool_limits(1)
    with limiter, open_source(path, dataset) as ds:
        raw = ds[block]  # native dtype: converting outside the h5py lock scales on threads
    return block, _fit_array(raw, prep)


def _fit_array(raw: np.ndarray, prep: Prepared) -> dict[str, np.ndarray]:
    lead = raw.shape[:-1]
    out = fit_block_array(raw.reshape(-1, raw.shape[-1]), prep)
    return {k: (v.reshape(*lead, *v.shape[1:]) if v.ndim else v) for k, v in out.items()}


def _sum_block_file(path: Any, dataset: str, block: tuple[slice, ...]) -> np.ndarray:
    with open_source(path, dataset) as ds:
        data = ds[block]  # native dtype; the sum accumulates in float64
    return data.reshape(-1, data.shape[-1]).sum(axis=0, dtype=np.float64)


# --- output ------------------------------------------------------------------------------


def dataset_name(group: str) -> str:
    """'Fe K' → 'Fe_K' (PyMca's dataset names)."""
    return group.replace(" ", "_")


@dataclass
class MapFitResult:
    output_file: str
    map_shape: tuple[int, ...]
    groups: list[str]
    params: Params
    sum_fit: FitResult
    pixels: int
    seconds: float
    refitted_pixels: int
    workers: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pixels_per_second(self) -> float:
        return self.pixels / self.seconds if self.seconds > 0 else float("inf")

    def read(self, what: str = "parameters") -> dict[str, np.ndarray]:
        import h5py

        with h5py.File(self.output_file, "r") as f:
            g = f[f"entry/xrf_fit/results/{what}"]
            return {name: g[dataset_name(name)][()] for name in self.groups}


class _Writer:
    """Creates the NeXus layout up front and fills it block by block (bounded memory)."""

    def __init__(
        self,
        tmp: Path,
        shape: tuple[int, ...],
        prep: Prepared,
        cfg: XRFConfig,
        source: str,
        dataset: str,
        sum_fit: FitResult,
    ) -> None:
        import h5py

        from beamdesk.xrf import __version__

        self.f = h5py.File(tmp, "w")
        f = self.f
        f.attrs.update(
            NX_class="NXroot",
            default="entry",
            creator=f"beamdesk.xrf {__version__}",
            file_time=dt.datetime.now(dt.UTC).isoformat(),
        )
        entry = f.create_group("entry")
        entry.attrs.update(NX_class="NXentry", default="xrf_fit/results/parameters")
        proc = entry.create_group("xrf_fit")
        proc.attrs["NX_class"] = "NXprocess"
        proc["program"] = "beamdesk.xrf"
        proc["version"] = __version__
        proc["date"] = dt.datetime.now(dt.UTC).isoformat()
        conf = proc.create_group("configuration")
        conf.attrs["NX_class"] = "NXnote"
        conf["type"] = "text/toml"
        conf["data"] = config_text(cfg)
        inp = proc.create_group("input")
        inp.attrs["NX_class"] = "NXnote"
        inp["file"] = str(Path(source).resolve())
        inp["path"] = dataset
        inp["shape"] = np.array(shape)
        sumg = proc.create_group("sum_spectrum")
        sumg.attrs.update(NX_class="NXdata", signal="counts", axes="energy")
        sumg["counts"] = sum_fit.data
        sumg["fit"] = sum_fit.fit
        sumg["energy"] = sum_fit.energy
        sumg["energy"].attrs["units"] = "keV"
        for name, value in (
            ("zero", sum_fit.params.zero),
            ("gain", sum_fit.params.gain),
            ("quad", sum_fit.params.quad),
            ("noise", sum_fit.params.noise),
            ("fano", sum_fit.params.fano),
            ("chi2_reduced", sum_fit.chi2_reduced),
        ):
            sumg.attrs[name] = value
        results = proc.create_group("results")
        results.attrs["NX_class"] = "NXcollection"
        lead = shape[:-1]
        chunks = tuple(min(n, 256) for n in lead)
        self.sets: dict[str, list[Any]] = {}
        names = [dataset_name(n) for n in prep.names]
        for what, key in (
            ("parameters", "areas"),
            ("uncertainties", "sigmas"),
            ("massfractions", "mass"),
            ("massfraction_uncertainties", "mass_sigma"),
        ):
            grp = results.create_group(what)
            self._nxdata(grp, names, lead)
            self.sets[key] = [
                grp.create_dataset(n, shape=lead, dtype="f4", chunks=chunks, fillvalue=np.nan)
                for n in names
            ]
        diag = results.create_group("diagnostics")
        self._nxdata(diag, ["chisq"], lead)
        self.sets["chi2"] = [
            diag.create_dataset("chisq", shape=lead, dtype="f4", chunks=chunks, fillvalue=np.nan)
        ]

    @staticmethod
    def _nxdata(grp: Any, names: list[str], lead: tuple[int, ...]) -> None:
        grp.attrs["NX_class"] = "NXdata"
        grp.attrs["signal"] = names[0] if names else ""
        if len(names) > 1:
            grp.attrs["auxiliary_signals"] = np.array(names[1:], dtype=object)
        axes = [f"axis{i}" for i in range(len(lead))]
        grp.attrs["axes"] = np.array(axes, dtype=object)
        for i, n in enumerate(lead):
            grp.create_dataset(axes[i], data=np.arange(n))
            grp.attrs[f"{axes[i]}_indices"] = i

    def write(self, block: tuple[slice, ...], out: dict[str, np.ndarray]) -> None:
        for key, sets in self.sets.items():
            arr = out[key]
            for i, ds in enumerate(sets):
                ds[block] = arr[..., i] if key != "chi2" else arr

    def close(self) -> None:
        self.f.close()


# --- the public entry point -------------------------------------------------------------


def fit_map(
    input_file: Any,
    dataset_path: str | None,
    config: XRFConfig,
    output_file: str | Path,
    *,
    client: Any | None = None,
    scheduler: str | None = None,
    workers: int = 2,
    processes: bool = False,
    background: str = "model",
    quantify: bool = True,
    progress: ProgressCallback | None = None,
    block_bytes: int = TARGET_BLOCK_BYTES,
) -> MapFitResult:
    """Fit every pixel of `input_file::dataset_path` and write NeXus results to `output_file`.

    Parallel on dask.distributed: an existing `client`, a `scheduler` address, or a new
    LocalCluster with `workers` workers (`workers=0` runs in this process, no dask at all).
    The local cluster uses threads by default (numpy releases the GIL; starting worker
    processes costs ~2 s); `processes=True` pays off for maps of millions of pixels.
    `progress(done_pixels, total_pixels)` is called after the sum pass and every block.
    """
    from beamdesk.xrf.readers import split_h5_path

    t0 = time.perf_counter()
    path: Any = input_file if hasattr(input_file, "open_map") else str(input_file)
    if dataset_path is None:
        path, dataset_path, _ = split_h5_path(str(path))
    dataset = dataset_path
    with open_source(path, dataset) as ds:
        shape = tuple(ds.shape)
        blocks = plan_blocks(shape, ds.chunks, max(ds.dtype.itemsize, 4), block_bytes)
    n_pixels = math.prod(shape[:-1])
    own_client = None
    pool = client
    try:
        if pool is None and (scheduler or workers > 0):
            from distributed import Client, LocalCluster

            if scheduler:
                pool = own_client = Client(scheduler)
            else:
                cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=processes,
                    dashboard_address=None,
                )
                pool = own_client = Client(cluster)
        # pass 1: sum spectrum
        if pool is None:
            total = sum((_sum_block_file(path, dataset, b) for b in blocks), np.zeros(shape[-1]))
        else:
            futures = pool.map(
                _sum_block_file, [path] * len(blocks), [dataset] * len(blocks), blocks, pure=False
            )
            total = np.sum(pool.gather(futures), axis=0)
        quant = None
        if quantify:
            from beamdesk.xrf.quant import QuantError, quantify_factors

            with contextlib.suppress(QuantError):
                quant = quantify_factors(config)
        prep, sum_fit = prepare(config, total, n_pixels, background=background, quant=quant)
        if progress:
            progress(0, n_pixels)
        out_path = Path(output_file)
        tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
        writer = _Writer(tmp, shape, prep, config, str(path), dataset, sum_fit)
        done = 0
        refit = 0
        try:
            if pool is None:
                results: Any = (_fit_block_file(path, dataset, b, prep, False) for b in blocks)
            else:
                from distributed import as_completed

                # hash=False: identical jobs running at once (same map, same config) would
                # otherwise share one key, and the first to finish releases it under the
                # other (seen as KeyError 'Prepared-…' in the scheduler under load).
                [prep_future] = pool.scatter([prep], broadcast=True, hash=False)
                futures = pool.map(
                    _fit_block_file,
                    [path] * len(blocks),
                    [dataset] * len(blocks),
                    blocks,
                    [prep_future] * len(blocks),
                    pure=False,
                )
                results = (fut.result() for fut in as_completed(futures))
            n_workers = 0 if pool is None else len(pool.scheduler_info().get("workers", {}))
            for block, out in results:
                writer.write(block, out)
                refit += int(out["refit"])
                done += math.prod(s.stop - s.start for s in block)
                if progress:
                    progress(done, n_pixels)
            writer.f["entry/xrf_fit/results/diagnostics"].attrs["refitted_pixels"] = refit
            writer.close()
            os.replace(tmp, out_path)  # atomic: readers never see a half-written file
        except BaseException:
            writer.close()
            tmp.unlink(missing_ok=True)
            raise
    finally:
        if own_client is not None:
            own_cluster = getattr(own_client, "cluster", None)
            own_client.close()
            if own_cluster is not None:
                own_cluster.close()
    return MapFitResult(
        str(out_path),
        shape[:-1],
        prep.names,
        sum_fit.params,
        sum_fit,
        n_pixels,
        time.perf_counter() - t0,
        refit,
        n_workers,
    )
