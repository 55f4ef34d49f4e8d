"""The PaNOSC search API, so federated PaNOSC portals can harvest BeamDesk.

``GET /api/panosc/datasets|documents|instruments?filter={…}`` with the Loopback-style
filter of the PaNOSC specification (where, include, limit, skip); ``…/{id}`` and
``…/count?where={…}``. Anonymous callers see released data only; a signed-in caller also
sees what they may read (marked ``isPublic: false``). See ``beamdesk.portal.panosc``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session

from beamdesk.errors import BadRequest, Invalid
from beamdesk.portal import access, panosc
from beamdesk.portal.access import Identity
from beamdesk.portal.collections import public_collections_with_datasets
from beamdesk.web.deps import DB, CurrentIdentity, Now
from beamdesk.web.problems import not_found, sentence
from beamdesk.web.routes.collections import get_config
from beamdesk.web.schemas import Count, PanoscObject, api_errors

router = APIRouter(prefix="/api/panosc", tags=["PaNOSC search API"], responses=api_errors(400))
FILTER_HELP = (
    'PaNOSC/Loopback filter as JSON, e.g. {"where": {"techniques.name": '
    '"X-ray fluorescence"}, "include": ["parameters"], "limit": 10}'
)


def _harvest(request: Request, db: Session, identity: Identity, now: datetime) -> panosc.Harvest:
    config = get_config(request)
    return panosc.Harvest(
        db,
        access.readable_proposals(identity, now),
        now,
        facility=config.facility,
        licence=config.licence,
        base_url=config.base_url,
    )


def _filter(text: str | None, model: str) -> panosc.Filter:
    try:
        return panosc.parse_filter(text, model)
    except panosc.FilterTooLarge as exc:
        raise Invalid(sentence(f"filter too large: {exc}; split the query")) from exc
    except panosc.FilterError as exc:
        raise BadRequest(f"Invalid filter: {exc}.") from exc


def _where(text: str | None) -> dict[str, Any] | None:
    try:
        return panosc.parse_where_text(text)
    except panosc.FilterTooLarge as exc:
        raise Invalid(sentence(f"where too large: {exc}; split the query")) from exc
    except panosc.FilterError as exc:
        raise BadRequest(f"Invalid where: {exc}.") from exc


def _datasets(
    request: Request, db: Session, identity: Identity, now: datetime, where: dict[str, Any] | None
) -> list[dict[str, Any]]:
    return _harvest(request, db, identity, now).datasets(where)


def _documents(
    request: Request, db: Session, identity: Identity, now: datetime
) -> list[dict[str, Any]]:
    h = _harvest(request, db, identity, now)
    return h.documents(public_collections_with_datasets(db, now))


def _instruments(
    request: Request, db: Session, identity: Identity, now: datetime
) -> list[dict[str, Any]]:
    return _harvest(request, db, identity, now).instruments()


def _one(objects: list[dict[str, Any]], model: str, oid: str) -> dict[str, Any]:
    for obj in objects:
        if obj["id"] == oid:
            shown = panosc.project(obj, model, [panosc.Include(r) for r in panosc.RELATIONS[model]])
            assert shown is not None
            return shown
    raise not_found(f"No {model.lower()} {oid!r}, or it is not public.")


@router.get("/datasets", response_model=list[PanoscObject])
def search_datasets(
    request: Request,
    db: DB,
    identity: CurrentIdentity,
    now: Now,
    filter: str | None = Query(None, description=FILTER_HELP),
) -> list[dict[str, Any]]:
    """Datasets (catalogued files) matching the filter."""
    flt = _filter(filter, "Dataset")
    return panosc.run(_datasets(request, db, identity, now, flt.where), "Dataset", flt)


@router.get("/datasets/count", response_model=Count)
def count_datasets(
    request: Request, db: DB, identity: CurrentIdentity, now: Now, where: str | None = None
) -> dict[str, int]:
    cond = _where(where)
    rows = _datasets(request, db, identity, now, cond)
    return {"count": sum(1 for d in rows if panosc.matches(d, cond))}


@router.get("/datasets/{dataset_id}", response_model=PanoscObject)
def get_dataset(
    dataset_id: str, request: Request, db: DB, identity: CurrentIdentity, now: Now
) -> dict[str, Any]:
    where = {"id": dataset_id}
    return _one(
        [d for d in _datasets(request, db, identity, now, None) if panosc.matches(d, where)],
        "Dataset",
        dataset_id,
    )


@router.get("/documents", response_model=list[PanoscObject])
def search_documents(
    request: Request,
    db: DB,
    identity: CurrentIdentity,
    now: Now,
    filter: str | None = Query(None, description=FILTER_HELP),
) -> list[dict[str, Any]]:
    """Documents: proposals and published collections, with their datasets."""
    flt = _filter(filter, "Document")
    return panosc.run(_documents(request, db, identity, now), "Document", flt)


@router.get("/documents/count", response_model=Count)
def count_documents(
    request: Request, db: DB, identity: CurrentIdentity, now: Now, where: str | None = None
) -> dict[str, int]:
    cond = _where(where)
    return {
        "count": sum(1 for d in _documents(request, db, identity, now) if panosc.matches(d, cond))
    }


@router.get("/documents/{document_id}", response_model=PanoscObject)
def get_document(
    document_id: str, request: Request, db: DB, identity: CurrentIdentity, now: Now
) -> dict[str, Any]:
    return _one(_documents(request, db, identity, now), "Document", document_id)


@router.get("/instruments", response_model=list[PanoscObject])
def search_instruments(
    request: Request,
    db: DB,
    identity: CurrentIdentity,
    now: Now,
    filter: str | None = Query(None, description=FILTER_HELP),
) -> list[dict[str, Any]]:
    """Instruments (beamlines)."""
    flt = _filter(filter, "Instrument")
    return panosc.run(_instruments(request, db, identity, now), "Instrument", flt)


@router.get("/instruments/count", response_model=Count)
def count_instruments(
    request: Request, db: DB, identity: CurrentIdentity, now: Now, where: str | None = None
) -> dict[str, int]:
    cond = _where(where)
    return {
        "count": sum(1 for d in _instruments(request, db, identity, now) if panosc.matches(d, cond))
    }


@router.get("/instruments/{instrument_id}", response_model=PanoscObject)
def get_instrument(
    instrument_id: str, request: Request, db: DB, identity: CurrentIdentity, now: Now
) -> dict[str, Any]:
    return _one(_instruments(request, db, identity, now), "Instrument", instrument_id)
