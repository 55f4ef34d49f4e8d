"""Downloads of raw and processed files, with HTTP Range for resuming big transfers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from beamdesk.portal.auth import audit
from beamdesk.web.deps import DB, CurrentUser, ReadableProposal

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
    target = folder.file(path)
    audit(db, "data_download", user, f"{number}/{path}")
    # Starlette's FileResponse answers Range requests (206, multipart for several ranges).
    return FileResponse(target, filename=target.name, content_disposition_type="attachment")
