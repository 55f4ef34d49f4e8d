"""Data collections: the citable unit of publication, with its DOI record.

A collection groups datasets of one proposal under a title, creators, abstract, keywords,
techniques, instrument, licence and related papers. Its metadata is public from the moment
it is published (a DOI must resolve to a landing page); its files follow the proposal's
embargo, so they open by themselves when the release date passes. The release date is the
proposal's: one embargo per experiment, changed only through ``proposals.release_early``
and ``proposals.extend_embargo`` (which record and audit every change).

Functions flush but do not commit: the caller owns the transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    func,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship, selectinload

from beamdesk.db import Base, UTCDateTime, utcnow
from beamdesk.portal import access
from beamdesk.portal.access import Identity
from beamdesk.portal.auth import audit
from beamdesk.portal.datacite import Creator, Metadata, RelatedWork
from beamdesk.portal.minting import Minter, MintingError
from beamdesk.portal.models import Dataset, MemberRole, Proposal, Transition
from beamdesk.portal.proposals import InvalidRequest, PermissionDenied
from beamdesk.settings import Settings

DEFAULT_LICENCE = "CC-BY-4.0"
ORCID = re.compile(r"^\d{4}-\d{4}-\d{4}-\d{3}[\dX]$")
DOI = re.compile(r"^10\.\d{4,9}/\S+$")


@dataclass(frozen=True)
class PublicationDetails:
    """Who publishes, under which licence by default, where landing pages live."""

    publisher: str = "Elettra Sincrotrone Trieste"
    facility: str = "Elettra"
    licence: str = DEFAULT_LICENCE
    base_url: str = "http://127.0.0.1:8000"


def publication_config(settings: Settings) -> PublicationDetails:
    """Publisher, facility and licence from ``settings.publication``; landing pages under
    ``settings.base_url``."""
    return PublicationDetails(
        publisher=settings.publication.publisher,
        facility=settings.publication.facility,
        licence=settings.publication.licence,
        base_url=settings.base_url.rstrip("/"),
    )


class Collection(Base):
    """A citable group of datasets of one proposal."""

    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(
        ForeignKey("proposals.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(500))
    abstract: Mapped[str] = mapped_column(Text, default="")
    # [{"name", "given_name", "family_name", "orcid", "affiliation"}], in citation order.
    creators: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    techniques: Mapped[list[str]] = mapped_column(JSON, default=list)
    instrument: Mapped[str] = mapped_column(String(255), default="")
    licence: Mapped[str] = mapped_column(String(64), default=DEFAULT_LICENCE)
    # DOIs of papers that use these data.
    related_dois: Mapped[list[str]] = mapped_column(JSON, default=list)
    doi: Mapped[str] = mapped_column(String(255), default="", index=True)
    # "" (none yet), "draft" (reserved, not resolvable) or "findable" (registered, public).
    doi_state: Mapped[str] = mapped_column(String(16), default="")
    # Set when the PI or the office publishes: from then on the landing page is public.
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    proposal: Mapped[Proposal] = relationship()
    items: Mapped[list[CollectionItem]] = relationship(
        back_populates="collection",
        cascade="all, delete-orphan",
        order_by="CollectionItem.position",
    )

    @property
    def release_date(self) -> datetime | None:
        return self.proposal.release_date

    def is_released(self, now: datetime) -> bool:
        return self.release_date is not None and self.release_date <= now


class CollectionItem(Base):
    __tablename__ = "collection_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)

    collection: Mapped[Collection] = relationship(back_populates="items")
    dataset: Mapped[Dataset] = relationship()

    __table_args__ = (UniqueConstraint("collection_id", "dataset_id", name="uq_item_once"),)


@dataclass
class CollectionInput:
    """What a PI or the office types in; lists are already split."""

    title: str
    abstract: str = ""
    creators: list[dict[str, str]] | None = None
    keywords: list[str] | None = None
    techniques: list[str] | None = None
    instrument: str | None = None
    licence: str | None = None
    related_dois: list[str] | None = None
    dataset_ids: list[int] | None = None


def parse_creators(text: str) -> list[dict[str, str]]:
    """One creator a line: ``Family, Given; ORCID; Affiliation`` (the last two optional)."""
    creators = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(";")]
        name = parts[0]
        family, _, given = (s.strip() for s in name.partition(","))
        orcid = parts[1] if len(parts) > 1 else ""
        affiliation = parts[2] if len(parts) > 2 else ""
        creators.append(
            {
                "name": f"{family}, {given}" if given else family,
                "family_name": family,
                "given_name": given,
                "orcid": orcid,
                "affiliation": affiliation,
            }
        )
    return creators


def format_creators(creators: list[dict[str, str]]) -> str:
    return "\n".join(
        "; ".join([c.get("name", ""), c.get("orcid", ""), c.get("affiliation", "")]).rstrip("; ")
        for c in creators
    )


def split_list(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"[,\n]", text) if s.strip()]


def _check(data: CollectionInput) -> None:
    if not data.title.strip():
        raise InvalidRequest("a collection needs a title")
    if len(data.title) > 500:
        raise InvalidRequest("the title is longer than 500 characters")
    for c in data.creators or []:
        if not c.get("family_name") and not c.get("name"):
            raise InvalidRequest("every creator needs a name")
        orcid = c.get("orcid", "")
        if orcid and not ORCID.match(orcid):
            raise InvalidRequest(f"{orcid!r} is not an ORCID iD like 0000-0002-1825-0097")
    for doi in data.related_dois or []:
        if not DOI.match(doi):
            raise InvalidRequest(f"{doi!r} is not a DOI like 10.1234/abc")


def default_creators(proposal: Proposal) -> list[dict[str, str]]:
    """The proposal's members, PI first, as creators (the PI edits the list afterwards)."""
    order = {MemberRole.pi: 0, MemberRole.participant: 1, MemberRole.local_contact: 2}
    creators = []
    for m in sorted(proposal.members, key=lambda m: (order[m.role], m.id)):
        name = m.user.full_name or m.user.username
        given, _, family = name.rpartition(" ")
        creators.append(
            {
                "name": f"{family}, {given}" if given else family,
                "family_name": family,
                "given_name": given,
                "orcid": m.user.orcid,
                "affiliation": m.user.affiliation,
            }
        )
    return creators


