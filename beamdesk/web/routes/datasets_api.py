"""Catalogue API: a proposal's datasets, and search across everything the caller may read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel

from beamdesk.portal.access import Action
from beamdesk.portal.catalogue import (
    PUBLIC_FIELDS,
    DatasetQuery,
    proposal_dataset_records,
    search_datasets,
)
from beamdesk.portal.models import Dataset
from beamdesk.web import schemas
from beamdesk.web.deps import DB, CurrentIdentity, Now, proposal_for

router = APIRouter(prefix="/api", tags=["catalogue"], responses=schemas.api_errors())


class DatasetOut(BaseModel):
    proposal: str
    path: str
    size: int
    mtime: datetime
    sha256: str
    is_hdf5: bool
    title: str
    start_time: datetime | None
    end_time: datetime | None
    instrument: str
    nx_classes: str
    kind: str
    error: str
    provenance: dict[str, Any] | None
    parameters: dict[str, Any] | None

    @classmethod
    def of(cls, row: Dataset, number: str) -> DatasetOut:
        return cls(proposal=number, **{name: getattr(row, name) for name in PUBLIC_FIELDS})


@router.get("/proposals/{number}/datasets", response_model=schemas.Page[DatasetOut])
def list_proposal_datasets(
    number: str,
    db: DB,
    identity: CurrentIdentity,
    now: Now,
    q: str = Query("", max_length=200, description="Words in the path or title"),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
) -> schemas.Page[DatasetOut]:
    """The catalogue entries of one proposal, by path; ``path`` is relative to its folder."""
    proposal = proposal_for(db, identity, number, Action.read_data, now)
    records, total = proposal_dataset_records(db, proposal, text=q, limit=limit, offset=offset)
    # The busiest listing: rows go straight to JSON (same shape as DatasetOut, which
    # documents it) instead of through ORM objects and pydantic validation.
    page = {
        "items": [{"proposal": number, **r} for r in records],
        "total": total,
        "limit": limit,
        "offset": offset,
        "total_exact": True,
    }
    return Response(
        orjson.dumps(page, option=orjson.OPT_UTC_Z),  # type: ignore[return-value]
        media_type="application/json",
    )


@router.get("/datasets", response_model=schemas.Page[DatasetOut])
def search(
    db: DB,
    identity: CurrentIdentity,
    now: Now,
    q: str = Query(
        "",
        max_length=200,
        description="Words in path, title, instrument or proposal title (all must match)",
    ),
    proposal: str = Query("", max_length=32),
    beamline: str = Query("", max_length=64),
    since: datetime | None = Query(None, description="Measured (or written) at or after"),
    until: datetime | None = Query(None, description="Measured (or written) before"),
    kind: str = Query("", pattern="^(|raw|processed)$"),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
) -> schemas.Page[DatasetOut]:
    """Datasets the caller may read (anonymous: released ones) matching every filter."""
    query = DatasetQuery(
        text=q, proposal=proposal, beamline=beamline, since=since, until=until, kind=kind
    )
    rows, total, exact = search_datasets(db, identity, now, query, limit=limit, offset=offset)
    return schemas.Page(
        items=[DatasetOut.of(r, number) for r, number in rows],
        total=total,
        total_exact=exact,
        limit=limit,
        offset=offset,
    )
