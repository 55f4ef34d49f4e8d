"""Analysis jobs over HTTP: submit, look at, follow (Server-Sent Events), cancel; and the
proposal's jobs page. Thin: every decision is in ``beamdesk.jobs.service``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from beamdesk.db import session_scope
from beamdesk.errors import Forbidden
from beamdesk.jobs import service
from beamdesk.jobs.service import JobRequest
from beamdesk.portal import access
from beamdesk.web.deps import DB, AppSettings, CurrentIdentity, CurrentUser, Now, SignedInUser
from beamdesk.web.schemas import JobDetail, JobSummary, api_errors, media
from beamdesk.web.security import verify_csrf

router = APIRouter()
api = APIRouter(prefix="/api", tags=["jobs"], responses=api_errors())
changes = APIRouter(
    prefix="/api",
    tags=["jobs"],
    dependencies=[Depends(verify_csrf)],
    responses=api_errors(409, 429),
)
pages = APIRouter(include_in_schema=False)
forms = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])

SSE_POLL_SECONDS = 0.25
SSE_KEEPALIVE_SECONDS = 15.0


class JobIn(BaseModel):
    kind: str = Field("xrf_map", description="Kind of analysis; 'xrf_map' fits every pixel.")
    input: str = Field(
        description="'<file>::<HDF5 path>' inside the proposal folder, e.g. "
        "'raw/scan_0001.nxs::/entry/data/spectra'."
    )
    config: dict[str, Any] | None = Field(
        None, description="Fit configuration as the BeamDesk TOML structure (see docs/xrf.md)."
    )
    config_file: str | None = Field(
        None, description="Or a configuration file of the proposal (.toml or PyMca .cfg)."
    )


def _wake(request: Request) -> None:
    runner = getattr(request.app.state, "job_runner", None)
    if runner is not None:
        runner.wake()


@changes.post("/proposals/{number}/jobs", status_code=201, response_model=JobDetail)
def submit_job(
    number: str,
    body: JobIn,
    request: Request,
    response: Response,
    db: DB,
    user: SignedInUser,
    settings: AppSettings,
    now: Now,
) -> dict[str, Any]:
    """Start an analysis job on the proposal's data (members, beamline staff, user office)."""
    job = service.submit(
        db,
        settings,
        user,
        number,
        JobRequest(body.kind, body.input, body.config, body.config_file),
        now,
    )
    db.commit()  # the runner (maybe another process) must see the row
    _wake(request)
    response.headers["Location"] = f"/api/jobs/{job.id}"
    return service.detail(job)


@api.get("/proposals/{number}/jobs", response_model=list[JobSummary])
def list_jobs(number: str, db: DB, identity: CurrentIdentity, now: Now) -> list[dict[str, Any]]:
    """The proposal's jobs, newest first."""
    proposal = service.runnable_proposal(db, identity, number, now)
    return [service.summary(j) for j in service.list_for_proposal(db, proposal)]


@api.get("/jobs/{job_id}", response_model=JobDetail)
def get_job(job_id: int, db: DB, identity: CurrentIdentity, now: Now) -> dict[str, Any]:
    """State, progress (0–1), message, log and outputs of a job."""
    return service.detail(service.visible_job(db, identity, job_id, now))


@changes.delete("/jobs/{job_id}", response_model=JobDetail)
def cancel_job(
    job_id: int, request: Request, db: DB, user: SignedInUser, identity: CurrentIdentity, now: Now
) -> dict[str, Any]:
    """Cancel a queued or running job (its owner, the PI, beamline staff, user office)."""
    job = service.visible_job(db, identity, job_id, now)
    if not service.may_cancel(identity, job, now):
        raise Forbidden(f"You may not cancel job {job_id}.")
    service.cancel(db, job, by=user.username)
    db.commit()
    _wake(request)
    return service.detail(job)


def _snapshot(request: Request, job_id: int) -> dict[str, Any] | None:
    with session_scope(request.app.state.sessionmaker) as db:
        return service.summary_of(db, job_id)


@api.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses=media("text/event-stream", description="Server-sent events: the job's state"),
)
def job_events(
    job_id: int, request: Request, db: DB, identity: CurrentIdentity, now: Now
) -> StreamingResponse:
    """Server-Sent Events: ``progress`` whenever the job changes, ``end`` when it is over."""
    service.visible_job(db, identity, job_id, now)

    async def stream() -> AsyncIterator[str]:
        last: dict[str, Any] | None = None
        quiet = 0.0
        while not await request.is_disconnected():
            snap = await run_in_threadpool(_snapshot, request, job_id)
            if snap is None:
                return
            if snap != last:
                last, quiet = snap, 0.0
                final = snap["state"] in ("done", "failed", "cancelled")
                yield f"event: {'end' if final else 'progress'}\ndata: {json.dumps(snap)}\n\n"
                if final:
                    return
            elif quiet >= SSE_KEEPALIVE_SECONDS:
                quiet = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(SSE_POLL_SECONDS)
            quiet += SSE_POLL_SECONDS

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# --- the jobs page -----------------------------------------------------------------------


def _page_proposal(db: Session, identity: access.Identity, number: str, now: Any) -> Any:
    return service.runnable_proposal(db, identity, number, now)


@pages.get("/proposals/{number}/jobs", response_class=HTMLResponse)
def jobs_page(
    number: str, request: Request, db: DB, user: CurrentUser, identity: CurrentIdentity, now: Now
) -> Response:
    if user is None:
        return RedirectResponse(f"/login?next=/proposals/{number}/jobs", status_code=303)
    proposal = _page_proposal(db, identity, number, now)
    jobs = service.list_for_proposal(db, proposal)
    messages = request.session.pop("flash", [])
    return request.app.state.templates.TemplateResponse(
        request,
        "jobs.html",
        {
            "user": user,
            "messages": messages,
            "proposal": proposal,
            "jobs": [service.summary(j) for j in jobs],
            "cancellable": {
                j.id for j in jobs if not j.is_final and service.may_cancel(identity, j, now)
            },
        },
    )


@forms.post("/proposals/{number}/jobs")
def submit_form(
    number: str,
    request: Request,
    db: DB,
    user: SignedInUser,
    settings: AppSettings,
    now: Now,
    input: str = Form(...),
    config_file: str = Form(...),
) -> Response:
    try:
        job = service.submit(
            db, settings, user, number, JobRequest("xrf_map", input, None, config_file), now
        )
    except (service.InvalidJob, service.QuotaExceeded) as exc:
        request.session.setdefault("flash", []).append(["error", str(exc)])
    else:
        db.commit()
        _wake(request)
        request.session.setdefault("flash", []).append(["ok", f"Job {job.id} queued."])
    return RedirectResponse(f"/proposals/{number}/jobs", status_code=303)


@forms.post("/proposals/{number}/jobs/{job_id}/cancel")
def cancel_form(
    number: str,
    job_id: int,
    request: Request,
    db: DB,
    user: SignedInUser,
    identity: CurrentIdentity,
    now: Now,
) -> Response:
    job = service.visible_job(db, identity, job_id, now)
    if not service.may_cancel(identity, job, now):
        raise Forbidden(f"You may not cancel job {job_id}.")
    if not job.is_final:
        service.cancel(db, job, by=user.username)
    db.commit()
    _wake(request)
    return RedirectResponse(f"/proposals/{number}/jobs", status_code=303)


for _sub in (api, changes, pages, forms):
    router.include_router(_sub)
