"""The XRF workbench's API: fit one spectrum, name lines, load/save configurations, ROI
maps and RGB-correlator data, and the workbench page itself.

Thin: the science is in ``beamdesk.xrf`` (fit, quant, identify, roi, rgb, config); this
module picks the spectrum the user asked for inside the proposal folder (confined by
``beamdesk.h5.paths``), guards sizes, runs the engine in a worker thread and turns its
results into JSON. A proposal the caller may not read answers 404.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field, model_validator
from starlette.concurrency import run_in_threadpool

from beamdesk.errors import BeamDeskError, NotFound
from beamdesk.h5.paths import PathNotFound, clean_relative
from beamdesk.portal.access import Action
from beamdesk.portal.configs import CONFIG_FOLDER, config_files, config_name, save_config
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
from beamdesk.web.schemas import (
    ConfigList,
    ConfigOut,
    ConfigSaved,
    ElementTable,
    FitResult,
    Identified,
    ResultInfo,
    RgbOut,
    RoiMaps,
    SpectraInFile,
    SpectrumOut,
    api_errors,
)
from beamdesk.web.security import verify_csrf
from beamdesk.xrf.payloads import (
    as_array,
    config_payload,
    config_text,
    element_table,
    fit_payload,
    floats,
    identified_lines,
    parse_config,
    rgb_payload,
)

router = APIRouter()
api = APIRouter(prefix="/api", tags=["xrf"], responses=api_errors(413))
changes = APIRouter(
    prefix="/api",
    tags=["xrf"],
    dependencies=[Depends(verify_csrf)],
    responses=api_errors(409, 413),
)
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


def _config(folder: ReadableFolder, choice: ConfigChoice) -> Any:
    from beamdesk.xrf.config import load_config

    if choice.config is not None:
        return parse_config(choice.config)
    return load_config(folder.file(str(choice.config_file)))


def _json(payload: Any) -> Response:
    """A JSON answer encoded at once, numpy arrays straight from their buffers (no Python
    float per value); call it in the thread pool, not on the event loop."""
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), media_type=JSON)


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


# --- API -----------------------------------------------------------------------------------


@changes.post("/proposals/{number}/xrf/fit", response_model=FitResult)
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


@changes.post("/proposals/{number}/xrf/spectrum", response_model=SpectrumOut)
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
    return {"counts": floats(out["counts"]), "map_shape": out["map_shape"]}


@api.get("/proposals/{number}/xrf/spectra", response_model=SpectraInFile)
def spectra_in_file(
    number: str, folder: ReadableProposal, readers: Readers, file: Annotated[str, Query()]
) -> dict[str, Any]:
    """Datasets of an HDF5 file that look like spectra or maps of spectra (numeric, last
    axis ≥ 64 channels), the likeliest first: marked ``interpretation = spectrum``, then
    the most pixels."""
    file = clean_file(file)
    return {"file": file, "datasets": read(readers, folder.root, "xrf.spectra", file)}


@api.get("/xrf/identify", response_model=Identified)
def identify(
    user: SignedInUser,
    energy: Annotated[float, Query(gt=0, le=200, description="keV")],
    tolerance: Annotated[float, Query(gt=0, le=1)] = 0.05,
    excitation: Annotated[float | None, Query(gt=0, le=200)] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 8,
) -> dict[str, Any]:
    """Element lines within ``tolerance`` keV of ``energy``, strongest and closest first."""
    return {"energy": energy, "lines": identified_lines(energy, tolerance, excitation, limit)}


@api.get("/xrf/elements", response_model=ElementTable)
def elements(
    user: SignedInUser, excitation: Annotated[float | None, Query(gt=0, le=200)] = None
) -> dict[str, Any]:
    """The periodic table of the element picker: main line energies of K, L and M."""
    return {"excitation": excitation, "elements": list(element_table(excitation))}


@api.get("/proposals/{number}/xrf/config", response_model=ConfigOut)
def load_config_file(
    number: str,
    folder: ReadableProposal,
    file: Annotated[str, Query(description="e.g. config/xrf_map.cfg")],
    to: Literal["toml", "cfg"] | None = None,
) -> dict[str, Any]:
    """A configuration file of the proposal as the TOML structure, and its text in the
    other format when ``to`` is given (conversion TOML ⇄ PyMca .cfg)."""
    path = folder.file(file)
    return {"file": clean_relative(file), **config_payload(path, to)}


@api.get("/proposals/{number}/xrf/configs", response_model=ConfigList)
def list_configs(number: str, folder: ReadableProposal) -> dict[str, Any]:
    """The configuration files in the proposal's config/ folder."""
    return {"folder": CONFIG_FOLDER, "files": config_files(folder.root)}


@changes.post("/proposals/{number}/xrf/config/save", status_code=201, response_model=ConfigSaved)
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
    proposal_for(db, identity, number, Action.run_job, now)  # members and staff only
    name = config_name(body.name)
    cfg = parse_config(body.config)
    text = config_text(cfg, "cfg" if name.lower().endswith(".cfg") else "toml")
    saved = save_config(folder.root, name, text, body.overwrite)
    return {"file": saved, "bytes": len(text.encode())}


@changes.post("/proposals/{number}/xrf/roi", response_model=RoiMaps)
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
            {"shape": list(shape), "maps": {n: as_array(m.ravel()) for n, m in maps.items()}}
        )

    return await run_in_threadpool(work)


@api.get("/proposals/{number}/xrf/result", response_model=ResultInfo)
def result_info(
    number: str, folder: ReadableProposal, readers: Readers, file: Annotated[str, Query()]
) -> dict[str, Any]:
    """The groups of a map-fit result and where their maps are (for /h5/data)."""
    from beamdesk.xrf.sources import result_map_path

    file = clean_file(file)
    groups = read(readers, folder.root, "xrf.result_groups", file)
    return {"file": file, "groups": groups, "maps": {g: result_map_path(g) for g in groups}}


@changes.post("/proposals/{number}/xrf/rgb", response_model=RgbOut)
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

    channels = {"red": body.red, "green": body.green, "blue": body.blue}
    return await run_in_threadpool(lambda: _json(rgb_payload(maps_of, channels, body.scatter)))


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
