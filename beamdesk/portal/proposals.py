"""Proposal services: create, edit, members, reviews, beamtimes, transitions, embargo.

Each function checks permission through :mod:`beamdesk.portal.access` and raises
``PermissionDenied`` or ``InvalidRequest``; the web layer maps those to 403/404/409.
Functions flush but do not commit: the caller owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from beamdesk.errors import Conflict, Forbidden, Invalid, sentence
from beamdesk.portal import access, embargo
from beamdesk.portal.access import Action, Identity
from beamdesk.portal.auth import audit
from beamdesk.portal.lifecycle import TRANSITIONS, next_state
from beamdesk.portal.models import (
    Beamline,
    Beamtime,
    GlobalRole,
    MemberRole,
    Proposal,
    ProposalCategory,
    ProposalMember,
    ProposalState,
    Review,
    Sample,
    Transition,
    User,
)
from beamdesk.settings import Settings


class PermissionDenied(Forbidden):
    """The identity may not do this: raised with what (``"may not submit"``), its detail is
    the sentence ``"You may not submit."``."""

    def __init__(self, what: str) -> None:
        super().__init__(f"You {what}.")


class InvalidRequest(Invalid, ValueError):
    """The request is malformed or incomplete; raised with a phrase, its detail is a
    sentence. A ValueError too, as the form pages catch both."""

    def __init__(self, what: str) -> None:
        super().__init__(sentence(what))


class StateConflict(Conflict, InvalidRequest):
    """The request is not possible in the proposal's current state (409)."""


@dataclass(frozen=True)
class SampleInput:
    name: str
    formula: str = ""
    hazards: str = ""
    safety_declared: bool = False


def _require(identity: Identity, proposal: Proposal, action: Action, now: datetime) -> None:
    if not access.may(access.relation(identity, proposal, now), action):
        raise PermissionDenied(f"may not {action.value.replace('_', ' ')}")


def _record(
    db: Session,
    proposal: Proposal,
    actor_id: int | None,
    action: str,
    to_state: str,
    comment: str = "",
    now: datetime | None = None,
    from_state: str | None = None,
) -> None:
    row = Transition(
        action=action,
        actor_id=actor_id,
        from_state=proposal.state.value if from_state is None else from_state,
        to_state=to_state,
        comment=comment,
    )
    if now is not None:
        row.at = now
    proposal.transitions.append(row)
    audit(db, f"proposal_{action}", actor_id, proposal.number, comment)


def load_proposal(db: Session, number: str) -> Proposal | None:
    """The proposal with what the access rules read (members, reviews, beamtimes).

    Joined in one round trip rather than three: this runs on every proposal request, and
    the collections are a handful of rows each.
    """
    return (
        db.execute(
            select(Proposal)
            .where(Proposal.number == number)
            .options(
                joinedload(Proposal.members),
                joinedload(Proposal.reviews),
                joinedload(Proposal.beamtimes),
            )
        )
        .unique()
        .scalar_one_or_none()
    )


def next_number(db: Session, now: datetime) -> str:
    """Proposal numbers as Elettra writes them: year then a running count, e.g. 20260042."""
    prefix = f"{now.year}"
    last = db.scalar(select(func.max(Proposal.number)).where(Proposal.number.like(f"{prefix}____")))
    count = int(last[4:]) + 1 if last else 1
    return f"{prefix}{count:04d}"


def create_proposal(
    db: Session,
    pi: User,
    *,
    title: str,
    abstract: str = "",
    category: ProposalCategory = ProposalCategory.new,
    beamline: Beamline | None = None,
    shifts_requested: int = 3,
    samples: list[SampleInput] | None = None,
    number: str | None = None,
    now: datetime,
) -> Proposal:
    title = title.strip()
    if not title:
        raise InvalidRequest("a proposal needs a title")
    if len(title) > 300:
        raise InvalidRequest("the title is longer than 300 characters")
    if shifts_requested < 1 or shifts_requested > 60:
        raise InvalidRequest("shifts requested must be between 1 and 60")
    proposal = Proposal(
        number=number or next_number(db, now),
        title=title,
        abstract=abstract.strip(),
        category=category,
        beamline_id=beamline.id if beamline else None,
        shifts_requested=shifts_requested,
        state=ProposalState.draft,
        created_at=now,
    )
    proposal.members.append(ProposalMember(user_id=pi.id, role=MemberRole.pi))
    for s in samples or []:
        proposal.samples.append(_sample(s))
    db.add(proposal)
    db.flush()
    _record(db, proposal, pi.id, "create", ProposalState.draft.value, now=now, from_state="")
    return proposal


