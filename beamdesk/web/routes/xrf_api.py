"""The XRF workbench's API: fit one spectrum, name lines, load/save configurations, ROI
maps and RGB-correlator data, and the workbench page itself.

Thin: the science is in ``beamdesk.xrf`` (fit, quant, identify, roi, rgb, config); this
module picks the spectrum the user asked for inside the proposal folder (confined by
``beamdesk.h5.paths``), guards sizes, runs the engine in a worker thread and turns its
results into JSON. A proposal the caller may not read answers 404.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import tempfile
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field, model_validator
from starlette.concurrency import run_in_threadpool

from beamdesk.errors import BeamDeskError, Conflict, Invalid, NotFound
from beamdesk.h5.paths import PathNotFound, clean_relative
from beamdesk.portal.access import Action
from beamdesk.sandbox.pool import ReaderPool
from beamdesk.web.deps import (
    DB,
    AppSettings,
    CurrentIdentity,
    CurrentUser,
    Now,
    ReadableFolder,
    ReadableProposal,
    SignedInUser,
    proposal_for,
)
from beamdesk.web.readers import Readers, read
from beamdesk.web.routes.viewer import app_page
from beamdesk.web.security import verify_csrf

router = APIRouter()
api = APIRouter(prefix="/api", tags=["xrf"])
changes = APIRouter(prefix="/api", tags=["xrf"], dependencies=[Depends(verify_csrf)])
pages = APIRouter(include_in_schema=False)

# A synchronous fit reads at most this much of a map (the sum of a bigger map is a job's
# work: `beamdesk xrf map` / the job API stream it over the cluster).
MAX_SUM_BYTES = 1024**3
# Maps travel as JSON (the RGB correlator needs every pixel for its scatter plot): 1 M
# pixels is ~20 MB of JSON for three maps and a scatter; bigger maps: /h5/data (binary).
JSON = "application/json"
MAX_MAP_PIXELS = 1_000_000
# ROI maps of all windows together, as values in one answer (~7 bytes each in JSON).
MAX_ROI_VALUES = 8_000_000
MAX_CHANNELS = 65_536
CONFIG_FOLDER = "config"
CONFIG_SUFFIXES = (".toml", ".cfg")


# --- request bodies ------------------------------------------------------------------------


class SpectrumSource(BaseModel):
    """Which spectrum to fit: a whole 1-D spectrum file/dataset, one pixel, a region, a sum."""

    file: str = Field(description="File inside the proposal folder, e.g. 'raw/xrf/map.nxs'.")
    path: str | None = Field(
        None, description="HDF5 dataset (channels last). Omit for .mca/.spe/CSV files."
    )
    pixel: list[int] | None = Field(None, description="Index of one pixel (all axes but the last).")
    rows: list[int] | None = Field(
        None, min_length=2, max_length=2, description="Region: [first, last+1) rows."
    )
    cols: list[int] | None = Field(
        None, min_length=2, max_length=2, description="Region: [first, last+1) columns."
    )

    @model_validator(mode="after")
    def _one_selection(self) -> SpectrumSource:
        if self.pixel is not None and (self.rows is not None or self.cols is not None):
            raise ValueError("give either 'pixel' or a region ('rows'/'cols'), not both")
        if (
            self.pixel is not None or self.rows is not None or self.cols is not None
        ) and not self.path:
            raise ValueError("a pixel or region needs the HDF5 'path' of the map")
        return self


class ConfigChoice(BaseModel):
    config: dict[str, Any] | None = Field(
        None, description="Fit configuration as the BeamDesk TOML structure (docs/xrf.md)."
    )
    config_file: str | None = Field(
        None, description="Or a configuration file of the proposal (.toml or PyMca .cfg)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ConfigChoice:
        if (self.config is None) == (self.config_file is None):
            raise ValueError("give either 'config' or 'config_file'")
        return self


class FitIn(ConfigChoice):
    source: SpectrumSource


class ConfigSaveIn(BaseModel):
    name: str = Field(
        description="File name inside the proposal's config/ folder, ending .toml or .cfg (PyMca)."
    )
    config: dict[str, Any]
    overwrite: bool = False


class Window(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    emin: float = Field(description="keV")
    emax: float = Field(description="keV")

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if not (math.isfinite(self.emin) and math.isfinite(self.emax)) or self.emax <= self.emin:
            raise ValueError("the window needs emin < emax (keV)")
        return self


class Calibration(BaseModel):
    zero: float
    gain: float
    quad: float = 0.0


class RoiIn(BaseModel):
    file: str
    path: str
    windows: list[Window] = Field(min_length=1, max_length=16)
    calibration: Calibration


Scaling = Literal["minmax", "percentile"]
Transform = Literal["linear", "log", "sqrt"]


class Channel(BaseModel):
    group: str = Field(description="Group of the map result, e.g. 'Fe K'.")
    scaling: Scaling = "percentile"
    transform: Transform = "linear"


class RgbIn(BaseModel):
    file: str = Field(description="A map-fit result (processed/…_xrf.nxs).")
    red: Channel | None = None
    green: Channel | None = None
    blue: Channel | None = None
    scatter: list[str] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="Two groups for the scatter plot (default: red and green).",
    )


# --- helpers -------------------------------------------------------------------------------


def check_types(obj: Any, where: str = "config") -> None:
    """Every number of the configuration is a number, every flag a flag: the engine's
    TOML reader takes values as given, and a browser form can send "" for a number."""
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            check_types(item, f"{where}[{i}]")
        return
    if isinstance(obj, dict):
        for key, item in obj.items():
            check_types(item, f"{where}.{key}")
        return
    if not dataclasses.is_dataclass(obj):
        return
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, kind = getattr(obj, f.name), hints.get(f.name)
        name = f"{where}.{f.name}"
        if kind is float or kind == float | None:
            ok = (value is None and kind is not float) or (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
            )
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind is bool:
            ok = isinstance(value, bool | int)
        elif kind is str:
            ok = isinstance(value, str)
        else:
            check_types(value, name)
            continue
        if not ok:
            raise Invalid(
                f"Invalid configuration: {name} = {value!r} is not a "
                f"{getattr(kind, '__name__', 'number')}.",
            )


def parse_config(data: dict[str, Any]) -> Any:
    from beamdesk.xrf.config import from_toml_dict

    cfg = from_toml_dict(data, source="config")
    check_types(cfg)
    return cfg


def _config(folder: ReadableFolder, choice: ConfigChoice) -> Any:
    from beamdesk.xrf.config import load_config

    if choice.config is not None:
        return parse_config(choice.config)
    return load_config(folder.file(str(choice.config_file)))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _array(values: np.ndarray) -> np.ndarray:
    """Values for :func:`_json`: float64, contiguous (NaN and ±inf are sent as null)."""
    return np.ascontiguousarray(values, dtype=np.float64)


def _json(payload: Any) -> Response:
    """A JSON answer encoded at once, numpy arrays straight from their buffers (no Python
    float per value); call it in the thread pool, not on the event loop."""
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), media_type=JSON)


def _floats(values: np.ndarray) -> list[float | None]:
    return [_finite(float(v)) for v in np.asarray(values, dtype=float)]


def load_spectrum(
    readers: ReaderPool, folder: ReadableFolder, source: SpectrumSource, max_bytes: int
) -> dict[str, Any]:
    """Counts (and map shape) of the chosen spectrum, read by the proposal's reader."""
    return read(
        readers,
        folder.root,
        "xrf.spectrum",
        clean_file(source.file),
        path=source.path,
        pixel=source.pixel,
        rows=source.rows,
        cols=source.cols,
        max_bytes=max_bytes,
        max_sum_bytes=MAX_SUM_BYTES,
    )


