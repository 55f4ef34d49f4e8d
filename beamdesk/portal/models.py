"""The facility office's tables: people, beamlines, proposals and their life, the catalogue.

Roles are mostly relations, not labels: a principal investigator is a member with role
``pi`` on one proposal, a reviewer reads what is assigned to them, a beamline scientist
sees what runs on their beamline. Only ``user_office`` is global.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from beamdesk.db import Base, UTCDateTime, utcnow


class GlobalRole(enum.StrEnum):
    """What a person is at the facility, independent of any proposal."""

    user = "user"
    reviewer = "reviewer"
    scientist = "scientist"  # beamline scientist; which beamlines: BeamlineStaff
    user_office = "user_office"


class MemberRole(enum.StrEnum):
    pi = "pi"
    participant = "participant"
    local_contact = "local_contact"


class ProposalState(enum.StrEnum):
    draft = "draft"
    submitted = "submitted"
    feasibility = "feasibility"
    under_review = "under_review"
    accepted = "accepted"
    rejected = "rejected"
    scheduled = "scheduled"
    data_collected = "data_collected"
    closed = "closed"
    published = "published"


class ProposalCategory(enum.StrEnum):
    new = "new"
    continuation = "continuation"
    resubmission = "resubmission"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings: adding a state later needs no ALTER TYPE on PostgreSQL.
    return Enum(cls, name=name, native_enum=False, length=32, validate_strings=True)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(255), default="")
    full_name: Mapped[str] = mapped_column(String(255), default="")
    orcid: Mapped[str] = mapped_column(String(32), default="")
    affiliation: Mapped[str] = mapped_column(String(255), default="")
    role: Mapped[GlobalRole] = mapped_column(_enum(GlobalRole, "global_role"))
    # argon2id hash; empty for accounts that sign in only through OpenID Connect.
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    oidc_issuer: Mapped[str] = mapped_column(String(255), default="")
    oidc_subject: Mapped[str] = mapped_column(String(255), default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Browser sessions carry the generation they were made in; raising it (sign-out,
    # password change, disabling) ends every session of the account at once.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Unused since revision 0002 (sign-in throttling is per user name and per address, in
    # beamdesk.web.ratelimit, and never locks an account). Kept: dropping a column of
    # ``users`` on SQLite rebuilds the table every other table refers to.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    beamlines: Mapped[list[Beamline]] = relationship(
        secondary="beamline_staff", back_populates="scientists"
    )
    memberships: Mapped[list[ProposalMember]] = relationship(back_populates="user")

    __table_args__ = (Index("ix_users_oidc", "oidc_issuer", "oidc_subject"),)

    @property
    def display_name(self) -> str:
        return self.full_name or self.username


class Beamline(Base):
    __tablename__ = "beamlines"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    techniques: Mapped[str] = mapped_column(String(255), default="")

    scientists: Mapped[list[User]] = relationship(
        secondary="beamline_staff", back_populates="beamlines"
    )


class BeamlineStaff(Base):
    __tablename__ = "beamline_staff"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    beamline_id: Mapped[int] = mapped_column(
        ForeignKey("beamlines.id", ondelete="CASCADE"), primary_key=True
    )


class Proposal(Base):
    __tablename__ = "proposals"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The facility's proposal number; also the name of the proposal's data folder.
    number: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    abstract: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[ProposalCategory] = mapped_column(
        _enum(ProposalCategory, "proposal_category"), default=ProposalCategory.new
    )
    state: Mapped[ProposalState] = mapped_column(
        _enum(ProposalState, "proposal_state"), default=ProposalState.draft, index=True
    )
    # The beamline asked for; feasibility is judged by its scientists.
    beamline_id: Mapped[int | None] = mapped_column(ForeignKey("beamlines.id"), nullable=True)
    shifts_requested: Mapped[int] = mapped_column(Integer, default=3)
    # Data are open to everyone from this instant on; None while no beamtime has ended.
    release_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    embargo_extended: Mapped[bool] = mapped_column(Boolean, default=False)
    doi: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    beamline: Mapped[Beamline | None] = relationship()
    members: Mapped[list[ProposalMember]] = relationship(
        back_populates="proposal", cascade="all, delete-orphan"
    )
    samples: Mapped[list[Sample]] = relationship(
        back_populates="proposal", cascade="all, delete-orphan", order_by="Sample.id"
    )
    beamtimes: Mapped[list[Beamtime]] = relationship(
        back_populates="proposal", cascade="all, delete-orphan", order_by="Beamtime.start"
    )
    reviews: Mapped[list[Review]] = relationship(
        back_populates="proposal", cascade="all, delete-orphan", order_by="Review.id"
    )
    transitions: Mapped[list[Transition]] = relationship(
        back_populates="proposal", cascade="all, delete-orphan", order_by="Transition.id"
    )


class ProposalMember(Base):
    __tablename__ = "proposal_members"

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[MemberRole] = mapped_column(_enum(MemberRole, "member_role"))

    proposal: Mapped[Proposal] = relationship(back_populates="members")
    user: Mapped[User] = relationship(back_populates="memberships")

    __table_args__ = (UniqueConstraint("proposal_id", "user_id", name="uq_member_once"),)


class Sample(Base):
    __tablename__ = "samples"

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    formula: Mapped[str] = mapped_column(String(255), default="")
    # The safety declaration: hazards stated by the proposer, and that they declared them.
    hazards: Mapped[str] = mapped_column(Text, default="")
    safety_declared: Mapped[bool] = mapped_column(Boolean, default=False)

    proposal: Mapped[Proposal] = relationship(back_populates="samples")


class Beamtime(Base):
    __tablename__ = "beamtimes"

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"))
    beamline_id: Mapped[int] = mapped_column(ForeignKey("beamlines.id"), index=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    shifts: Mapped[int] = mapped_column(Integer, default=3)

    proposal: Mapped[Proposal] = relationship(back_populates="beamtimes")
    beamline: Mapped[Beamline] = relationship()


class Review(Base):
    """A reviewer's assignment to a proposal; score and comment are filled in when reviewed."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    proposal: Mapped[Proposal] = relationship(back_populates="reviews")
    reviewer: Mapped[User] = relationship()

    __table_args__ = (UniqueConstraint("proposal_id", "reviewer_id", name="uq_review_once"),)