def _sample(s: SampleInput) -> Sample:
    if not s.name.strip():
        raise InvalidRequest("every sample needs a name")
    return Sample(
        name=s.name.strip(),
        formula=s.formula.strip(),
        hazards=s.hazards.strip(),
        safety_declared=s.safety_declared,
    )


def update_draft(
    db: Session,
    identity: Identity,
    proposal: Proposal,
    *,
    now: datetime,
    title: str | None = None,
    abstract: str | None = None,
    category: ProposalCategory | None = None,
    samples: list[SampleInput] | None = None,
) -> None:
    _require(identity, proposal, Action.edit_proposal, now)
    if title is not None:
        if not title.strip():
            raise InvalidRequest("a proposal needs a title")
        proposal.title = title.strip()
    if abstract is not None:
        proposal.abstract = abstract.strip()
    if category is not None:
        proposal.category = category
    if samples is not None:
        proposal.samples[:] = [_sample(s) for s in samples]
    db.flush()


def add_member(
    db: Session,
    identity: Identity,
    proposal: Proposal,
    user: User,
    role: MemberRole,
    *,
    now: datetime,
) -> ProposalMember:
    _require(identity, proposal, Action.manage_members, now)
    if role == MemberRole.pi:
        raise InvalidRequest("a proposal has exactly one principal investigator")
    if any(m.user_id == user.id for m in proposal.members):
        raise InvalidRequest(f"{user.username} is a member already")
    member = ProposalMember(user_id=user.id, role=role)
    proposal.members.append(member)
    db.flush()
    audit(db, "member_added", identity.user_id, proposal.number, f"{user.username}:{role.value}")
    return member


def remove_member(
    db: Session, identity: Identity, proposal: Proposal, user_id: int, *, now: datetime
) -> None:
    _require(identity, proposal, Action.manage_members, now)
    member = next((m for m in proposal.members if m.user_id == user_id), None)
    if member is None:
        raise InvalidRequest("no such member")
    if member.role == MemberRole.pi:
        raise InvalidRequest("the principal investigator cannot be removed")
    proposal.members.remove(member)
    db.flush()
    audit(db, "member_removed", identity.user_id, proposal.number, str(user_id))


def assign_reviewer(
    db: Session, identity: Identity, proposal: Proposal, reviewer: User, *, now: datetime
) -> Review:
    _require(identity, proposal, Action.assign_reviewers, now)
    if reviewer.role != GlobalRole.reviewer:
        raise InvalidRequest(f"{reviewer.username} is not a reviewer")
    if any(m.user_id == reviewer.id for m in proposal.members):
        raise InvalidRequest("a member cannot review their own proposal")
    if any(r.reviewer_id == reviewer.id for r in proposal.reviews):
        raise InvalidRequest(f"{reviewer.username} is assigned already")
    review = Review(reviewer_id=reviewer.id, assigned_at=now)
    proposal.reviews.append(review)
    db.flush()
    audit(db, "reviewer_assigned", identity.user_id, proposal.number, reviewer.username)
    return review


def submit_review(
    db: Session,
    identity: Identity,
    proposal: Proposal,
    *,
    score: int,
    comment: str,
    now: datetime,
) -> Review:
    _require(identity, proposal, Action.write_review, now)
    if not 1 <= score <= 5:
        raise InvalidRequest("the score is from 1 (poor) to 5 (outstanding)")
    review = next(r for r in proposal.reviews if r.reviewer_id == identity.user_id)
    review.score = score
    review.comment = comment.strip()
    review.submitted_at = now
    db.flush()
    audit(db, "review_submitted", identity.user_id, proposal.number, str(score))
    return review


