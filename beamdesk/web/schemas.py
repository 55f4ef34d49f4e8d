"""Pydantic shapes of the proposal API (request bodies and responses)."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

from beamdesk.portal import access
from beamdesk.portal.access import Action, Relation
from beamdesk.portal.lifecycle import actions_from
from beamdesk.portal.models import MemberRole, Proposal, ProposalCategory

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
    # False when ``total`` is a lower bound (broad searches stop counting at 1,000).
    total_exact: bool = True


class SampleIn(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    formula: str = ""
    hazards: str = ""
    safety_declared: bool = False


class ProposalIn(BaseModel):
    title: str = Field(min_length=1, max_length=300)
    abstract: str = ""
    category: ProposalCategory = ProposalCategory.new
    beamline: str | None = Field(None, description="Name of the beamline asked for")
    shifts_requested: int = Field(3, ge=1, le=60)
    samples: list[SampleIn] = []


class ProposalPatch(BaseModel):
    title: str | None = Field(None, min_length=1, max_length=300)
    abstract: str | None = None
    category: ProposalCategory | None = None
    samples: list[SampleIn] | None = None


class TransitionIn(BaseModel):
    comment: str = ""


class MemberIn(BaseModel):
    username: str
    role: MemberRole = MemberRole.participant


class ReviewerIn(BaseModel):
    username: str


class ReviewIn(BaseModel):
    score: int = Field(ge=1, le=5)
    comment: str = ""


class BeamtimeIn(BaseModel):
    beamline: str
    start: datetime
    end: datetime
    shifts: int = Field(3, ge=1, le=60)


class DoiIn(BaseModel):
    doi: str


class ProposalSummary(BaseModel):
    number: str
    title: str
    state: str
    category: str
    beamline: str | None
    release_date: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, p: Proposal) -> ProposalSummary:
        return cls(
            number=p.number,
            title=p.title,
            state=p.state.value,
            category=p.category.value,
            beamline=p.beamline.name if p.beamline else None,
            release_date=p.release_date,
            created_at=p.created_at,
        )


class MemberOut(BaseModel):
    username: str
    full_name: str
    role: str


class SampleOut(SampleIn):
    pass


class BeamtimeOut(BaseModel):
    beamline: str
    start: datetime
    end: datetime
    shifts: int


class ReviewOut(BaseModel):
    reviewer: str
    score: int | None
    comment: str
    submitted_at: datetime | None


class TransitionOut(BaseModel):
    action: str
    from_state: str
    to_state: str
    actor: str | None
    comment: str
    at: datetime


class ProposalDetail(ProposalSummary):
    abstract: str
    shifts_requested: int
    embargo_extended: bool
    doi: str
    released: bool
    members: list[MemberOut]
    samples: list[SampleOut]
    beamtimes: list[BeamtimeOut]
    reviews: list[ReviewOut]
    history: list[TransitionOut]
    may: list[str] = Field(description="Actions the caller may take now")
    transitions: list[str] = Field(description="Lifecycle transitions the caller may take now")

    @classmethod
    def build(cls, p: Proposal, rel: Relation, viewer_id: int | None) -> ProposalDetail:
        # Reviews are confidential: the user office sees all, a reviewer their own.
        reviews = [
            ReviewOut(
                reviewer=r.reviewer.username,
                score=r.score,
                comment=r.comment,
                submitted_at=r.submitted_at,
            )
            for r in p.reviews
            if rel.user_office or r.reviewer_id == viewer_id
        ]
        summary = ProposalSummary.of(p).model_dump()
        return cls(
            **summary,
            abstract=p.abstract,
            shifts_requested=p.shifts_requested,
            embargo_extended=p.embargo_extended,
            doi=p.doi,
            released=rel.released,
            members=[
                MemberOut(username=m.user.username, full_name=m.user.full_name, role=m.role.value)
                for m in p.members
            ],
            samples=[
                SampleOut(
                    name=s.name,
                    formula=s.formula,
                    hazards=s.hazards,
                    safety_declared=s.safety_declared,
                )
                for s in p.samples
            ],
            beamtimes=[
                BeamtimeOut(beamline=b.beamline.name, start=b.start, end=b.end, shifts=b.shifts)
                for b in p.beamtimes
            ],
            reviews=reviews,
            history=[
                TransitionOut(
                    action=t.action,
                    from_state=t.from_state,
                    to_state=t.to_state,
                    actor=t.actor.username if t.actor else None,
                    comment=t.comment,
                    at=t.at,
                )
                for t in p.transitions
            ],
            may=[a.value for a in Action if access.may(rel, a)],
            transitions=[
                t.action for t in actions_from(p.state) if access.may_transition(rel, t.action)
            ],
        )
