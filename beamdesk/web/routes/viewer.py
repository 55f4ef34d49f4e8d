"""The HDF5/NeXus viewer page and the folder listing its file browser uses.

The page is server-rendered around the built React app (frontend/src/viewer, H5Web); the
app reads its settings from data- attributes (the CSP allows no inline script) and talks
to the h5grove-compatible API in routes/h5.py with the session cookie.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from beamdesk.h5.browse import list_folder
from beamdesk.h5.paths import PathNotFound, clean_relative, proposal_root, resolve_in_proposal
from beamdesk.portal.access import Action
from beamdesk.web.deps import (
    DB,
    AppSettings,
    CurrentIdentity,
    CurrentUser,
    Now,
    ReadableProposal,
)
from beamdesk.web.frontend import MANIFEST, entry_assets
from beamdesk.web.problems import not_found
from beamdesk.web.routes.pages import proposal_or_sign_in
from beamdesk.web.schemas import FolderListing, api_errors
from beamdesk.web.security import VIEWER_CSP

router = APIRouter(responses=api_errors())


def app_page(
    request: Request,
    *,
    template: str,
    entry: str,
    number: str,
    file: str,
    h5path: str,
    user: CurrentUser,
    identity: CurrentIdentity,
    db: DB,
    settings: AppSettings,
    now: Now,
    extra: dict[str, Any] | None = None,
) -> Response:
    """A page around a built front end (viewer, workbench) for one file of a proposal.

    Readers only (anonymous visitors are sent to sign in, others get 404); a file that is
    not in the proposal leaves the page usable with a 404 status and a message.
    """
    proposal = proposal_or_sign_in(request, db, identity, user, number, Action.read_data, now)
    if isinstance(proposal, RedirectResponse):
        return proposal
    status, problem, has_data = 200, "", True
    try:
        proposal_root(settings.data_root, number)
    except PathNotFound:
        has_data, file = False, ""
    if file:
        try:
            file = clean_relative(file)
            if not resolve_in_proposal(settings.data_root, number, file).is_file():
                raise PathNotFound(file)
        except PathNotFound:
            status, problem = 404, f"No file {file!r} in this proposal."
            file = ""
    context: dict[str, Any] = {
        "user": user,
        "messages": [("error", problem)] if problem else [],
        "p": proposal,
        "file": file,
        "h5path": h5path,
        "has_data": has_data,
        # Tests point app.state.frontend_manifest elsewhere to see the "not built" page.
        "assets": entry_assets(entry, getattr(request.app.state, "frontend_manifest", MANIFEST)),
        **(extra or {}),
    }
    response = request.app.state.templates.TemplateResponse(
        request, template, context, status_code=status
    )
    # H5Web and @h5web/lib need 'unsafe-eval' (see VIEWER_CSP: scijs ndarray compiles
    # accessors with Function()); the middleware keeps a page's own policy.
    response.headers["content-security-policy"] = VIEWER_CSP
    return response


@router.get("/proposals/{number}/viewer", response_class=HTMLResponse, include_in_schema=False)
def viewer_page(
    number: str,
    request: Request,
    user: CurrentUser,
    identity: CurrentIdentity,
    db: DB,
    settings: AppSettings,
    now: Now,
    file: str = "",
    path: str = "/",
) -> Response:
    return app_page(
        request,
        template="viewer.html",
        entry="viewer.html",
        number=number,
        file=file,
        h5path=path or "/",
        user=user,
        identity=identity,
        db=db,
        settings=settings,
        now=now,
        extra={
            "api_url": f"/api/proposals/{number}/h5",
            "browse_url": f"/api/proposals/{number}/browse",
        },
    )


@router.get("/api/proposals/{number}/browse", tags=["files"], response_model=FolderListing)
def browse(number: str, folder: ReadableProposal, path: str = "") -> dict[str, Any]:
    """One folder of the proposal: sub-folders, then files with size, date and HDF5-ness.

    ``path`` is relative to the proposal folder ("" for the folder itself); anything
    outside it, including through symlinks, is 404 like a missing folder.
    """
    try:
        listing = list_folder(folder.data_root, number, path)
    except PathNotFound as exc:
        raise not_found(f"No folder {path!r} in proposal {number}.") from exc
    return {
        "path": listing.path,
        "parent": listing.parent,
        "truncated": listing.truncated,
        "entries": [
            {
                "name": e.name,
                "path": e.path,
                "kind": e.kind,
                "size": e.size,
                "mtime": e.mtime.isoformat().replace("+00:00", "Z"),
                "is_hdf5": e.is_hdf5,
            }
            for e in listing.entries
        ],
    }
