"""Data collections: edit (PI, user office), publish with a DOI, public landing pages,
citation exports, and the whole collection as a zip streamed without touching the disk.

Single files are downloaded through ``/api/proposals/{number}/files/{path}`` (Range
requests for resuming), so one route decides who may read data.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from markupsafe import Markup
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from zipstream import ZIP_STORED, ZipStream

from beamdesk.errors import Conflict, Forbidden
from beamdesk.h5.paths import PathNotFound, open_beneath, proposal_root
from beamdesk.portal import access, citation, datacite
from beamdesk.portal import collections as coll
from beamdesk.portal.access import Action, Identity
from beamdesk.portal.auth import audit
from beamdesk.portal.collections import Collection, CollectionInput
from beamdesk.portal.minting import Minter, minter_for
from beamdesk.portal.models import Proposal
from beamdesk.portal.proposals import InvalidRequest, PermissionDenied
from beamdesk.settings import Settings
from beamdesk.web.deps import (
    DB,
    AppSettings,
    CurrentIdentity,
    CurrentUser,
    Now,
    proposal_for,
)
from beamdesk.web.problems import not_found, sentence
from beamdesk.web.routes.pages import flash, proposal_or_sign_in, render, to_login
from beamdesk.web.schemas import CollectionOut, api_errors
from beamdesk.web.security import verify_csrf

pages = APIRouter(include_in_schema=False)
forms = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])
api = APIRouter(prefix="/api", tags=["collections"], responses=api_errors(409))
api_changes = APIRouter(
    prefix="/api",
    tags=["collections"],
    dependencies=[Depends(verify_csrf)],
    responses=api_errors(409),
)


# ------------------------------------------------------------------ dependencies & helpers
def get_config(request: Request) -> coll.PublicationDetails:
    """Publisher, licence and landing URL base; tests may set ``app.state.publication``."""
    config = getattr(request.app.state, "publication", None)
    if config is None:
        settings: Settings = request.app.state.settings
        config = coll.publication_config(settings)
        request.app.state.publication = config
    return config


def get_minter(request: Request) -> Minter:
    """The DOI backend from ``BEAMDESK_DATACITE_*``; tests may set ``app.state.minter``."""
    minter = getattr(request.app.state, "minter", None)
    if minter is None:
        minter = minter_for(request.app.state.settings.datacite)
        request.app.state.minter = minter
    return minter


Config = Annotated[coll.PublicationDetails, Depends(get_config)]
DoiMinter = Annotated[Minter, Depends(get_minter)]


def visible_collection(
    db: Session, identity: Identity, collection_id: int, now: datetime
) -> Collection:
    collection = coll.load_collection(db, collection_id)
    if collection is None or not coll.may_see(identity, collection, now):
        raise not_found(f"No collection {collection_id}, or you may not see it.")
    return collection


def _relation(identity: Identity, collection: Collection, now: datetime) -> access.Relation:
    return access.relation(identity, collection.proposal, now)


def _json_ld(meta: datacite.Metadata) -> Markup:
    # "<" escaped so no text in the metadata can close the script element.
    text = json.dumps(citation.json_ld(meta), ensure_ascii=False).replace("<", "\\u003c")
    return Markup(text)  # safe: "<" escaped, and JSON-LD is never executed


# ------------------------------------------------------------------ pages
@pages.get("/proposals/{number}/collections", response_class=HTMLResponse)
def proposal_collections(
    number: str,
    request: Request,
    user: CurrentUser,
    identity: CurrentIdentity,
    db: DB,
    now: Now,
) -> Response:
    proposal = proposal_or_sign_in(request, db, identity, user, number, Action.view_proposal, now)
    if isinstance(proposal, RedirectResponse):
        return proposal
    rel = access.relation(identity, proposal, now)
    rows = [
        c
        for c in coll.collections_of(db, proposal)
        if access.may_see_collection(rel, c.published_at is not None)
    ]
    return render(
        request,
        "collections.html",
        user,
        p=proposal,
        collections=rows,
        may_edit=access.may_edit_collection(rel),
        now=now,
    )


def _form_page(
    request: Request,
    user: Any,
    db: Session,
    proposal: Proposal,
    collection: Collection | None,
    config: coll.PublicationDetails,
    form: dict[str, Any] | None = None,
) -> Response:
    datasets = coll.collectable_datasets(db, proposal)
    if form is None:
        if collection is not None:
            form = {
                "title": collection.title,
                "abstract": collection.abstract,
                "creators": coll.format_creators(collection.creators),
                "keywords": ", ".join(collection.keywords),
                "techniques": ", ".join(collection.techniques),
                "instrument": collection.instrument,
                "licence": collection.licence,
                "related_dois": "\n".join(collection.related_dois),
                "dataset_ids": {i.dataset_id for i in collection.items},
            }
        else:
            form = {
                "title": proposal.title,
                "abstract": proposal.abstract,
                "creators": coll.format_creators(coll.default_creators(proposal)),
                "keywords": "",
                "techniques": proposal.beamline.techniques if proposal.beamline else "",
                "instrument": proposal.beamline.name if proposal.beamline else "",
                "licence": config.licence,
                "related_dois": "",
                "dataset_ids": {d.id for d in datasets},
            }
    return render(
        request,
        "collection_edit.html",
        user,
        p=proposal,
        c=collection,
        datasets=datasets,
        form=form,
        licences=sorted(datacite.LICENCES),
    )


def _input(
    title: str,
    abstract: str,
    creators: str,
    keywords: str,
    techniques: str,
    instrument: str,
    licence: str,
    related_dois: str,
    dataset_ids: list[int],
) -> CollectionInput:
    return CollectionInput(
        title=title,
        abstract=abstract,
        creators=coll.parse_creators(creators),
        keywords=coll.split_list(keywords),
        techniques=coll.split_list(techniques),
        instrument=instrument.strip(),
        licence=licence.strip() or None,
        related_dois=coll.split_list(related_dois),
        dataset_ids=dataset_ids,
    )


@pages.get("/proposals/{number}/collections/new", response_class=HTMLResponse)
def new_collection_form(
    number: str,
    request: Request,
    user: CurrentUser,
    identity: CurrentIdentity,
    db: DB,
    now: Now,
    config: Config,
) -> Response:
    if user is None:
        return to_login(request)
    proposal = proposal_for(db, identity, number, Action.view_proposal, now)
    if not access.may_edit_collection(access.relation(identity, proposal, now)):
        raise Forbidden("Only the principal investigator or the user office make collections.")
    return _form_page(request, user, db, proposal, None, config)


FormText = Annotated[str, Form()]


@forms.post("/proposals/{number}/collections/new", response_class=HTMLResponse)
def create_collection_form(
    number: str,
    request: Request,
    user: CurrentUser,
    identity: CurrentIdentity,
    db: DB,
    now: Now,
    config: Config,
    title: FormText = "",
    abstract: FormText = "",
    creators: FormText = "",
    keywords: FormText = "",
    techniques: FormText = "",
    instrument: FormText = "",
    licence: FormText = "",
    related_dois: FormText = "",
    dataset_ids: Annotated[list[int] | None, Form()] = None,
) -> Response:
    if user is None:
        return to_login(request)
    proposal = proposal_for(db, identity, number, Action.view_proposal, now)
    data = _input(
        title,
        abstract,
        creators,
        keywords,
        techniques,
        instrument,
        licence,
        related_dois,
        dataset_ids or [],
    )
    try:
        collection = coll.create_collection(db, identity, proposal, data, config, now=now)
    except (PermissionDenied, InvalidRequest) as exc:
        request.session["flash"] = [["error", sentence(str(exc))]]
        form = {
            "title": title,
            "abstract": abstract,
            "creators": creators,
            "keywords": keywords,
            "techniques": techniques,
            "instrument": instrument,
            "licence": licence,
            "related_dois": related_dois,
            "dataset_ids": set(dataset_ids or []),
        }
        return _form_page(request, user, db, proposal, None, config, form)
    db.commit()
    flash(request, "ok", "Collection saved. Publish it to get its DOI.")
    return RedirectResponse(f"/collections/{collection.id}", status_code=303)


@pages.get("/collections/{collection_id}/edit", response_class=HTMLResponse)
def edit_collection_form(
    collection_id: int,
    request: Request,
    user: CurrentUser,
    identity: CurrentIdentity,
    db: DB,
    now: Now,
    config: Config,
) -> Response:
    if user is None:
        return to_login(request)
    collection = visible_collection(db, identity, collection_id, now)
    if not access.may_edit_collection(_relation(identity, collection, now)):
        raise Forbidden("Only the principal investigator or the user office edit collections.")
    return _form_page(request, user, db, collection.proposal, collection, config)


@forms.post("/collections/{collection_id}/edit", response_class=HTMLResponse)
def edit_collection(
    collection_id: int,
    request: Request,
    user: CurrentUser,
    identity: CurrentIdentity,
    db: DB,
    now: Now,
    config: Config,
    title: FormText = "",
    abstract: FormText = "",
    creators: FormText = "",
    keywords: FormText = "",
    techniques: FormText = "",
    instrument: FormText = "",
    licence: FormText = "",
    related_dois: FormText = "",
    dataset_ids: Annotated[list[int] | None, Form()] = None,
) -> Response:
    if user is None:
        return to_login(request)
    collection = visible_collection(db, identity, collection_id, now)
    data = _input(
        title,
        abstract,
        creators,
        keywords,
        techniques,
        instrument,
        licence,
        related_dois,
        dataset_ids or [],
    )
    try:
        coll.update_collection(db, identity, collection, data, now=now)
    except (PermissionDenied, InvalidRequest) as exc:
        request.session["flash"] = [["error", sentence(str(exc))]]
        form = {
            "title": title,
            "abstract": abstract,
            "creators": creators,
            "keywords": keywords,
            "techniques": techniques,
            "instrument": instrument,
            "licence": licence,
            "related_dois": related_dois,
            "dataset_ids": set(dataset_ids or []),
        }
        return _form_page(request, user, db, collection.proposal, collection, config, form)
    db.commit()
    flash(
        request,
        "ok",
        "Collection saved."
        + (" Publish again to update the DOI record." if collection.doi else ""),
    )
    return RedirectResponse(f"/collections/{collection.id}", status_code=303)


@forms.post("/collections/{collection_id}/publish")
def publish_form(
    collection_id: int,
    request: Request,
    identity: CurrentIdentity,
    db: DB,
    now: Now,
    config: Config,
    minter: DoiMinter,
) -> Response:
    collection = visible_collection(db, identity, collection_id, now)
    try:
        coll.publish(db, identity, collection, minter, config, now=now)
    except PermissionDenied as exc:
        flash(request, "error", exc.detail)
    except InvalidRequest as exc:
        flash(request, "error", sentence(str(exc)))
    else:
        db.commit()
        state = "registered" if collection.doi_state == "findable" else "reserved as a draft"
        flash(request, "ok", f"Published. DOI {collection.doi} {state}.")
    return RedirectResponse(f"/collections/{collection.id}", status_code=303)


def _landing(
    request: Request,
    user: Any,
    identity: Identity,
    collection: Collection,
    now: datetime,
    config: coll.PublicationDetails,
) -> Response:
    meta = coll.metadata(collection, config)
    rel = _relation(identity, collection, now)
    files = [i.dataset for i in collection.items]
    return render(
        request,
        "collection.html",
        user,
        c=collection,
        meta=meta,
        files=files,
        total_size=sum(d.size for d in files),
        downloadable=access.may_download_collection(rel),
        released=collection.is_released(now),
        may_edit=access.may_edit_collection(rel),
        may_release=access.may(rel, Action.release_early),
        may_extend=access.may(rel, Action.extend_embargo),
        cite_text=citation.text(meta),
        bibtex=citation.bibtex(meta),
        json_ld=_json_ld(meta),
        licence_name=meta.licence_name_and_uri()[0],
        licence_uri=meta.licence_name_and_uri()[1],
        now=now,
    )


@pages.get("/collections/{collection_id}", response_class=HTMLResponse)
def landing_page(
    collection_id: int,
    request: Request,
    user: CurrentUser,
    identity: CurrentIdentity,
    db: DB,
    now: Now,
    config: Config,
) -> Response:
    collection = visible_collection(db, identity, collection_id, now)
    return _landing(request, user, identity, collection, now, config)


@pages.get("/doi/{prefix}/{suffix:path}", response_class=HTMLResponse)
def landing_by_doi(
    prefix: str,
    suffix: str,
    request: Request,
    user: CurrentUser,
    identity: CurrentIdentity,
    db: DB,
    now: Now,
    config: Config,
) -> Response:
    """Where the DOI resolves to (the URL registered with DataCite)."""
    collection = coll.collection_with_doi(db, f"{prefix}/{suffix}")
    if collection is None or not coll.may_see(identity, collection, now):
        raise not_found(f"No collection with DOI {prefix}/{suffix}.")
    return _landing(request, user, identity, collection, now, config)


# ------------------------------------------------------------------ exports & downloads
EXPORTS = {
    "datacite.xml": "application/xml",
    "datacite.json": "application/json",
    "citation.bib": "application/x-bibtex",
    "citation.ris": "application/x-research-info-systems",
    "schema.jsonld": "application/ld+json",
}


@pages.get("/collections/{collection_id}/download.zip", response_class=StreamingResponse)
def download_zip(
    collection_id: int,
    identity: CurrentIdentity,
    user: CurrentUser,
    db: DB,
    now: Now,
    settings: AppSettings,
) -> Response:
    """Every file of the collection in one zip, produced while it is sent (no temp file)."""
    collection = visible_collection(db, identity, collection_id, now)
    if not access.may_download_collection(_relation(identity, collection, now)):
        raise not_found(
            f"The files of this collection are under embargo until {_day(collection.release_date)}."
        )
    number = collection.proposal.number
    # Stored, not deflated: HDF5 data are mostly compressed already, and a sized stream
    # lets the client show progress (Content-Length is known before the first byte).
    stream = ZipStream(compress_type=ZIP_STORED, sized=True)
    folder = proposal_root(settings.data_root, number)
    descriptors: list[int] = []
    try:
        for item in collection.items:
            # Opened now, beneath the proposal, and streamed from these descriptors (their
            # /proc names reopen the very files): a symlink swapped in later changes nothing.
            try:
                fd = open_beneath(folder, item.dataset.path)
            except PathNotFound as exc:
                raise Conflict(
                    f"{item.dataset.path} is no longer on disk; ask the "
                    "facility to re-index this proposal.",
                ) from exc
            descriptors.append(fd)
            stream.add_path(f"/proc/self/fd/{fd}", f"{number}/{item.dataset.path}")
    except BaseException:
        for fd in descriptors:
            os.close(fd)
        raise
    audit(
        db,
        "collection_download",
        user,
        f"collection/{collection.id}",
        f"{len(collection.items)} files",
    )
    db.commit()
    name = f"{number}-collection-{collection.id}.zip"
    return StreamingResponse(
        iter(stream),
        media_type="application/zip",
        background=BackgroundTask(_close_all, descriptors),
        headers={
            "content-length": str(len(stream)),
            "content-disposition": f'attachment; filename="{name}"',
        },
    )


def _close_all(descriptors: list[int]) -> None:
    for fd in descriptors:
        os.close(fd)


@pages.get("/collections/{collection_id}/{export}")
def export(
    collection_id: int,
    export: str,
    identity: CurrentIdentity,
    db: DB,
    now: Now,
    config: Config,
) -> Response:
    """Metadata exports: DataCite XML/JSON, BibTeX, RIS, schema.org JSON-LD."""
    if export not in EXPORTS:
        raise not_found(f"No export {export!r}; try one of {', '.join(EXPORTS)}.")
    collection = visible_collection(db, identity, collection_id, now)
    meta = coll.metadata(collection, config)
    body: str
    if export == "datacite.xml":
        if not meta.doi:
            raise Conflict("This collection has no DOI yet: publish it first.")
        body = datacite.to_xml(meta)
    elif export == "datacite.json":
        body = json.dumps(
            {"data": {"type": "dois", "attributes": datacite.to_json(meta)}},
            indent=2,
            ensure_ascii=False,
        )
    elif export == "citation.bib":
        body = citation.bibtex(meta)
    elif export == "citation.ris":
        body = citation.ris(meta)
    else:
        body = json.dumps(citation.json_ld(meta), indent=2, ensure_ascii=False)
    name = f"collection-{collection.id}-{export}"
    return Response(
        body,
        media_type=EXPORTS[export] + "; charset=utf-8",
        headers={"content-disposition": f'inline; filename="{name}"'},
    )


def _day(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d") if when else "a date not yet set"


# ------------------------------------------------------------------ JSON API
class CreatorIn(BaseModel):
    name: str = Field(min_length=1, max_length=300)
    given_name: str = ""
    family_name: str = ""
    orcid: str = ""
    affiliation: str = ""


class CollectionIn(BaseModel):
    title: str = Field(min_length=1, max_length=500)
    abstract: str = ""
    creators: list[CreatorIn] | None = None
    keywords: list[str] | None = None
    techniques: list[str] | None = None
    instrument: str | None = None
    licence: str | None = None
    related_dois: list[str] | None = None
    dataset_ids: list[int] | None = None


class CollectionPatch(CollectionIn):
    title: str = Field("", max_length=500)


def _to_input(body: CollectionIn) -> CollectionInput:
    creators = None
    if body.creators is not None:
        creators = []
        for c in body.creators:
            given, family = c.given_name, c.family_name
            if not given and not family:
                family, _, given = (s.strip() for s in c.name.partition(","))
            creators.append(
                {
                    "name": c.name,
                    "given_name": given,
                    "family_name": family,
                    "orcid": c.orcid,
                    "affiliation": c.affiliation,
                }
            )
    return CollectionInput(
        title=body.title,
        abstract=body.abstract,
        creators=creators,
        keywords=body.keywords,
        techniques=body.techniques,
        instrument=body.instrument,
        licence=body.licence,
        related_dois=body.related_dois,
        dataset_ids=body.dataset_ids,
    )


@api.get("/collections", response_model=list[CollectionOut])
def list_collections(
    db: DB,
    now: Now,
    limit: int = Query(50, ge=1, le=500),
    skip: int = Query(0, ge=0),
) -> list[dict[str, Any]]:
    """Published collections (metadata is public; files follow the embargo)."""
    return [coll.as_dict(c, now) for c in coll.public_collections_page(db, now, limit, skip)]


@api.get("/collections/{collection_id}", response_model=CollectionOut)
def get_collection(
    collection_id: int,
    db: DB,
    identity: CurrentIdentity,
    now: Now,
) -> dict[str, Any]:
    return coll.as_dict(visible_collection(db, identity, collection_id, now), now)


@api_changes.post("/proposals/{number}/collections", status_code=201, response_model=CollectionOut)
def create_collection(
    number: str,
    body: CollectionIn,
    db: DB,
    identity: CurrentIdentity,
    now: Now,
    config: Config,
) -> dict[str, Any]:
    """Create a collection of the proposal's datasets (PI or user office)."""
    proposal = proposal_for(db, identity, number, Action.view_proposal, now)
    collection = coll.create_collection(db, identity, proposal, _to_input(body), config, now=now)
    db.commit()
    return coll.as_dict(visible_collection(db, identity, collection.id, now), now)


@api_changes.patch("/collections/{collection_id}", response_model=CollectionOut)
def patch_collection(
    collection_id: int,
    body: CollectionPatch,
    db: DB,
    identity: CurrentIdentity,
    now: Now,
) -> dict[str, Any]:
    collection = visible_collection(db, identity, collection_id, now)
    data = _to_input(body)
    if not body.title:
        data.title = collection.title
    coll.update_collection(db, identity, collection, data, now=now)
    db.commit()
    return coll.as_dict(collection, now)


@api_changes.post("/collections/{collection_id}/publish", response_model=CollectionOut)
def publish_collection(
    collection_id: int,
    db: DB,
    identity: CurrentIdentity,
    now: Now,
    config: Config,
    minter: DoiMinter,
) -> dict[str, Any]:
    """Register (or update) the DOI and make the landing page public."""
    collection = visible_collection(db, identity, collection_id, now)
    coll.publish(db, identity, collection, minter, config, now=now)
    db.commit()
    return coll.as_dict(collection, now)


# Pages and forms stay out of the OpenAPI document; the JSON API is in it.
router = APIRouter()
for part in (pages, forms, api, api_changes):
    router.include_router(part)