def _require_edit(identity: Identity, proposal: Proposal, now: datetime) -> None:
    if not access.may_edit_collection(access.relation(identity, proposal, now)):
        raise PermissionDenied("may not edit collections of this proposal")


def _set_datasets(db: Session, collection: Collection, proposal: Proposal, ids: list[int]) -> None:
    rows = (
        db.scalars(
            select(Dataset).where(Dataset.id.in_(ids), Dataset.proposal_id == proposal.id)
        ).all()
        if ids
        else []
    )
    if len(rows) != len(set(ids)):
        raise InvalidRequest("a collection holds datasets of its own proposal only")
    # Keep the rows of datasets that stay: deleting and re-inserting the same pair in one
    # flush would trip the unique constraint (SQLAlchemy inserts before it deletes).
    existing = {item.dataset_id: item for item in collection.items}
    wanted = list(dict.fromkeys(ids))
    kept = []
    for n, dataset_id in enumerate(wanted):
        item = existing.get(dataset_id) or CollectionItem(dataset_id=dataset_id)
        item.position = n
        kept.append(item)
    collection.items[:] = kept


def _record(
    db: Session, collection: Collection, actor: int | None, action: str, detail: str, now: datetime
) -> None:
    """Audit and write into the proposal's history, so the PI sees what happened."""
    collection.proposal.transitions.append(
        Transition(
            action=action,
            actor_id=actor,
            from_state=collection.proposal.state.value,
            to_state=collection.proposal.state.value,
            comment=f"collection {collection.id}: {detail}",
            at=now,
        )
    )
    audit(db, action, actor, f"collection/{collection.id}", detail)


def create_collection(
    db: Session,
    identity: Identity,
    proposal: Proposal,
    data: CollectionInput,
    config: PublicationDetails,
    *,
    now: datetime,
) -> Collection:
    _require_edit(identity, proposal, now)
    _check(data)
    collection = Collection(
        proposal_id=proposal.id,
        title=data.title.strip(),
        abstract=data.abstract.strip(),
        creators=data.creators if data.creators else default_creators(proposal),
        keywords=data.keywords or [],
        techniques=data.techniques
        if data.techniques is not None
        else split_list(proposal.beamline.techniques if proposal.beamline else ""),
        instrument=data.instrument
        if data.instrument is not None
        else (proposal.beamline.name if proposal.beamline else ""),
        licence=data.licence or config.licence,
        related_dois=data.related_dois or [],
        created_by=identity.user_id,
        created_at=now,
        updated_at=now,
    )
    collection.proposal = proposal
    db.add(collection)
    db.flush()
    _set_datasets(db, collection, proposal, data.dataset_ids or [])
    _record(db, collection, identity.user_id, "collection_created", collection.title, now)
    db.flush()
    return collection


