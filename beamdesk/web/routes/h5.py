"""h5grove-compatible HDF5 content API, per proposal: /api/proposals/{number}/h5/...

Every request passes the portal's access check (``ReadableProposal``) first; the file is
then read by a sandboxed reader worker of that proposal (``beamdesk.h5.api`` run through
``beamdesk.web.readers``), never by the server process.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse, Response

from beamdesk.h5.api import EXPORTS
from beamdesk.portal.auth import audit
from beamdesk.web.deps import DB, AppSettings, CurrentUser, ReadableProposal
from beamdesk.web.readers import Readers, read, respond
from beamdesk.web.schemas import H5Attributes, H5Entity, H5Stats, api_errors, media

router = APIRouter(prefix="/api/proposals/{number}/h5", tags=["hdf5"], responses=api_errors(413))


@router.get("/", response_class=PlainTextResponse)
def get_root(folder: ReadableProposal) -> PlainTextResponse:
    """h5grove's status check: "ok" (for a proposal the caller may read; 404 otherwise)."""
    return PlainTextResponse("ok")


@router.head("/", include_in_schema=False)
def head_root(folder: ReadableProposal) -> PlainTextResponse:
    return PlainTextResponse("ok")


@router.get("/meta", response_model=H5Entity)
def get_meta(
    folder: ReadableProposal,
    readers: Readers,
    file: str,
    path: str = "/",
    resolve_links: str = "only_valid",
) -> Response:
    """``resolve_links``: h5grove's ``only_valid`` (default), ``all`` or ``none``."""
    return respond(
        read(readers, folder.root, "h5.meta", file, path=path, resolve_links=resolve_links)
    )


@router.get("/attr", response_model=H5Attributes)
def get_attr(
    folder: ReadableProposal,
    readers: Readers,
    file: str,
    path: str = "/",
    attr_keys: Annotated[list[str] | None, Query()] = None,
) -> Response:
    return respond(read(readers, folder.root, "h5.attr", file, path=path, attr_keys=attr_keys))


@router.get("/paths", response_model=list[str])
def get_paths(folder: ReadableProposal, readers: Readers, file: str, path: str = "/") -> Response:
    return respond(read(readers, folder.root, "h5.paths", file, path=path))


@router.get("/stats", response_model=H5Stats)
def get_stats(
    folder: ReadableProposal,
    readers: Readers,
    settings: AppSettings,
    file: str,
    path: str = "/",
    selection: str | None = None,
) -> Response:
    return respond(
        read(
            readers,
            folder.root,
            "h5.stats",
            file,
            path=path,
            selection=selection,
            max_read_bytes=settings.limits.max_read_bytes,
        )
    )


@router.get(
    "/data",
    responses=media(
        "application/json",
        "application/octet-stream",
        "text/csv",
        "image/tiff",
        "image/png",
        description="The values: JSON (format=json), raw or .npy bytes, CSV, TIFF or PNG",
    ),
)
def get_data(
    folder: ReadableProposal,
    readers: Readers,
    settings: AppSettings,
    db: DB,
    user: CurrentUser,
    file: str,
    path: str = "/",
    selection: str | None = None,
    format: str = "json",
    dtype: str = "origin",
    flatten: bool = False,
    downsample: str | None = None,
    downsample_method: str = "mean",
    colormap: str = "viridis",
    scale: str = "linear",
    vmin: float | None = None,
    vmax: float | None = None,
    flip_y: bool = False,
    flip_x: bool = False,
    colorbar: bool = True,
) -> Response:
    """``format=png``: as H5Web's heatmap, row 0 at the bottom unless ``flip_y`` (its
    "Flip Y"), column 0 at the left unless ``flip_x``, with a colour bar unless
    ``colorbar=false``; one pixel per value."""
    query = {
        "selection": selection,
        "format": format,
        "dtype": dtype,
        "flatten": flatten,
        "downsample": downsample,
        "downsample_method": downsample_method,
        "colormap": colormap,
        "scale": scale,
        "vmin": vmin,
        "vmax": vmax,
        "flip_y": flip_y,
        "flip_x": flip_x,
        "colorbar": colorbar,
    }
    answer = read(
        readers,
        folder.root,
        "h5.data",
        file,
        path=path,
        query=query,
        max_read_bytes=settings.limits.max_read_bytes,
    )
    if format in EXPORTS:  # downloads, not views, are audited
        audit(
            db,
            "data_download",
            user,
            f"{folder.proposal.number}/{file}::{path}",
            detail=f"format={format}",
        )
    return respond(answer)


@router.get("/line", responses=media("text/csv", description="NeXus line scan as CSV"))
def get_line(
    folder: ReadableProposal,
    readers: Readers,
    settings: AppSettings,
    db: DB,
    user: CurrentUser,
    file: str,
    path: str,
    selection: str | None = None,
    signal: str = "",
) -> Response:
    """A NeXus line as CSV: axis, signal, errors and auxiliary signals side by side.

    ``signal`` picks the plotted dataset where the group does not name one (old files).
    """
    answer = read(
        readers,
        folder.root,
        "h5.line",
        file,
        path=path,
        selection=selection,
        signal=signal,
        max_read_bytes=settings.limits.max_read_bytes,
    )
    audit(
        db,
        "data_download",
        user,
        f"{folder.proposal.number}/{file}::{path}",
        detail="format=nexus-csv",
    )
    return respond(answer)


@router.get("/subset", responses=media("application/x-hdf5", description="A new HDF5 file"))
def get_subset(
    folder: ReadableProposal,
    readers: Readers,
    settings: AppSettings,
    db: DB,
    user: CurrentUser,
    file: str,
    paths: Annotated[list[str], Query()],
) -> Response:
    """Chosen datasets/groups with their attributes and parents' attributes, as a new file."""
    answer = read(
        readers,
        folder.root,
        "h5.subset",
        file,
        paths=paths,
        max_read_bytes=settings.limits.max_read_bytes,
    )
    audit(
        db,
        "data_download",
        user,
        f"{folder.proposal.number}/{file}::{','.join(paths)}",
        detail="format=subset",
    )
    return respond(answer)
