"""REST API for proposals: list, create, edit, members, reviews, beamtimes, lifecycle, embargo."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from beamdesk.errors import Invalid
from beamdesk.jupyter.sessions import access_lost
from beamdesk.portal import access, dashboard, proposals
from beamdesk.portal.access import Action, Identity
from beamdesk.portal.directory import beamline_named, beamlines, user_named
from beamdesk.portal.models import Beamline, Proposal, ProposalState, User
from beamdesk.portal.proposals import SampleInput
from beamdesk.web import schemas
from beamdesk.web.deps import (
    DB,
    AppSettings,
    CurrentIdentity,
    CurrentUser,
    Now,
    SignedInUser,
    proposal_for,
)
from beamdesk.web.security import verify_csrf

router = APIRouter(prefix="/api", tags=["proposals"], responses=schemas.api_errors(409))
changes = APIRouter(tags=["proposals"], dependencies=[Depends(verify_csrf)])


def _beamline(db: Session, name: str | None) -> Beamline | None:
    if name is None:
        return None
    beamline = beamline_named(db, name)
    if beamline is None:
        raise Invalid(f"No beamline called {name!r}.")
    return beamline


def _user(db: Session, username: str) -> User:
    user = user_named(db, username)
    if user is None:
        raise Invalid(f"No user called {username!r}.")
    return user


def detail(db: Session, identity: Identity, number: str, now: datetime) -> schemas.ProposalDetail:
    proposal = proposal_for(db, identity, number, Action.view_proposal, now)
    rel = access.relation(identity, proposal, now)
    return schemas.ProposalDetail.build(proposal, rel, identity.user_id)


def change(
    db: Session,
    identity: Identity,
    number: str,
    now: datetime,
    apply: Callable[[Proposal], object],
) -> schemas.ProposalDetail:
    """The shape of every change: find the proposal the caller may see, apply a service
    (which checks the finer permission), commit, and answer with the new state."""
    proposal = proposal_for(db, identity, number, Action.view_proposal, now)
    apply(proposal)
    db.commit()
    return detail(db, identity, number, now)


@router.get("/beamlines", response_model=list[schemas.BeamlineOut])
def list_beamlines(db: DB) -> list[dict[str, str]]:
    rows = beamlines(db)
    return [
        {"name": b.name, "description": b.description, "techniques": b.techniques} for b in rows
    ]


@router.get("/proposals", response_model=schemas.Page[schemas.ProposalSummary])
def list_proposals(
    db: DB,
    identity: CurrentIdentity,
    now: Now,
    state: ProposalState | None = None,
    q: str | None = Query(None, max_length=200, description="Text in number or title"),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
) -> schemas.Page[schemas.ProposalSummary]:
    """The proposals the caller may see (anonymous: the released ones), newest first."""
    found = dashboard.visible_proposals_slice(
        db, identity, now, state=state, q=q, limit=limit, offset=offset
    )
    return schemas.Page(
        items=[schemas.ProposalSummary.of(p) for p in found.proposals],
        total=found.total,
        limit=limit,
        offset=offset,
    )


@router.get("/proposals/{number}", response_model=schemas.ProposalDetail)
def get_proposal(
    number: str, db: DB, identity: CurrentIdentity, now: Now
) -> schemas.ProposalDetail:
    return detail(db, identity, number, now)


@changes.post("/proposals", status_code=201, response_model=schemas.ProposalDetail)
def create_proposal(
    body: schemas.ProposalIn, db: DB, user: SignedInUser, identity: CurrentIdentity, now: Now
) -> schemas.ProposalDetail:
    """Start a draft; the caller becomes its principal investigator."""
    proposal = proposals.create_proposal(
        db,
        user,
        title=body.title,
        abstract=body.abstract,
        category=body.category,
        beamline=_beamline(db, body.beamline),
        shifts_requested=body.shifts_requested,
        samples=[SampleInput(**s.model_dump()) for s in body.samples],
        now=now,
    )
    db.commit()
    return detail(db, identity, proposal.number, now)


@changes.patch("/proposals/{number}", response_model=schemas.ProposalDetail)
def update_proposal(
    number: str, body: schemas.ProposalPatch, db: DB, identity: CurrentIdentity, now: Now
) -> schemas.ProposalDetail:
    return change(
        db,
        identity,
        number,
        now,
        lambda p: proposals.update_draft(
            db,
            identity,
            p,
            now=now,
            title=body.title,
            abstract=body.abstract,
            category=body.category,
            samples=None
            if body.samples is None
            else [SampleInput(**s.model_dump()) for s in body.samples],
        ),
    )


@changes.post("/proposals/{number}/transitions/{action}", response_model=schemas.ProposalDetail)
def take_transition(
    number: str,
    action: str,
    db: DB,
    identity: CurrentIdentity,
    user: CurrentUser,
    now: Now,
    body: schemas.TransitionIn | None = None,
) -> schemas.ProposalDetail:
    """Move the proposal along its life: submit, start_feasibility, feasible, accept, …"""
    return change(
        db,
        identity,
        number,
        now,
        lambda p: proposals.transition(
            db, identity, p, action, comment=body.comment if body else "", now=now
        ),
    )


@changes.post("/proposals/{number}/members", response_model=schemas.ProposalDetail)
def add_member(
    number: str, body: schemas.MemberIn, db: DB, identity: CurrentIdentity, now: Now
) -> schemas.ProposalDetail:
    return change(
        db,
        identity,
        number,
        now,
        lambda p: proposals.add_member(
            db, identity, p, _user(db, body.username), body.role, now=now
        ),
    )


@changes.delete("/proposals/{number}/members/{username}", response_model=schemas.ProposalDetail)
def remove_member(
    number: str, username: str, db: DB, identity: CurrentIdentity, settings: AppSettings, now: Now
) -> schemas.ProposalDetail:
    def apply(proposal: Proposal) -> None:
        user_id = _user(db, username).id
        proposals.remove_member(db, identity, proposal, user_id, now=now)
        access_lost(db, settings, user_id, reason=f"removed from {number}", now=now)

    return change(db, identity, number, now, apply)


@changes.post("/proposals/{number}/reviewers", response_model=schemas.ProposalDetail)
def assign_reviewer(
    number: str, body: schemas.ReviewerIn, db: DB, identity: CurrentIdentity, now: Now
) -> schemas.ProposalDetail:
    return change(
        db,
        identity,
        number,
        now,
        lambda p: proposals.assign_reviewer(db, identity, p, _user(db, body.username), now=now),
    )


@changes.post("/proposals/{number}/review", response_model=schemas.ProposalDetail)
def submit_review(
    number: str, body: schemas.ReviewIn, db: DB, identity: CurrentIdentity, now: Now
) -> schemas.ProposalDetail:
    return change(
        db,
        identity,
        number,
        now,
        lambda p: proposals.submit_review(
            db, identity, p, score=body.score, comment=body.comment, now=now
        ),
    )


@changes.post("/proposals/{number}/beamtimes", response_model=schemas.ProposalDetail)
def add_beamtime(
    number: str,
    body: schemas.BeamtimeIn,
    db: DB,
    identity: CurrentIdentity,
    now: Now,
    settings: AppSettings,
) -> schemas.ProposalDetail:
    if body.start.tzinfo is None or body.end.tzinfo is None:
        raise Invalid("Give start and end with a time zone, e.g. 2026-03-01T08:00:00Z.")
    beamline = _beamline(db, body.beamline)
    assert beamline is not None
    return change(
        db,
        identity,
        number,
        now,
        lambda p: proposals.add_beamtime(
            db,
            identity,
            p,
            settings,
            beamline=beamline,
            start=body.start,
            end=body.end,
            shifts=body.shifts,
            now=now,
        ),
    )


@changes.post("/proposals/{number}/embargo/release", response_model=schemas.ProposalDetail)
def release_early(
    number: str,
    db: DB,
    identity: CurrentIdentity,
    now: Now,
    body: schemas.TransitionIn | None = None,
) -> schemas.ProposalDetail:
    """Open the data to everyone now (PI or user office)."""
    return change(
        db,
        identity,
        number,
        now,
        lambda p: proposals.release_early(
            db, identity, p, now=now, comment=body.comment if body else ""
        ),
    )


@changes.post("/proposals/{number}/embargo/extend", response_model=schemas.ProposalDetail)
def extend_embargo(
    number: str,
    db: DB,
    identity: CurrentIdentity,
    now: Now,
    settings: AppSettings,
    body: schemas.TransitionIn | None = None,
) -> schemas.ProposalDetail:
    """Push the release date back once by the configured extension (default 2 years)."""
    return change(
        db,
        identity,
        number,
        now,
        lambda p: proposals.extend_embargo(
            db, identity, p, settings, now=now, comment=body.comment if body else ""
        ),
    )


@changes.post("/proposals/{number}/doi", response_model=schemas.ProposalDetail)
def set_doi(
    number: str, body: schemas.DoiIn, db: DB, identity: CurrentIdentity, now: Now
) -> schemas.ProposalDetail:
    return change(
        db,
        identity,
        number,
        now,
        lambda p: proposals.set_doi(db, identity, p, body.doi, now=now),
    )


router.include_router(changes)
