"""Downloads of raw and processed files, with HTTP Range for resuming big transfers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from beamdesk.h5.paths import PathNotFound, resolve_in_proposal
from beamdesk.portal.auth import audit
from beamdesk.web.deps import DB, CurrentUser, ReadableProposal
from beamdesk.web.problems import not_found

router = APIRouter(prefix="/api", tags=["files"])


@router.get(
    "/proposals/{number}/files/{path:path}",
    response_class=FileResponse,
    responses={206: {"description": "Partial content (Range request)"}},
)
def download(
    number: str, path: str, folder: ReadableProposal, db: DB, user: CurrentUser
) -> FileResponse:
    """One file of the proposal; ``Range: bytes=a-b`` returns exactly those bytes."""
    try:
        target = resolve_in_proposal(folder.data_root, number, path)
    except PathNotFound as exc:
        raise not_found(f"No file {path!r} in proposal {number}.") from exc
    if not target.is_file():
        raise not_found(f"{path!r} is a folder, not a file.")
    audit(db, "data_download", user, f"{number}/{path}")
    # Starlette's FileResponse answers Range requests (206, multipart for several ranges).
    return FileResponse(target, filename=target.name, content_disposition_type="attachment")
