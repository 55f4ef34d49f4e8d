"""What the portal's list pages show: one page of proposals, reviews or audit events.

Each function answers one page's question in a few queries (a count, one page of rows,
their related rows eagerly loaded); visibility comes from ``portal.access``'s SQL
conditions, so a list of 50 costs the same for anyone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from beamdesk.portal import access
from beamdesk.portal.access import Identity
from beamdesk.portal.models import AuditEvent, Dataset, Proposal, ProposalState, Review, User

PAGE_SIZE = 50
OFFICE_LIMIT = 500


def page_count(total: int, size: int = PAGE_SIZE) -> int:
    """How many pages ``total`` rows fill (at least one, for an empty list)."""
    return max(1, -(-total // size))


@dataclass(frozen=True)
class ProposalPage:
    """One page of a proposal list, with the number of matches and of pages."""

    proposals: list[Proposal]
    total: int
    pages: int
    #: datasets per proposal id, for the catalogue (proposals without any are absent)
    dataset_counts: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditPage:
    """One page of the audit log: (event, actor's username or None) pairs."""

    rows: list[tuple[AuditEvent, str | None]]
    total: int
    pages: int
    #: every action name recorded so far, for the filter
    actions: list[str]


def released_count(db: Session, now: datetime) -> int:
    """How many proposals anyone, signed in or not, may see (the start page)."""
    where = access.visible_proposals(access.ANONYMOUS, now)
    return db.scalar(select(func.count()).select_from(Proposal).where(where)) or 0


def involved_proposals_page(
    db: Session, identity: Identity, state: ProposalState | None, page: int
) -> ProposalPage:
    """ "My proposals": those the identity works on (not everybody's open data), newest
    number first, optionally in one state."""
    where = [access.involved_proposals(identity)]
    if state is not None:
        where.append(Proposal.state == state)
    return _proposals_where(db, where, PAGE_SIZE, (page - 1) * PAGE_SIZE)


def reviews_of(db: Session, user: User) -> list[Review]:
    """The reviews assigned to ``user``, newest assignment first, with their proposals."""
    return list(
        db.scalars(
            select(Review)
            .where(Review.reviewer_id == user.id)
            .options(selectinload(Review.proposal))
            .order_by(Review.assigned_at.desc())
        )
    )


def office_proposals_by_state(
    db: Session, identity: Identity, now: datetime
) -> dict[ProposalState, list[Proposal]]:
    """The office's work list: visible proposals past draft (the newest
    :data:`OFFICE_LIMIT`), grouped by state, every state present."""
    rows = db.scalars(
        select(Proposal)
        .where(access.visible_proposals(identity, now), Proposal.state != ProposalState.draft)
        .options(selectinload(Proposal.beamline))
        .order_by(Proposal.number.desc())
        .limit(OFFICE_LIMIT)
    ).all()
    by_state: dict[ProposalState, list[Proposal]] = {s: [] for s in ProposalState}
    for p in rows:
        by_state[p.state].append(p)
    return by_state


def audit_page(db: Session, action: str, page: int) -> AuditPage:
    """One page of audit events, newest first, of one action or all ('')."""
    where = [AuditEvent.action == action] if action else []
    total = db.scalar(select(func.count()).select_from(AuditEvent).where(*where)) or 0
    rows = db.execute(
        select(AuditEvent, User.username)
        .outerjoin(User, User.id == AuditEvent.actor_id)
        .where(*where)
        .order_by(AuditEvent.id.desc())
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    ).all()
    actions = db.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)).all()
    return AuditPage(
        [(event, username) for event, username in rows], total, page_count(total), list(actions)
    )


def released_proposals_page(db: Session, now: datetime, q: str, page: int) -> ProposalPage:
    """The open-data catalogue: proposals whose embargo has ended, newest release first,
    matching ``q`` in title, number or abstract; with their dataset counts."""
    where = [access.visible_proposals(access.ANONYMOUS, now)]
    if q:
        pattern = f"%{q.lower()}%"
        where.append(
            func.lower(Proposal.title).like(pattern)
            | Proposal.number.like(pattern)
            | func.lower(Proposal.abstract).like(pattern)
        )
    total = db.scalar(select(func.count()).select_from(Proposal).where(*where)) or 0
    rows = list(
        db.scalars(
            select(Proposal)
            .where(*where)
            .options(selectinload(Proposal.beamline))
            .order_by(Proposal.release_date.desc())
            .limit(PAGE_SIZE)
            .offset((page - 1) * PAGE_SIZE)
        ).all()
    )
    counts: dict[int, int] = (
        {
            proposal_id: count
            for proposal_id, count in db.execute(
                select(Dataset.proposal_id, func.count())
                .where(Dataset.proposal_id.in_([p.id for p in rows]))
                .group_by(Dataset.proposal_id)
            ).all()
        }
        if rows
        else {}
    )
    return ProposalPage(rows, total, page_count(total), counts)


def visible_proposals_slice(
    db: Session,
    identity: Identity,
    now: datetime,
    *,
    state: ProposalState | None,
    q: str | None,
    limit: int,
    offset: int,
) -> ProposalPage:
    """The proposals the identity may see (anonymous: the released ones), newest number
    first, optionally in one state and with ``q`` in number or title; ``limit`` from
    ``offset`` (the API's paging)."""
    where = [access.visible_proposals(identity, now)]
    if state is not None:
        where.append(Proposal.state == state)
    if q:
        pattern = f"%{q.lower()}%"
        where.append(func.lower(Proposal.title).like(pattern) | Proposal.number.like(pattern))
    return _proposals_where(db, where, limit, offset)


def _proposals_where(db: Session, where: list[Any], limit: int, offset: int) -> ProposalPage:
    """``limit`` proposals matching ``where`` from ``offset``, newest number first, with
    their beamlines, and how many match in all."""
    total = db.scalar(select(func.count()).select_from(Proposal).where(*where)) or 0
    rows = db.scalars(
        select(Proposal)
        .where(*where)
        .options(selectinload(Proposal.beamline))
        .order_by(Proposal.number.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return ProposalPage(list(rows), total, page_count(total, limit))