def clean_file(file: str) -> str:
    try:
        return clean_relative(file)
    except PathNotFound:
        raise NotFound(f"No file {file!r} in this proposal.") from None


def fit_payload(counts: np.ndarray, cfg: Any) -> dict[str, Any]:
    """Run the engine's fit and quantification; the JSON the workbench draws."""
    from beamdesk.xrf.fit import FitError

    if counts.size > MAX_CHANNELS:
        raise FitError(f"the spectrum has {counts.size} channels, more than {MAX_CHANNELS}")
    from beamdesk.xrf.fit import fit_spectrum
    from beamdesk.xrf.model import params_from_config
    from beamdesk.xrf.quant import QuantError, covariance_pairs, quantify, reference_group

    result = fit_spectrum(counts, cfg)
    quant: dict[str, Any] = {
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
        result.mass_fractions, result.mass_fraction_sigmas = q.fractions, q.sigmas
        ref = reference_group(cfg)
        quant.update(method="internal standard" if ref else "fundamental parameters", reference=ref)
    except QuantError as exc:
        quant["message"] = str(exc)
    p = result.params
    all_channels = np.arange(counts.size, dtype=float)
    full_energy = p.zero + p.gain * all_channels + p.quad * all_channels**2
    start = params_from_config(cfg)
    return {
        "calibration": {"zero": p.zero, "gain": p.gain, "quad": p.quad},
        "start_calibration": {"zero": start.zero, "gain": start.gain, "quad": start.quad},
        "noise": p.noise,
        "fano": p.fano,
        "chi2_reduced": _finite(result.chi2_reduced),
        "quantification": quant,
        "groups": {
            name: {
                "area": g.area,
                "sigma": g.sigma,
                "mass_fraction": _finite(result.mass_fractions.get(name, float("nan"))),
                "mass_fraction_sigma": _finite(result.mass_fraction_sigmas.get(name, float("nan"))),
            }
            for name, g in result.groups.items()
        },
        "channels": _floats(result.channels),
        "energy": _floats(result.energy),
        "data": _floats(result.data),
        "fit": _floats(result.fit),
        "background": _floats(result.background),
        "residuals": _floats(result.residuals),
        "contributions": {name: _floats(m) for name, m in result.group_models.items()},
        # the whole spectrum (not only the fitted range), for ROI windows and calibration
        "spectrum": {"energy": _floats(full_energy), "counts": _floats(counts)},
    }


def _config_dir(folder: ReadableFolder) -> Path:
    return folder.root / CONFIG_FOLDER


def _config_name(name: str) -> str:
    """A plain file name ending .toml/.cfg: no folders, nothing outside config/."""
    try:
        clean = clean_relative(name)
    except PathNotFound:
        raise Invalid(f"{name!r} is not a valid file name.") from None
    if "/" in clean or not clean.lower().endswith(CONFIG_SUFFIXES) or clean.startswith("."):
        raise Invalid(
            "Give a plain file name ending .toml or .cfg, e.g. 'shell_fit.toml'; "
            "it is saved in the proposal's config/ folder.",
        )
    return clean


def write_config_file(folder: Path, name: str, text: str, overwrite: bool) -> Path:
    """Write atomically (temporary name, then rename) inside ``folder`` only."""
    folder.mkdir(exist_ok=True)
    real = folder.resolve()
    target = real / name
    if target.parent != real or target.is_symlink():
        raise Invalid(f"{name!r} is not a valid file name.")
    if target.exists() and not overwrite:
        raise Conflict(f"config/{name} exists; save with overwrite, or choose another name.")
    fd, tmp = tempfile.mkstemp(dir=real, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def rgb_payload(maps_of: Any, body: RgbIn) -> dict[str, Any]:
    from beamdesk.xrf.rgb import scale_channel, scatter_data

    channels = {"red": body.red, "green": body.green, "blue": body.blue}
    chosen = [c.group for c in channels.values() if c is not None]
    pair = body.scatter or chosen[:2]
    if not chosen:
        raise Invalid("Choose at least one map (red, green or blue).")
    if len(pair) != 2:
        raise Invalid("The scatter plot needs two maps.")
    maps = maps_of(sorted({*chosen, *pair}))
    shape = next(iter(maps.values())).shape
    if len(shape) != 2 or any(m.shape != shape for m in maps.values()):
        raise Invalid("The RGB correlator needs 2-D maps of one shape.")
    out: dict[str, Any] = {"shape": list(shape), "channels": {}}
    for colour, ch in channels.items():
        if ch is None:
            continue
        values = maps[ch.group]
        out["channels"][colour] = {
            "group": ch.group,
            "scaling": ch.scaling,
            "transform": ch.transform,
            "scaled": _array(
                scale_channel(values, scaling=ch.scaling, transform=ch.transform).ravel()
            ),
            "min": _finite(float(np.nanmin(values))),
            "max": _finite(float(np.nanmax(values))),
        }
    a, b = maps[pair[0]], maps[pair[1]]
    pearson = scatter_data(a, b)["pearson_r"]
    # every pixel, in map order (index = row × columns + column), so a selection in the
    # scatter plot names map pixels directly; NaN (unfitted) pixels come back as null
    out["scatter"] = {
        "x_group": pair[0],
        "y_group": pair[1],
        "x": _array(a.ravel()),
        "y": _array(b.ravel()),
        "pearson_r": pearson,
    }
    return out


# --- API -----------------------------------------------------------------------------------


@changes.post("/proposals/{number}/xrf/fit")
async def fit(
    number: str, body: FitIn, folder: ReadableProposal, readers: Readers, settings: AppSettings
) -> dict[str, Any]:
    """Fit one spectrum (a 1-D spectrum, one pixel, a region's or the map's sum) with a
    configuration; returns parameters, group areas, mass fractions and the curves."""

    def work() -> dict[str, Any]:  # all of it off the event loop: parsing a config is work too
        cfg = _config(folder, body)
        counts = load_spectrum(readers, folder, body.source, settings.limits.max_read_bytes)
        return fit_payload(np.asarray(counts["counts"]), cfg)

    out = await run_in_threadpool(work)
    out["source"] = body.source.model_dump()
    return out


@changes.post("/proposals/{number}/xrf/spectrum")
async def spectrum(
    number: str,
    body: SpectrumSource,
    folder: ReadableProposal,
    readers: Readers,
    settings: AppSettings,
) -> dict[str, Any]:
    """The counts of a spectrum, pixel, region or map sum, before any fit (for picking
    calibration peaks and energy windows), and the map's shape when it is one."""
    out = await run_in_threadpool(
        load_spectrum, readers, folder, body, settings.limits.max_read_bytes
    )
    return {"counts": _floats(out["counts"]), "map_shape": out["map_shape"]}


@api.get("/proposals/{number}/xrf/spectra")
def spectra_in_file(
    number: str, folder: ReadableProposal, readers: Readers, file: Annotated[str, Query()]
) -> dict[str, Any]:
    """Datasets of an HDF5 file that look like spectra or maps of spectra (numeric, last
    axis ≥ 64 channels), the likeliest first: marked ``interpretation = spectrum``, then
    the most pixels."""
    file = clean_file(file)
    return {"file": file, "datasets": read(readers, folder.root, "xrf.spectra", file)}


@api.get("/xrf/identify")
def identify(
    user: SignedInUser,
    energy: Annotated[float, Query(gt=0, le=200, description="keV")],
    tolerance: Annotated[float, Query(gt=0, le=1)] = 0.05,
    excitation: Annotated[float | None, Query(gt=0, le=200)] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 8,
) -> dict[str, Any]:
    """Element lines within ``tolerance`` keV of ``energy``, strongest and closest first."""
    from beamdesk.xrf.identify import identify as find

    found = find(energy, tolerance, excitation=excitation, limit=limit)
    return {
        "energy": energy,
        "lines": [
            {
                "element": c.element,
                "group": c.group,
                "line": c.line,
                "energy": c.energy,
                "rate": c.rate,
                "distance": c.distance,
            }
            for c in found
        ],
    }


@functools.lru_cache(maxsize=8)
def element_table(excitation: float | None) -> tuple[dict[str, Any], ...]:
    """Z 11–92: the strongest line of each K/L/M group and whether the beam excites it."""
    from beamdesk.xrf import physics

    out = []
    for z in range(11, 93):
        el = physics.symbol(z)
        groups: dict[str, Any] = {}
        for group, shell in (("K", "K"), ("L", "L3"), ("M", "M5")):
            try:
                # the label line: Kα, Lα (of L3), Mα (of M5), what users look for
                lines = physics.group_lines(el, shell)
            except physics.PhysicsError:
                continue
            if not lines:
                continue
            main = max(lines, key=lambda line: line.rate)
            # PyMca offers K lines from 1 keV, L from ~0.5 keV: softer ones are not fitted
            if main.energy < 0.9:
                continue
            edge = physics.edge_energy(el, shell)
            groups[group] = {
                "energy": round(main.energy, 4),
                "edge": round(edge, 4),
                "excited": excitation is None or edge < excitation,
            }
        out.append({"z": z, "symbol": el, "groups": groups})
    return tuple(out)


@api.get("/xrf/elements")
def elements(
    user: SignedInUser, excitation: Annotated[float | None, Query(gt=0, le=200)] = None
) -> dict[str, Any]:
    """The periodic table of the element picker: main line energies of K, L and M."""
    return {"excitation": excitation, "elements": list(element_table(excitation))}


@api.get("/proposals/{number}/xrf/config")
def load_config_file(
    number: str,
    folder: ReadableProposal,
    file: Annotated[str, Query(description="e.g. config/xrf_map.cfg")],
    to: Literal["toml", "cfg"] | None = None,
) -> dict[str, Any]:
    """A configuration file of the proposal as the TOML structure, and its text in the
    other format when ``to`` is given (conversion TOML ⇄ PyMca .cfg)."""
    from beamdesk.xrf.config import (
        ConfigError,
        config_text,
        load_config,
        to_pymca_dict,
        to_toml_dict,
        write_pymca_dict,
    )

    path = folder.file(file)
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        raise Invalid(f"Invalid configuration: {str(exc).splitlines()[0]}") from None
    out: dict[str, Any] = {
        "file": clean_relative(file),
        "config": to_toml_dict(cfg),
        "format": "cfg" if path.suffix.lower() == ".cfg" else "toml",
    }
    if to == "cfg":
        out["text"] = write_pymca_dict(to_pymca_dict(cfg))
    elif to == "toml":
        out["text"] = config_text(cfg)
    return out


@api.get("/proposals/{number}/xrf/configs")
def list_configs(number: str, folder: ReadableProposal) -> dict[str, Any]:
    """The configuration files in the proposal's config/ folder."""
    cdir = _config_dir(folder)
    names = (
        sorted(
            p.name
            for p in cdir.iterdir()
            if p.is_file() and p.suffix.lower() in CONFIG_SUFFIXES and not p.name.startswith(".")
        )
        if cdir.is_dir()
        else []
    )
    return {"folder": CONFIG_FOLDER, "files": [f"{CONFIG_FOLDER}/{n}" for n in names]}


@changes.post("/proposals/{number}/xrf/config/save", status_code=201)
def save_config_file(
    number: str,
    body: ConfigSaveIn,
    db: DB,
    identity: CurrentIdentity,
    now: Now,
    folder: ReadableProposal,
) -> dict[str, Any]:
    """Save a configuration as TOML or PyMca .cfg (by extension) into config/; never
    anywhere else, never over an existing file unless ``overwrite``."""
    from beamdesk.xrf.config import config_text, to_pymca_dict, write_pymca_dict

    proposal_for(db, identity, number, Action.run_job, now)  # members and staff only
    name = _config_name(body.name)
    cfg = parse_config(body.config)
    text = (
        write_pymca_dict(to_pymca_dict(cfg)) if name.lower().endswith(".cfg") else config_text(cfg)
    )
    write_config_file(_config_dir(folder), name, text, body.overwrite)
    return {"file": f"{CONFIG_FOLDER}/{name}", "bytes": len(text.encode())}


@changes.post("/proposals/{number}/xrf/roi")
async def roi(number: str, body: RoiIn, folder: ReadableProposal, readers: Readers) -> Response:
    """Counts in energy windows for every pixel of a map (read block by block)."""

    def work() -> Response:
        maps = read(
            readers,
            folder.root,
            "xrf.roi",
            clean_file(body.file),
            path=body.path,
            windows=[[w.name, w.emin, w.emax] for w in body.windows],
            zero=body.calibration.zero,
            gain=body.calibration.gain,
            quad=body.calibration.quad,
            # the answer holds pixels × windows values: at most MAX_ROI_VALUES in all
            max_pixels=min(MAX_MAP_PIXELS, MAX_ROI_VALUES // len(body.windows)),
            max_sum_bytes=MAX_SUM_BYTES,
        )
        shape = next(iter(maps.values())).shape
        return _json(
            {"shape": list(shape), "maps": {n: _array(m.ravel()) for n, m in maps.items()}}
        )

    return await run_in_threadpool(work)


@api.get("/proposals/{number}/xrf/result")
def result_info(
    number: str, folder: ReadableProposal, readers: Readers, file: Annotated[str, Query()]
) -> dict[str, Any]:
    """The groups of a map-fit result and where their maps are (for /h5/data)."""
    from beamdesk.xrf.sources import result_map_path

    file = clean_file(file)
    groups = read(readers, folder.root, "xrf.result_groups", file)
    return {"file": file, "groups": groups, "maps": {g: result_map_path(g) for g in groups}}


@changes.post("/proposals/{number}/xrf/rgb")
async def rgb(number: str, body: RgbIn, folder: ReadableProposal, readers: Readers) -> Response:
    """Three element maps scaled per channel, and the scatter of two of them."""

    def maps_of(groups: list[str]) -> dict[str, np.ndarray]:
        return read(
            readers,
            folder.root,
            "xrf.result_maps",
            clean_file(body.file),
            groups=groups,
            max_pixels=MAX_MAP_PIXELS,
        )

    return await run_in_threadpool(lambda: _json(rgb_payload(maps_of, body)))


# --- page ----------------------------------------------------------------------------------


@pages.get("/proposals/{number}/workbench", response_class=HTMLResponse)
def workbench_page(
    number: str,
    request: Request,
    user: CurrentUser,
    identity: CurrentIdentity,
    db: DB,
    settings: AppSettings,
    now: Now,
    file: str = "",
    path: str = "",
) -> Response:
    try:
        proposal_for(db, identity, number, Action.run_job, now)
        may_run = True
    except BeamDeskError:
        may_run = False
    return app_page(
        request,
        template="workbench.html",
        entry="workbench.html",
        number=number,
        file=file,
        h5path=path,
        user=user,
        identity=identity,
        db=db,
        settings=settings,
        now=now,
        extra={"may_run": may_run},
    )


router.include_router(api)
router.include_router(changes)
router.include_router(pages)
