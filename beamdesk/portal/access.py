"""The one place that answers "may this identity do X to Y".

Every route, API endpoint, job and notebook link asks here. The rules (from the design):

=====================  ==========================================================
who                    may
=====================  ==========================================================
anyone (anonymous too) see a proposal and read its data once its release date passed
member (PI, etc.)      see their proposals in every state and read their data
PI                     edit the draft, manage members, submit/withdraw, release
                       the data early or extend the embargo once
assigned reviewer      see the proposal, write the review; never the data (until release)
beamline scientist     see proposals of their beamline (requested or scheduled) once
                       submitted, read their data, judge feasibility, mark data collected
user office            see and read everything; drive the lifecycle; manage accounts
                       (set a person's password, disable or re-enable an account)
=====================  ==========================================================

A thing the caller may not see is reported as "not found" by the callers of this module,
so its existence does not leak.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true

from beamdesk.portal.lifecycle import TRANSITIONS, next_state
from beamdesk.portal.models import (
    Beamtime,
    GlobalRole,
    MemberRole,
    Proposal,
    ProposalMember,
    ProposalState,
    Review,
    User,
)


class Action(enum.StrEnum):
    view_proposal = "view_proposal"
    edit_proposal = "edit_proposal"
    manage_members = "manage_members"
    read_data = "read_data"
    write_review = "write_review"
    assign_reviewers = "assign_reviewers"
    add_beamtime = "add_beamtime"
    release_early = "release_early"
    extend_embargo = "extend_embargo"
    run_job = "run_job"
    set_doi = "set_doi"


@dataclass(frozen=True)
class Identity:
    """Who is asking. ``user_id`` is None for an anonymous visitor."""

    user_id: int | None = None
    username: str = ""
    role: GlobalRole | None = None
    beamline_ids: frozenset[int] = field(default_factory=frozenset)

    @property
    def is_anonymous(self) -> bool:
        return self.user_id is None

    @property
    def is_user_office(self) -> bool:
        return self.role == GlobalRole.user_office


ANONYMOUS = Identity()


def identity_of(user: User | None) -> Identity:
    if user is None or not user.is_active:
        return ANONYMOUS
    return Identity(
        user_id=user.id,
        username=user.username,
        role=user.role,
        beamline_ids=frozenset(b.id for b in user.beamlines)
        if user.role == GlobalRole.scientist
        else frozenset(),
    )


@dataclass(frozen=True)
class Relation:
    """How one identity stands to one proposal: everything the rules look at."""

    member_role: MemberRole | None
    assigned_reviewer: bool
    beamline_staff: bool
    user_office: bool
    state: ProposalState
    released: bool
    embargo_extended: bool
    has_release_date: bool
    has_doi: bool
    review_submitted: bool = False


def relation(identity: Identity, proposal: Proposal, now: datetime) -> Relation:
    """Read the facts the rules need from a loaded proposal (members, reviews, beamtimes)."""
    uid = identity.user_id
    member_role = next((m.role for m in proposal.members if m.user_id == uid), None)
    review = next((r for r in proposal.reviews if r.reviewer_id == uid), None)
    beamlines = {b.beamline_id for b in proposal.beamtimes}
    if proposal.beamline_id is not None:
        beamlines.add(proposal.beamline_id)
    return Relation(
        member_role=member_role if uid is not None else None,
        assigned_reviewer=uid is not None and review is not None,
        beamline_staff=bool(identity.beamline_ids & beamlines),
        user_office=identity.is_user_office,
        state=proposal.state,
        released=proposal.release_date is not None and proposal.release_date <= now,
        embargo_extended=proposal.embargo_extended,
        has_release_date=proposal.release_date is not None,
        has_doi=bool(proposal.doi),
        review_submitted=review is not None and review.submitted_at is not None,
    )


# Who may take each lifecycle transition (the graph itself is in lifecycle.py).
_PI, _STAFF, _OFFICE = "pi", "beamline_staff", "user_office"
TRANSITION_ACTORS: dict[str, frozenset[str]] = {
    "submit": frozenset({_PI}),
    "withdraw": frozenset({_PI}),
    "start_feasibility": frozenset({_STAFF, _OFFICE}),
    "feasible": frozenset({_STAFF, _OFFICE}),
    "not_feasible": frozenset({_STAFF, _OFFICE}),
    "accept": frozenset({_OFFICE}),
    "reject": frozenset({_OFFICE}),
    "schedule": frozenset({_OFFICE}),
    "collect": frozenset({_STAFF, _OFFICE}),
    "close": frozenset({_STAFF, _OFFICE}),
    "publish": frozenset({_OFFICE}),
}
assert set(TRANSITION_ACTORS) == set(TRANSITIONS), "every transition needs its actors"


def _is_member(r: Relation) -> bool:
    return r.member_role is not None


def _is_pi(r: Relation) -> bool:
    return r.member_role == MemberRole.pi


def _staff_sees(r: Relation) -> bool:
    # Drafts are the proposers' own business until submitted.
    return r.beamline_staff and r.state != ProposalState.draft


def may(r: Relation, action: Action) -> bool:
    """May the identity behind ``r`` do ``action`` to the proposal behind ``r``?"""
    if action == Action.view_proposal:
        return r.user_office or _is_member(r) or r.assigned_reviewer or _staff_sees(r) or r.released
    if action == Action.read_data:
        return r.user_office or _is_member(r) or _staff_sees(r) or r.released
    if action == Action.edit_proposal:
        return _is_pi(r) and r.state == ProposalState.draft
    if action == Action.manage_members:
        return (_is_pi(r) or r.user_office) and r.state not in {
            ProposalState.closed,
            ProposalState.published,
        }
    if action == Action.write_review:
        return r.assigned_reviewer and r.state == ProposalState.under_review
    if action == Action.assign_reviewers:
        return r.user_office and r.state in {ProposalState.feasibility, ProposalState.under_review}
    if action == Action.add_beamtime:
        return r.user_office and r.state in {ProposalState.accepted, ProposalState.scheduled}
    if action == Action.release_early:
        return (_is_pi(r) or r.user_office) and r.has_release_date and not r.released
    if action == Action.extend_embargo:
        return (
            (_is_pi(r) or r.user_office)
            and r.has_release_date
            and not r.released
            and not r.embargo_extended
        )
    if action == Action.run_job:
        # Jobs use the facility's compute: staff and members only, even on open data.
        return r.user_office or _is_member(r) or _staff_sees(r)
    if action == Action.set_doi:
        return r.user_office and r.state in {ProposalState.closed, ProposalState.published}
    raise ValueError(f"unknown action {action!r}")


def may_edit_collection(r: Relation) -> bool:
    """May the identity create, edit and publish data collections of the proposal?

    The PI speaks for the team; the user office acts for the facility. Publishing puts
    metadata in the open (files still wait for the release date), so nobody else may.
    """
    return _is_pi(r) or r.user_office


def may_see_collection(r: Relation, published: bool) -> bool:
    """A published collection's description is public (its DOI must resolve at once);
    a draft is the team's and the facility's business, even on open data."""
    return published or r.user_office or _is_member(r) or _staff_sees(r)


def may_download_collection(r: Relation) -> bool:
    """Files of a collection: the same rule as the proposal's data (open once released)."""
    return may(r, Action.read_data)


