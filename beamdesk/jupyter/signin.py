"""One-time, short-lived sign-in tickets that carry a portal user into the hub, bound to
the browser that asked for them.

A ticket travels in a URL (browser history, proxy logs, Referer), so it must be worthless
once used or after a minute. The portal signs a random nonce with its secret key and keeps
only the nonce's SHA-256 in ``hub_tickets``; the hub's authenticator checks the signature
(tampered → refused without a database look-up), then consumes the row with a conditional
UPDATE, so of two requests racing with the same ticket exactly one wins.

Binding (login CSRF): anyone can get a ticket for their own account and make somebody
else's browser open it, which would sign that browser in to *their* hub account (what the
victim then uploads or types in a notebook lands with the attacker). A ticket the portal
hands to a browser therefore works only in that browser. The hub may run on another host
and cannot read the portal's cookies, so the proof takes one round trip through the portal:

1. ``issue_ticket(..., browser=secret)``: the portal keeps a random secret in the signed
   session of the browser that asks, and stores its SHA-256 in the ticket's row.
2. The hub, given a bound ticket (``check_ticket``), keeps a random secret of its own in a
   cookie on its host and sends the browser to the portal's ``/jupyter/confirm`` with the
   SHA-256 of that secret. The portal confirms (``confirm_ticket``) only if this browser's
   session holds the secret of step 1 and is signed in as the ticket's user, and records
   the hub's hash in the row.
3. The hub redeems (``redeem_ticket(..., hub_browser=cookie)``) only if its cookie hashes
   to what step 2 recorded.

A browser that did not ask fails step 2 (its session has no such secret); a step-3 link
taken from the attacker's own round trip fails step 3 (the victim's browser does not hold
the attacker's hub cookie). Every ticket is bound: one without a browser hash (a row from
before binding existed) is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast
from urllib.parse import urlencode

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import ForeignKey, Index, String, Table, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from beamdesk.db import Base, UTCDateTime, utcnow
from beamdesk.portal.auth import audit
from beamdesk.portal.models import User

TICKET_SECONDS = 60
# The hub's pages of the sign-in: the first stop (ticket checked, hub cookie set) and the
# last one (ticket consumed for the browser the portal confirmed).
LOGIN_PATH = "/hub/beamdesk-login"
SIGNIN_PATH = "/hub/beamdesk-signin"
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
    # SHA-256 of the portal session's binding secret (step 1); None only in rows from
    # before binding existed, which are refused.
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


@dataclass(frozen=True)
class Pending:
    """A valid, unused ticket as the hub first sees it (nothing is changed by looking)."""

    ticket_id: int
    user_id: int
    bound: bool


_HEX64 = re.compile(r"[0-9a-f]{64}")


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=_SALT)


def _hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def signin_url(hub_url: str, ticket: str) -> str:
    """Where the portal sends a browser once it has confirmed the ticket (step 3)."""
    return f"{hub_url.rstrip('/')}{SIGNIN_PATH}?{urlencode({'ticket': ticket})}"


def secret_hash(secret: str) -> str:
    """The SHA-256 (hex) under which a binding secret is stored or sent."""
    return _hash(secret)


def new_binding_secret() -> str:
    return secrets.token_urlsafe(32)


def _same(stored: str | None, secret: str) -> bool:
    return bool(stored and secret) and hmac.compare_digest(stored or "", _hash(secret))


def issue_ticket(
    db: Session,
    secret_key: str,
    user: User,
    *,
    next_path: str = "",
    seconds: int = TICKET_SECONDS,
    now: datetime | None = None,
    browser: str,
) -> str:
    """A new ticket for ``user``; the caller commits before handing it out.

    ``browser``: the binding secret kept in the asking browser's portal session; every
    ticket the portal gives to a browser must have one (see the module's docstring).
    """
    now = now or utcnow()
    nonce = secrets.token_urlsafe(32)
    if len(browser) < 32:
        raise ValueError("a binding secret needs at least 32 characters")
    db.add(
        HubTicket(
            user_id=user.id,
            nonce_hash=_hash(nonce),
            next_path=next_path[:1000],
            created_at=now,
            expires_at=now + timedelta(seconds=seconds),
            browser_hash=_hash(browser),
        )
    )
    # Old tickets are dead weight: drop the expired ones of this user while we are here.
    db.execute(
        cast(Table, HubTicket.__table__)
        .delete()
        .where(HubTicket.user_id == user.id, HubTicket.expires_at < now - timedelta(days=1))
    )
    db.flush()
    return str(_serializer(secret_key).dumps(nonce))


def _usable(
    db: Session, secret_key: str, ticket: str, max_seconds: int, now: datetime
) -> HubTicket:
    """The row of a well-signed, known, unused and unexpired ticket; TicketRefused else."""
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
    return row


def _active_user(db: Session, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None or not user.is_active:
        raise TicketRefused("inactive user")
    return user


def check_ticket(
    db: Session,
    secret_key: str,
    ticket: str,
    *,
    max_seconds: int = TICKET_SECONDS,
    now: datetime | None = None,
) -> Pending:
    """What the hub does first: is the ticket usable, and is it bound? Changes nothing."""
    row = _usable(db, secret_key, ticket, max_seconds, now or utcnow())
    _active_user(db, row.user_id)
    return Pending(row.id, row.user_id, row.browser_hash is not None)


def confirm_ticket(
    db: Session,
    secret_key: str,
    ticket: str,
    *,
    browser: str,
    user_id: int | None,
    hub_hash: str,
    max_seconds: int = TICKET_SECONDS,
    now: datetime | None = None,
    ip: str = "",
) -> None:
    """Step 2, on the portal: this browser asked for ``ticket``; bind it to ``hub_hash``.

    ``browser`` is the binding secret of the browser's portal session ("" if it has none)
    and ``user_id`` whom that session is signed in as. The caller commits.
    """
    now = now or utcnow()
    row = _usable(db, secret_key, ticket, max_seconds, now)

    def refuse(reason: str) -> TicketRefused:
        audit(db, "hub_ticket_refused", user_id, str(row.id), reason, ip)
        return TicketRefused(reason)

    if row.browser_hash is None:
        raise refuse("not bound to a browser")
    if user_id != row.user_id or not _same(row.browser_hash, browser):
        raise refuse("asked for by another browser")
    if not _HEX64.fullmatch(hub_hash or ""):
        raise refuse("no hub binding")
    if row.hub_hash is not None:
        if hmac.compare_digest(row.hub_hash, hub_hash):
            return  # the same browser again (a reload): nothing to change
        raise refuse("confirmed for another browser")
    bound = db.execute(
        update(HubTicket)
        .where(HubTicket.id == row.id, HubTicket.hub_hash.is_(None))
        .values(hub_hash=hub_hash)
    )
    if bound.rowcount != 1:  # type: ignore[attr-defined]
        raise refuse("confirmed for another browser")


def redeem_ticket(
    db: Session,
    secret_key: str,
    ticket: str,
    *,
    hub_browser: str = "",
    max_seconds: int = TICKET_SECONDS,
    now: datetime | None = None,
) -> Redeemed:
    """Consume ``ticket`` and say whose it is; :class:`TicketRefused` otherwise.

    A bound ticket needs ``hub_browser``, the hub's cookie secret of the browser the
    portal confirmed it for. The caller commits: the ticket is used from the moment this
    returns.
    """
    now = now or utcnow()
    row = _usable(db, secret_key, ticket, max_seconds, now)
    if row.browser_hash is None:
        raise TicketRefused("not bound to a browser")
    if row.hub_hash is None:
        raise TicketRefused("not confirmed by the browser that asked")
    if not _same(row.hub_hash, hub_browser):
        audit(db, "hub_ticket_refused", row.user_id, str(row.id), "another browser")
        raise TicketRefused("opened in another browser")
    consumed = db.execute(
        update(HubTicket)
        .where(HubTicket.id == row.id, HubTicket.used_at.is_(None))
        .values(used_at=now)
    )
    if consumed.rowcount != 1:  # type: ignore[attr-defined]
        raise TicketRefused("used already")
    user = _active_user(db, row.user_id)
    audit(db, "hub_login", user, str(row.id))
    return Redeemed(user.username, user.id, row.next_path)
