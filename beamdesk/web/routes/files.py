"""Downloads of raw and processed files, with HTTP Range for resuming big transfers."""

from __future__ import annotations

import os
from pathlib import PurePosixPath

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from beamdesk.h5.paths import PathNotFound, open_beneath
from beamdesk.portal.auth import audit
from beamdesk.web.deps import DB, CurrentUser, ReadableProposal
from beamdesk.web.problems import not_found
from beamdesk.web.schemas import api_errors, media

router = APIRouter(prefix="/api", tags=["files"], responses=api_errors())


@router.get(
    "/proposals/{number}/files/{path:path}",
    response_class=FileResponse,
    responses={
        **media("*/*", description="The file, typed by its name"),
        206: {"description": "Partial content (Range request)", **media("*/*")[200]},
        **api_errors(416),
    },
)
def download(
    number: str, path: str, folder: ReadableProposal, db: DB, user: CurrentUser
) -> FileResponse:
    """One file of the proposal; ``Range: bytes=a-b`` returns exactly those bytes."""
    try:
        fd = open_beneath(folder.root, path)
    except PathNotFound:
        raise not_found(f"No file {path!r} in proposal {number}.") from None
    audit(db, "data_download", user, f"{number}/{path}")
    # The descriptor, opened beneath the proposal by the kernel, is what is sent (through
    # its /proc name, which reopens that very file): a symlink swapped in after the check
    # cannot redirect the download. Starlette's FileResponse answers Range requests.
    return FileResponse(
        f"/proc/self/fd/{fd}",
        filename=PurePosixPath(path).name,
        stat_result=os.fstat(fd),
        content_disposition_type="attachment",
        background=BackgroundTask(os.close, fd),
    )