def update_collection(
    db: Session,
    identity: Identity,
    collection: Collection,
    data: CollectionInput,
    *,
    now: datetime,
) -> Collection:
    _require_edit(identity, collection.proposal, now)
    _check(data)
    changed = []
    for name in (
        "title",
        "abstract",
        "creators",
        "keywords",
        "techniques",
        "instrument",
        "licence",
        "related_dois",
    ):
        value = getattr(data, name)
        if isinstance(value, str):
            value = value.strip()
        if value is not None and value != getattr(collection, name):
            setattr(collection, name, value)
            changed.append(name)
    if data.dataset_ids is not None:
        before = [i.dataset_id for i in collection.items]
        _set_datasets(db, collection, collection.proposal, data.dataset_ids)
        if before != [i.dataset_id for i in collection.items]:
            changed.append("datasets")
    if changed:
        collection.updated_at = now
        _record(db, collection, identity.user_id, "collection_edited", ", ".join(changed), now)
    db.flush()
    return collection


def doi_suffix(collection: Collection, config: PublicationDetails) -> str:
    slug = re.sub(r"[^a-z0-9]+", "", config.facility.lower()) or "beamdesk"
    return f"{slug}.{collection.proposal.number}.{collection.id}"


def landing_url(collection: Collection, config: PublicationDetails) -> str:
    if collection.doi:
        return f"{config.base_url}/doi/{collection.doi}"
    return f"{config.base_url}/collections/{collection.id}"


def metadata(collection: Collection, config: PublicationDetails, doi: str = "") -> Metadata:
    """The collection as DataCite sees it (also the source of every citation format)."""
    datasets = [i.dataset for i in collection.items]
    year = (collection.published_at or collection.created_at).year
    return Metadata(
        doi=doi or collection.doi,
        title=collection.title,
        creators=[
            Creator(
                name=c.get("name", ""),
                given_name=c.get("given_name", ""),
                family_name=c.get("family_name", ""),
                orcid=c.get("orcid", ""),
                affiliation=c.get("affiliation", ""),
            )
            for c in collection.creators
        ],
        publisher=config.publisher,
        publication_year=year,
        abstract=collection.abstract,
        keywords=list(collection.keywords),
        techniques=list(collection.techniques),
        instrument=collection.instrument,
        licence=collection.licence,
        related=[RelatedWork(d, "IsCitedBy") for d in collection.related_dois]
        + [
            RelatedWork(
                f"{config.base_url}/proposals/{collection.proposal.number}", "IsPartOf", "URL"
            )
        ],
        created=collection.created_at,
        available=collection.release_date,
        sizes=[f"{sum(d.size for d in datasets)} bytes", f"{len(datasets)} files"],
        formats=sorted(
            {"application/x-hdf5" if d.is_hdf5 else "application/octet-stream" for d in datasets}
        ),
        url=landing_url(collection, config) if doi or collection.doi else "",
        proposal_number=collection.proposal.number,
        doi_registered=collection.doi_state == "findable",
    )


def publish(
    db: Session,
    identity: Identity,
    collection: Collection,
    minter: Minter,
    config: PublicationDetails,
    *,
    now: datetime,
) -> Collection:
    """Publish the collection: register its DOI (or reserve a draft one) and open its page.

    Calling it again after an edit updates the DOI record with the new metadata.
    """
    _require_edit(identity, collection.proposal, now)
    if not collection.items:
        raise InvalidRequest("add at least one dataset before publishing")
    if not collection.creators:
        raise InvalidRequest("a collection needs at least one creator")
    first = collection.published_at is None
    if first:
        collection.published_at = now
    # A registered DOI is for ever; a draft one from another prefix (the draft-only default
    # before the facility configured DataCite) is replaced by one under the real prefix.
    keep = bool(collection.doi) and (
        collection.doi_state == "findable" or collection.doi.startswith(minter.prefix + "/")
    )
    doi = collection.doi if keep else minter.doi_for(doi_suffix(collection, config))
    meta = metadata(collection, config, doi)
    meta.url = f"{config.base_url}/doi/{doi}"
    try:
        result = minter.register(meta, update=keep and collection.doi_state == "findable")
    except MintingError as exc:
        if first:
            collection.published_at = None
        raise InvalidRequest(f"the DOI registration failed: {exc}") from exc
    collection.doi = result.doi
    collection.doi_state = result.state
    collection.updated_at = now
    _record(
        db,
        collection,
        identity.user_id,
        "collection_published" if first else "collection_doi_updated",
        f"{result.doi} ({result.state})",
        now,
    )
    db.flush()
    return collection


def public_collections(now: datetime) -> ColumnElement[bool]:
    """SQL condition: collections whose landing page everyone may see."""
    return Collection.published_at.is_not(None)


