"""The "Find data" page: search the catalogue across everything the visitor may read."""

from __future__ import annotations

from datetime import UTC, datetime, time
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from beamdesk.portal.catalogue import DatasetQuery, search_datasets
from beamdesk.portal.directory import beamline_names
from beamdesk.web.deps import DB, CurrentIdentity, CurrentUser, Now
from beamdesk.web.routes.pages import render

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50


def _day(text: str, end: bool = False) -> datetime | None:
    """A yyyy-mm-dd from a date field as a UTC instant (the end of that day when ``end``)."""
    try:
        day = datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        return None
    moment = datetime.combine(day, time.max if end else time.min, tzinfo=UTC)
    return moment


@router.get("/datasets", response_class=HTMLResponse)
def find_data(
    request: Request,
    user: CurrentUser,
    identity: CurrentIdentity,
    db: DB,
    now: Now,
    q: str = Query("", max_length=200),
    beamline: str = Query("", max_length=64),
    proposal: str = Query("", max_length=32),
    since: str = Query("", max_length=10),
    until: str = Query("", max_length=10),
    kind: str = Query("", pattern="^(|raw|processed)$"),
    page: int = Query(1, ge=1, le=10_000),
) -> Response:
    query = DatasetQuery(
        text=q,
        beamline=beamline,
        proposal=proposal,
        kind=kind,
        since=_day(since),
        until=_day(until, end=True),
    )
    rows, total, exact = search_datasets(
        db, identity, now, query, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    form = {
        "q": q,
        "beamline": beamline,
        "proposal": proposal,
        "since": since,
        "until": until,
        "kind": kind,
    }
    keep = urlencode({k: v for k, v in form.items() if v})
    return render(
        request,
        "datasets.html",
        user,
        rows=rows,
        total=total,
        exact=exact,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        form=form,
        query=f"{keep}&" if keep else "",
        beamlines=beamline_names(db),
    )