def add_beamtime(
    db: Session,
    identity: Identity,
    proposal: Proposal,
    settings: Settings,
    *,
    beamline: Beamline,
    start: datetime,
    end: datetime,
    shifts: int,
    now: datetime,
) -> Beamtime:
    _require(identity, proposal, Action.add_beamtime, now)
    if end <= start:
        raise InvalidRequest("a beamtime must end after it starts")
    if not 1 <= shifts <= 60:
        raise InvalidRequest("shifts must be between 1 and 60")
    beamtime = Beamtime(beamline_id=beamline.id, start=start, end=end, shifts=shifts)
    proposal.beamtimes.append(beamtime)
    db.flush()
    embargo.apply_default_release(proposal, settings)
    audit(
        db,
        "beamtime_added",
        identity.user_id,
        proposal.number,
        f"{beamline.name} {start.isoformat()}..{end.isoformat()}",
    )
    return beamtime


def transition(
    db: Session,
    identity: Identity,
    proposal: Proposal,
    action: str,
    *,
    comment: str = "",
    now: datetime,
) -> Proposal:
    """Take one lifecycle step, if the graph, the roles and the preconditions allow it."""
    if action not in TRANSITIONS:
        raise InvalidRequest(f"unknown transition {action!r}")
    target = next_state(proposal.state, action)
    if target is None:
        raise StateConflict(
            f"cannot {TRANSITIONS[action].label.lower()} a proposal in state "
            f"{proposal.state.value.replace('_', ' ')}"
        )
    rel = access.relation(identity, proposal, now)
    if not access.may_transition(rel, action):
        if action == "publish" and not proposal.doi and rel.user_office:
            raise StateConflict("publish needs a DOI record first")
        raise PermissionDenied(f"may not {TRANSITIONS[action].label.lower()}")
    if action == "submit":
        _check_submittable(proposal)
    if action == "schedule" and not proposal.beamtimes:
        raise InvalidRequest("add at least one beamtime before scheduling")
    _record(db, proposal, identity.user_id, action, target.value, comment, now)
    proposal.state = target
    db.flush()
    return proposal


def _check_submittable(proposal: Proposal) -> None:
    problems = []
    if not proposal.abstract:
        problems.append("an abstract")
    if proposal.beamline_id is None:
        problems.append("a beamline")
    if not proposal.samples:
        problems.append("at least one sample")
    if any(not s.safety_declared for s in proposal.samples):
        problems.append("a safety declaration for every sample")
    if problems:
        raise InvalidRequest("before submitting, add " + ", ".join(problems))


def release_early(
    db: Session, identity: Identity, proposal: Proposal, *, now: datetime, comment: str = ""
) -> None:
    _require(identity, proposal, Action.release_early, now)
    old = proposal.release_date
    proposal.release_date = now
    _record(
        db,
        proposal,
        identity.user_id,
        "release_early",
        proposal.state.value,
        comment or f"release date {old:%Y-%m-%d} → {now:%Y-%m-%d}",
        now,
    )
    db.flush()


def extend_embargo(
    db: Session,
    identity: Identity,
    proposal: Proposal,
    settings: Settings,
    *,
    now: datetime,
    comment: str = "",
) -> None:
    _require(identity, proposal, Action.extend_embargo, now)
    old = proposal.release_date
    assert old is not None  # guaranteed by the access rule
    proposal.release_date = embargo.extended(old, settings)
    proposal.embargo_extended = True
    _record(
        db,
        proposal,
        identity.user_id,
        "extend_embargo",
        proposal.state.value,
        comment or f"release date {old:%Y-%m-%d} → {proposal.release_date:%Y-%m-%d}",
        now,
    )
    db.flush()


def set_doi(
    db: Session, identity: Identity, proposal: Proposal, doi: str, *, now: datetime
) -> None:
    _require(identity, proposal, Action.set_doi, now)
    doi = doi.strip()
    if not doi.startswith("10.") or "/" not in doi:
        raise InvalidRequest("a DOI looks like 10.1234/abc")
    proposal.doi = doi
    db.flush()
    audit(db, "doi_set", identity.user_id, proposal.number, doi)
