"""Open JupyterLab from the portal, and "open in a notebook" for any dataset or slice.

- ``GET /jupyter[?next=…]``: a signed-in person gets a one-time ticket bound to this
  browser and is sent to the hub; the hub also sends people here when they arrive unsigned.
- ``GET /jupyter/confirm?ticket=…&hub=…``: the hub sends the browser back here with the
  hash of its own cookie; if this browser's session asked for the ticket, the ticket is
  bound to that cookie and the browser goes on to the hub, which signs it in
  (``beamdesk.jupyter.signin`` explains why: login CSRF).
- ``POST /proposals/{number}/notebook`` (form: ``file``, ``path``, ``selection``): makes a
  notebook that loads exactly that data, saves it in the person's Jupyter server through
  the hub's API, and opens it in JupyterLab.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from beamdesk.errors import BadRequest, Forbidden
from beamdesk.h5.paths import PathNotFound, clean_relative
from beamdesk.jobs.service import JobNotFound, visible_job
from beamdesk.jupyter.hubapi import ticket_login_url
from beamdesk.jupyter.layout import hub_layout
from beamdesk.jupyter.opening import (
    NotebookToOpen,
    dataset_notebook_to_open,
    job_notebook_to_open,
    save_in_server,
)
from beamdesk.jupyter.signin import (
    TicketRefused,
    confirm_ticket,
    issue_ticket,
    new_binding_secret,
    signin_url,
)
from beamdesk.portal.auth import audit
from beamdesk.portal.models import User
from beamdesk.web.deps import (
    DB,
    AppSettings,
    CurrentIdentity,
    CurrentUser,
    Now,
    ReadableProposal,
    SignedInUser,
)
from beamdesk.web.problems import not_found
from beamdesk.web.ratelimit import client_ip
from beamdesk.web.readers import Readers, read
from beamdesk.web.security import verify_csrf

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}
# The portal's half of a ticket's browser binding: a random secret in the signed session
# (new at every sign-in), of which each ticket stores the SHA-256.
HUB_BINDING = "hub_binding"


def safe_next(next_path: str) -> str:
    """Only paths on the hub: no scheme, no host, no '//' or '..' tricks."""
    if (
        next_path.startswith(("/hub/", "/user/"))
        and "//" not in next_path
        and ".." not in next_path
        and "\\" not in next_path
        and len(next_path) < 1000
    ):
        return next_path
    return "/hub/"


def sign_in_page(
    request: Request, db: DB, settings: AppSettings, user: User, next_path: str
) -> Response:
    """A page that sends the browser on to the hub with a fresh one-time sign-in link."""
    hub = hub_layout(settings)
    browser = request.session.get(HUB_BINDING)
    if not isinstance(browser, str) or len(browser) < 32:
        browser = request.session[HUB_BINDING] = new_binding_secret()
    ticket = issue_ticket(
        db, settings.secret_key, user, next_path=safe_next(next_path), browser=browser
    )
    db.commit()  # the hub reads the ticket from its own connection
    what = "Your notebook is ready." if "/lab/tree/" in next_path else ""
    # no-store: the link is a credential for a minute.
    return request.app.state.templates.TemplateResponse(
        request,
        "jupyter_open.html",
        {"user": user, "messages": [], "link": ticket_login_url(hub, ticket), "what": what},
        headers=NO_STORE,
    )


@router.get("/jupyter")
def open_jupyter(
    request: Request,
    db: DB,
    settings: AppSettings,
    user: CurrentUser,
    next: Annotated[str, Query(max_length=1000)] = "/hub/",
) -> Response:
    if user is None:
        back = f"/jupyter?next={quote(next, safe='')}"
        return RedirectResponse(f"/login?next={quote(back, safe='')}", status_code=303)
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        # An API token reads data; it must not become a session that runs code.
        raise Forbidden("Open JupyterLab from a signed-in browser session.")
    return sign_in_page(request, db, settings, user, next)


@router.get("/jupyter/confirm")
def confirm_jupyter(
    request: Request,
    db: DB,
    settings: AppSettings,
    user: SignedInUser,
    now: Now,
    ticket: Annotated[str, Query(max_length=500)],
    hub: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """Step 2 of the hub's sign-in: only the browser that asked for the ticket gets on."""
    browser = request.session.get(HUB_BINDING)
    try:
        confirm_ticket(
            db,
            settings.secret_key,
            ticket,
            browser=browser if isinstance(browser, str) else "",
            user_id=user.id,
            hub_hash=hub,
            now=now,
            ip=client_ip(request),
        )
    except TicketRefused as exc:
        db.commit()  # the refusal stays in the audit log
        raise BadRequest(
            "This sign-in link was made for another browser or person, or it expired. "
            "Open JupyterLab from BeamDesk again.",
            title="Sign-in link refused",
        ) from exc
    db.commit()  # the hub reads the binding from its own connection
    target = signin_url(hub_layout(settings).url, ticket)
    return RedirectResponse(target, status_code=303, headers=NO_STORE)


@router.post("/proposals/{number}/notebook", dependencies=[Depends(verify_csrf)])
def open_in_notebook(
    number: str,
    request: Request,
    folder: ReadableProposal,
    readers: Readers,
    db: DB,
    settings: AppSettings,
    user: SignedInUser,
    file: Annotated[str, Form(max_length=4096)],
    path: Annotated[str, Form(max_length=4096)] = "",
    selection: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        raise Forbidden("Open notebooks from a signed-in browser session.")
    try:
        file = clean_relative(file)
    except PathNotFound as exc:
        raise not_found(f"No file {file!r} in proposal {number}.") from exc
    found = read(readers, folder.root, "notebook.dataset", file, target=path.strip())
    dataset = found["path"]
    notebook = dataset_notebook_to_open(number, file, dataset, tuple(found["shape"]), selection)
    audit(db, "notebook_opened", user, f"{number}/{file}", f"{dataset} [{selection}]")
    return put_and_open(db, settings, user, notebook)


def put_and_open(db: DB, settings: AppSettings, user: User, notebook: NotebookToOpen) -> Response:
    """Save the notebook in the user's server (started if needed), then open it."""
    lab = save_in_server(hub_layout(settings), user.username, notebook)
    db.commit()
    # Post/redirect/get: a reload of the next page does not make the notebook again.
    return RedirectResponse(f"/jupyter?next={quote(lab, safe='')}", status_code=303)


@router.post("/jobs/{job_id}/notebook", dependencies=[Depends(verify_csrf)])
def open_job_in_notebook(
    job_id: int,
    request: Request,
    db: DB,
    settings: AppSettings,
    user: SignedInUser,
    identity: CurrentIdentity,
    now: Now,
) -> Response:
    """A notebook that re-runs this analysis with its configuration and opens its results."""
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        raise Forbidden("Open notebooks from a signed-in browser session.")
    try:
        job = visible_job(db, identity, job_id, now)
    except JobNotFound as exc:
        raise not_found(str(exc)) from exc
    number = job.proposal.number
    notebook = job_notebook_to_open(number, job.id, job.kind, job.parameters)
    audit(db, "notebook_opened", user, f"{number}/job/{job.id}", job.kind)
    return put_and_open(db, settings, user, notebook)