def published_collections(db: Session, q: str = "", limit: int = 50) -> list[Collection]:
    """Published collections for the public catalogue, newest first, optionally searched."""
    query = (
        select(Collection)
        .where(Collection.published_at.is_not(None))
        .options(selectinload(Collection.proposal), selectinload(Collection.items))
    )
    if q:
        pattern = f"%{q.lower()}%"
        query = query.where(
            func.lower(Collection.title).like(pattern)
            | func.lower(Collection.abstract).like(pattern)
            | func.lower(Collection.doi).like(pattern)
        )
    return list(
        db.scalars(
            query.order_by(Collection.published_at.desc(), Collection.id.desc()).limit(limit)
        )
    )


def load_collection(db: Session, collection_id: int) -> Collection | None:
    """Collection ``collection_id`` with its datasets and what the access rules read of its
    proposal (members, reviews, beamtimes), or None."""
    return db.scalar(
        select(Collection)
        .where(Collection.id == collection_id)
        .options(
            selectinload(Collection.items).selectinload(CollectionItem.dataset),
            selectinload(Collection.proposal).selectinload(Proposal.members),
            selectinload(Collection.proposal).selectinload(Proposal.reviews),
            selectinload(Collection.proposal).selectinload(Proposal.beamtimes),
        )
    )


def collection_with_doi(db: Session, doi: str) -> Collection | None:
    """The collection whose DOI is ``doi`` (case-insensitive), loaded as
    :func:`load_collection` does, or None."""
    cid = db.scalar(select(Collection.id).where(func.lower(Collection.doi) == doi.lower()))
    return load_collection(db, cid) if cid is not None else None


def collections_of(db: Session, proposal: Proposal) -> list[Collection]:
    """Every collection of the proposal, drafts included, by id (callers keep those the
    identity may see)."""
    return list(
        db.scalars(
            select(Collection).where(Collection.proposal_id == proposal.id).order_by(Collection.id)
        )
    )


def collectable_datasets(db: Session, proposal: Proposal, limit: int = 2000) -> list[Dataset]:
    """The proposal's datasets a collection may hold, by path (the form's choice)."""
    return list(
        db.scalars(
            select(Dataset)
            .where(Dataset.proposal_id == proposal.id)
            .order_by(Dataset.path)
            .limit(limit)
        )
    )


def public_collections_page(db: Session, now: datetime, limit: int, skip: int) -> list[Collection]:
    """Collections everyone may see, newest publication first, ``limit`` from ``skip``,
    with their datasets and proposals."""
    return list(
        db.scalars(
            select(Collection)
            .where(public_collections(now))
            .options(
                selectinload(Collection.items).selectinload(CollectionItem.dataset),
                selectinload(Collection.proposal),
            )
            .order_by(Collection.published_at.desc(), Collection.id.desc())
            .limit(limit)
            .offset(skip)
        )
    )


def public_collections_with_datasets(
    db: Session, now: datetime
) -> list[tuple[Collection, list[Dataset]]]:
    """Every collection everyone may see, by id, with its datasets (the PaNOSC harvest)."""
    rows = db.scalars(
        select(Collection)
        .where(public_collections(now))
        .options(selectinload(Collection.items).selectinload(CollectionItem.dataset))
        .order_by(Collection.id)
    ).all()
    return [(c, [i.dataset for i in c.items]) for c in rows]


def released_collections(now: datetime) -> ColumnElement[bool]:
    """SQL condition (needs a join to Proposal): published and the embargo has ended."""
    return and_(
        Collection.published_at.is_not(None),
        Proposal.release_date.is_not(None),
        Proposal.release_date <= now,
    )


def may_see(identity: Identity, collection: Collection, now: datetime) -> bool:
    """Metadata is public once published; before that, for the team and the facility."""
    return access.may_see_collection(
        access.relation(identity, collection.proposal, now), collection.published_at is not None
    )


def as_dict(collection: Collection, now: datetime) -> dict[str, Any]:
    return {
        "id": collection.id,
        "proposal": collection.proposal.number,
        "title": collection.title,
        "abstract": collection.abstract,
        "creators": collection.creators,
        "keywords": collection.keywords,
        "techniques": collection.techniques,
        "instrument": collection.instrument,
        "licence": collection.licence,
        "related_dois": collection.related_dois,
        "doi": collection.doi,
        "doi_state": collection.doi_state,
        "published_at": collection.published_at.isoformat() if collection.published_at else None,
        "release_date": collection.release_date.isoformat() if collection.release_date else None,
        "released": collection.is_released(now),
        "datasets": [
            {"id": i.dataset.id, "path": i.dataset.path, "size": i.dataset.size}
            for i in collection.items
        ],
    }
