"""Builders for test worlds: people with each role, proposals forced into any state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from beamdesk.db import utcnow
from beamdesk.portal.auth import create_api_token, create_user
from beamdesk.portal.models import (
    Beamline,
    Beamtime,
    GlobalRole,
    MemberRole,
    Proposal,
    ProposalMember,
    ProposalState,
    Review,
    Sample,
    User,
)

PASSWORD = "correct horse battery"


@dataclass
class World:
    beamline: Beamline
    other_beamline: Beamline
    users: dict[str, User] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)


# Who each test persona is, relative to proposals made by ``make_proposal``.
PERSONAS = {
    "pi": GlobalRole.user,
    "participant": GlobalRole.user,
    "local_contact": GlobalRole.scientist,
    "reviewer": GlobalRole.reviewer,
    "other_reviewer": GlobalRole.reviewer,
    "scientist": GlobalRole.scientist,
    "other_scientist": GlobalRole.scientist,
    "outsider": GlobalRole.user,
    "office": GlobalRole.user_office,
}


def make_world(db: Session, *, tokens: bool = False) -> World:
    xrf = Beamline(name="XRF", description="X-ray fluorescence microscopy")
    saxs = Beamline(name="SAXS", description="Small-angle scattering")
    db.add_all([xrf, saxs])
    db.flush()
    world = World(beamline=xrf, other_beamline=saxs)
    for name, role in PERSONAS.items():
        user = create_user(db, name, role, password=PASSWORD, email=f"{name}@example.org")
        world.users[name] = user
        if tokens:
            world.tokens[name] = create_api_token(db, user, name="test").token
    world.users["scientist"].beamlines.append(xrf)
    world.users["other_scientist"].beamlines.append(saxs)
    db.flush()
    return world


def make_proposal(
    db: Session,
    world: World,
    number: str,
    state: ProposalState,
    *,
    release_date: datetime | None = None,
    with_beamtime: bool = True,
) -> Proposal:
    """A proposal put directly into ``state`` (bypassing the lifecycle, for matrix tests)."""
    now = utcnow()
    p = Proposal(
        number=number,
        title=f"Proposal {number} in {state.value}",
        abstract="Trace elements in a test sample.",
        state=state,
        beamline_id=world.beamline.id,
        release_date=release_date,
    )
    p.members.append(ProposalMember(user_id=world.users["pi"].id, role=MemberRole.pi))
    p.members.append(
        ProposalMember(user_id=world.users["participant"].id, role=MemberRole.participant)
    )
    p.members.append(
        ProposalMember(user_id=world.users["local_contact"].id, role=MemberRole.local_contact)
    )
    p.samples.append(Sample(name="sample", formula="Fe2O3", safety_declared=True))
    p.reviews.append(Review(reviewer_id=world.users["reviewer"].id))
    if with_beamtime:
        p.beamtimes.append(
            Beamtime(
                beamline_id=world.beamline.id,
                start=now - timedelta(days=3),
                end=now - timedelta(days=1),
                shifts=6,
            )
        )
    db.add(p)
    db.flush()
    return p