class Transition(Base):
    """One step of a proposal's life (or of its embargo): who, when, from, to, why."""

    __tablename__ = "transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    from_state: Mapped[str] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    proposal: Mapped[Proposal] = relationship(back_populates="transitions")
    actor: Mapped[User | None] = relationship()


class Dataset(Base):
    """One file under a proposal's data folder, as the catalogue last saw it."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"))
    # Relative to the proposal folder, always with forward slashes.
    path: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    mtime: Mapped[datetime] = mapped_column(UTCDateTime)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    is_hdf5: Mapped[bool] = mapped_column(Boolean, default=False)
    title: Mapped[str] = mapped_column(String(1024), default="")
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    instrument: Mapped[str] = mapped_column(String(255), default="")
    # NX classes along the default plot: e.g. "NXentry/NXdata".
    nx_classes: Mapped[str] = mapped_column(String(255), default="")
    # Why the file could not be read, if it could not; the walk goes on regardless.
    error: Mapped[str] = mapped_column(Text, default="")
    # "raw" from the beamline, "processed" from BeamDesk's analysis jobs.
    kind: Mapped[str] = mapped_column(String(16), default="raw")
    # Provenance of derived datasets: inputs, job and configuration (filled by beamdesk.jobs).
    provenance: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # Scalars of the NeXus sample and instrument: {"sample/name": {"value": .., "unit": ..}}.
    parameters: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # Lower-case path, title and instrument in one column: one LIKE per word, not four.
    search_text: Mapped[str] = mapped_column(Text, default="")
    indexed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    proposal: Mapped[Proposal] = relationship()

    __table_args__ = (
        UniqueConstraint("proposal_id", "path", name="uq_dataset_path"),
        Index("ix_datasets_proposal_path", "proposal_id", "path"),
        Index("ix_datasets_proposal_start", "proposal_id", "start_time"),
    )


class ApiToken(Base):
    """A personal token for scripts. Only a SHA-256 of the secret is kept.

    The secret is 256 random bits, so a fast hash is enough: there is nothing to guess.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    # The first characters of the token, shown in lists so people can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User] = relationship()


class AuditEvent(Base):
    """Sign-ins, denials, downloads and transitions, readable by the user office."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(1024), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
