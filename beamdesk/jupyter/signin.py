"""One-time, short-lived sign-in tickets that carry a portal user into the hub.

A ticket travels in a URL (browser history, proxy logs, Referer), so it must be worthless
once used or after a minute. The portal signs a random nonce with its secret key and keeps
only the nonce's SHA-256 in ``hub_tickets``; the hub's authenticator checks the signature
(tampered → refused without a database look-up), then consumes the row with a conditional
UPDATE, so of two requests racing with the same ticket exactly one wins.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import ForeignKey, Index, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from beamdesk.db import Base, UTCDateTime, utcnow
from beamdesk.portal.auth import audit
from beamdesk.portal.models import User

TICKET_SECONDS = 60
_SALT = "beamdesk.jupyter.signin"
# The signature's own age limit is a second guard behind the row's expires_at; a little
# slack covers clock rounding between the two processes.
_SIGNATURE_SLACK = 30


class HubTicket(Base):
    """A sign-in ticket for the hub; the secret nonce itself is never stored."""

    __tablename__ = "hub_tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    nonce_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Where the hub sends the browser after sign-in (a path on the hub, checked there too).
    next_path: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # SHA-256 of the portal session's binding secret (step 1); None: an unbound ticket.
    browser_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # SHA-256 of the hub's cookie in the same browser, recorded when the portal confirms
    # (step 2); the hub redeems a bound ticket only for the browser holding that cookie.
    hub_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ix_hub_tickets_expires", "expires_at"),)


class TicketRefused(Exception):
    """The ticket is malformed, tampered with, unknown, used, expired, or its user inactive."""


@dataclass(frozen=True)
class Redeemed:
    username: str
    user_id: int
    next_path: str


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=_SALT)


def _hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def issue_ticket(
    db: Session,
    secret_key: str,
    user: User,
    *,
    next_path: str = "",
    seconds: int = TICKET_SECONDS,
    now: datetime | None = None,
) -> str:
    """A new ticket for ``user``; the caller commits before handing it out."""
    now = now or utcnow()
    nonce = secrets.token_urlsafe(32)
    db.add(
        HubTicket(
            user_id=user.id,
            nonce_hash=_hash(nonce),
            next_path=next_path[:1000],
            created_at=now,
            expires_at=now + timedelta(seconds=seconds),
        )
    )
    # Old tickets are dead weight: drop the expired ones of this user while we are here.
    db.execute(
        HubTicket.__table__.delete().where(
            HubTicket.user_id == user.id, HubTicket.expires_at < now - timedelta(days=1)
        )
    )
    db.flush()
    return str(_serializer(secret_key).dumps(nonce))


def redeem_ticket(
    db: Session,
    secret_key: str,
    ticket: str,
    *,
    max_seconds: int = TICKET_SECONDS,
    now: datetime | None = None,
) -> Redeemed:
    """Consume ``ticket`` and say whose it is; :class:`TicketRefused` otherwise.

    The caller commits: the ticket is used from the moment this returns.
    """
    now = now or utcnow()
    if not ticket or len(ticket) > 500:
        raise TicketRefused("no ticket")
    try:
        nonce = _serializer(secret_key).loads(ticket, max_age=max_seconds + _SIGNATURE_SLACK)
    except SignatureExpired as exc:
        raise TicketRefused("expired") from exc
    except BadSignature as exc:
        raise TicketRefused("bad signature") from exc
    if not isinstance(nonce, str):
        raise TicketRefused("bad payload")
    row = db.scalar(select(HubTicket).where(HubTicket.nonce_hash == _hash(nonce)))
    if row is None:
        raise TicketRefused("unknown")
    if row.used_at is not None:
        audit(db, "hub_ticket_replayed", row.user_id, str(row.id))
        raise TicketRefused("used already")
    if row.expires_at <= now:
        raise TicketRefused("expired")
    consumed = db.execute(
        update(HubTicket)
        .where(HubTicket.id == row.id, HubTicket.used_at.is_(None))
        .values(used_at=now)
    )
    if consumed.rowcount != 1:  # type: ignore[attr-defined]
        raise TicketRefused("used already")
    user = db.get(User, row.user_id)
    if user is None or not user.is_active:
        raise TicketRefused("inactive user")
    audit(db, "hub_login", user, str(row.id))
    return Redeemed(user.username, user.id, row.next_path)