def may_manage_accounts(identity: Identity) -> bool:
    """May the identity set other people's passwords and disable or re-enable accounts?

    The user office answers for the facility's accounts; nobody else, not even a
    beamline scientist. (Changing one's own password needs only the current one.)
    """
    return identity.is_user_office


def may_transition(r: Relation, transition: str) -> bool:
    """May the identity take ``transition`` now (right state, right role, preconditions)?"""
    if transition not in TRANSITIONS or next_state(r.state, transition) is None:
        return False
    actors = TRANSITION_ACTORS[transition]
    allowed = (
        (_PI in actors and _is_pi(r))
        or (_STAFF in actors and r.beamline_staff)
        or (_OFFICE in actors and r.user_office)
    )
    if transition == "publish":
        allowed = allowed and r.has_doi
    return allowed


def visible_proposals(identity: Identity, now: datetime) -> ColumnElement[bool]:
    """SQL condition on ``Proposal`` equal to ``may(relation(...), view_proposal)``.

    Lists filter in the database rather than in Python so a page of 50 out of 10,000
    proposals costs one query. ``tests/test_access_matrix.py`` checks both agree.
    """
    released = and_(Proposal.release_date.is_not(None), Proposal.release_date <= now)
    if identity.is_user_office:
        return true()
    if identity.is_anonymous:
        return released
    return or_(released, _member_or_reviewer(identity), _staff_clause(identity))


def involved_proposals(identity: Identity) -> ColumnElement[bool]:
    """SQL condition: proposals the identity works on (not merely open data): "my proposals"."""
    if identity.is_user_office:
        return true()
    if identity.is_anonymous:
        return false()
    return or_(_member_or_reviewer(identity), _staff_clause(identity))


def readable_proposals(identity: Identity, now: datetime) -> ColumnElement[bool]:
    """SQL condition on ``Proposal`` equal to ``may(relation(...), read_data)``."""
    released = and_(Proposal.release_date.is_not(None), Proposal.release_date <= now)
    if identity.is_user_office:
        return true()
    if identity.is_anonymous:
        return released
    member = exists(
        select(ProposalMember.id).where(
            ProposalMember.proposal_id == Proposal.id,
            ProposalMember.user_id == identity.user_id,
        )
    )
    return or_(released, member, _staff_clause(identity))


def _member_or_reviewer(identity: Identity) -> ColumnElement[bool]:
    member = exists(
        select(ProposalMember.id).where(
            ProposalMember.proposal_id == Proposal.id,
            ProposalMember.user_id == identity.user_id,
        )
    )
    reviewer = exists(
        select(Review.id).where(
            Review.proposal_id == Proposal.id, Review.reviewer_id == identity.user_id
        )
    )
    return or_(member, reviewer)


def _staff_clause(identity: Identity) -> ColumnElement[bool]:
    if not identity.beamline_ids:
        return false()
    ids = sorted(identity.beamline_ids)
    on_beamtime = exists(
        select(Beamtime.id).where(
            Beamtime.proposal_id == Proposal.id, Beamtime.beamline_id.in_(ids)
        )
    )
    return and_(
        Proposal.state != ProposalState.draft,
        or_(Proposal.beamline_id.in_(ids), on_beamtime),
    )
