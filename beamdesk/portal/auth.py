"""Accounts: argon2id passwords, session generations, passwords changed and accounts
disabled, personal API tokens.

Pure service functions over a SQLAlchemy session; the web layer turns their results into
cookies and responses. Sign-in throttling is the web layer's (``beamdesk.web.ratelimit``):
it is per user name and per client address, and never locks an account.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from beamdesk.db import utcnow
from beamdesk.errors import BadRequest, Conflict, Invalid, Unauthorized
from beamdesk.portal.models import ApiToken, AuditEvent, GlobalRole, User

# argon2-cffi's defaults are argon2id with RFC 9106's low-memory profile.
_hasher = PasswordHasher()
# Each argon2id hash or check takes 64 MiB for ~50 ms of one core. A flood of sign-ins from
# many addresses would otherwise run one per server thread at once (40 × 64 MiB); this
# many run at a time, the rest wait their turn (the CPU is the bound either way).
ARGON2_AT_ONCE = 4
_argon2_slots = threading.BoundedSemaphore(ARGON2_AT_ONCE)
# Verifying against this when the user does not exist keeps the timing the same.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
TOKEN_PREFIX = "bd_"
MIN_PASSWORD_LENGTH = 10


WRONG_CREDENTIALS = "Wrong username or password."


class AuthError(Unauthorized):
    """Sign-in refused; the message is safe to show to the person signing in."""


class AccountError(Conflict):
    """A password change or account change refused; the message is safe to show."""


class WrongPassword(BadRequest, AccountError):
    """The current password given to change it is not the account's."""


class WeakPassword(Invalid, AccountError):
    """The new password breaks the rules (``MIN_PASSWORD_LENGTH``)."""


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    with _argon2_slots:
        return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        with _argon2_slots:
            # True or raises; a missing hash is checked against a dummy one (same time taken)
            _hasher.verify(password_hash or _DUMMY_HASH, password)
        return bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def audit(
    db: Session,
    action: str,
    actor: User | int | None = None,
    target: str = "",
    detail: str = "",
    ip: str = "",
) -> None:
    actor_id = actor.id if isinstance(actor, User) else actor
    db.add(AuditEvent(action=action, actor_id=actor_id, target=target, detail=detail, ip=ip))


def authenticate(
    db: Session,
    username: str,
    password: str,
    *,
    now: datetime | None = None,
    ip: str = "",
) -> User:
    """Check a username and password; :class:`AuthError` if they do not match.

    An unknown name, a disabled account and an account without a password (single sign-on
    only) cost one argon2 verification each, like a wrong password, and give the same
    error, so the answer does not tell which names exist. Nothing here locks an account:
    that would let anybody lock anybody out.
    """
    user = db.scalar(select(User).where(User.username == username))
    active = user if user is not None and user.is_active else None
    if active is None or not verify_password(active.password_hash, password):
        if active is None:
            verify_password("", password)  # the same argon2 work as for a real account
            why = "unknown user" if user is None else "disabled account"
        else:
            why = "wrong password"
        audit(db, "login_failed", active, username, why, ip)
        raise AuthError(WRONG_CREDENTIALS)
    user = active
    if _hasher.check_needs_rehash(user.password_hash):
        with _argon2_slots:
            user.password_hash = _hasher.hash(password)
    audit(db, "login", user, username, "password", ip)
    return user


def end_sessions(db: Session, user: User) -> None:
    """Every browser session of ``user`` stops working at its next request.

    Sessions carry the generation they were made in (``beamdesk.web.deps.get_user``);
    raised in SQL, so two requests doing this at once both count.
    """
    user.session_generation = User.session_generation + 1
    db.flush()  # the attribute is reloaded on its next read


def revoke_all_tokens(db: Session, user: User, now: datetime | None = None) -> int:
    """Revoke every live API token of ``user``; how many there were."""
    result = db.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _new_hash(password: str) -> str:
    try:
        return hash_password(password)
    except ValueError as exc:
        raise WeakPassword(f"The new password is too short: {exc}.") from exc


def change_password(
    db: Session,
    user: User,
    current: str,
    new: str,
    *,
    now: datetime | None = None,
    ip: str = "",
) -> None:
    """A person changes their own password, proving the current one.

    Afterwards every session and every API token of the account is dead: whoever knew
    the old password may have made either. (The caller starts a fresh session for the
    browser that made the change.)
    """
    # One argon2 verification on every path, as at sign-in.
    if not verify_password(user.password_hash, current):
        audit(db, "password_change_failed", user, user.username, "", ip)
        if not user.password_hash:
            raise WrongPassword(
                "Your account signs in through single sign-on; it has no password here."
            )
        raise WrongPassword("The current password is wrong.")
    user.password_hash = _new_hash(new)
    end_sessions(db, user)
    revoked = revoke_all_tokens(db, user, now)
    audit(db, "password_changed", user, user.username, f"tokens_revoked={revoked}", ip)


def set_password(
    db: Session,
    actor: User,
    user: User,
    new: str,
    *,
    now: datetime | None = None,
    ip: str = "",
) -> None:
    """The user office gives ``user`` a new password (the caller checked it may).

    As with a change by the person: their sessions and API tokens end.
    """
    user.password_hash = _new_hash(new)
    end_sessions(db, user)
    revoked = revoke_all_tokens(db, user, now)
    audit(db, "password_set", actor, user.username, f"tokens_revoked={revoked}", ip)


def set_active(
    db: Session,
    actor: User,
    user: User,
    active: bool,
    *,
    now: datetime | None = None,
    ip: str = "",
) -> None:
    """Disable or re-enable an account (the caller checked it may).

    Disabling ends the account's sessions and revokes its tokens at once (a disabled
    account's tokens fail anyway, but re-enabling it must not bring them back).
    """
    if actor.id == user.id and not active:
        raise AccountError("You cannot disable your own account.")
    if user.is_active == active:
        return
    user.is_active = active
    if active:
        audit(db, "account_enabled", actor, user.username, "", ip)
        return
    end_sessions(db, user)
    revoked = revoke_all_tokens(db, user, now)
    audit(db, "account_disabled", actor, user.username, f"tokens_revoked={revoked}", ip)


def create_user(
    db: Session,
    username: str,
    role: GlobalRole,
    *,
    password: str | None = None,
    email: str = "",
    full_name: str = "",
) -> User:
    if db.scalar(select(User.id).where(User.username == username)) is not None:
        raise ValueError(f"user {username!r} exists already")
    user = User(
        username=username,
        role=role,
        email=email,
        full_name=full_name,
        password_hash=hash_password(password) if password else "",
    )
    db.add(user)
    db.flush()
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewToken:
    token: str  # shown once, never stored
    row: ApiToken


def create_api_token(
    db: Session,
    user: User,
    *,
    name: str = "",
    expires_days: int | None = 90,
    now: datetime | None = None,
) -> NewToken:
    now = now or utcnow()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name,
        prefix=token[:10],
        token_hash=_token_hash(token),
        created_at=now,
        expires_at=now + timedelta(days=expires_days) if expires_days else None,
    )
    db.add(row)
    db.flush()
    audit(db, "token_created", user, row.prefix, name)
    return NewToken(token, row)


def user_from_token(db: Session, token: str, now: datetime | None = None) -> User | None:
    """The active user a bearer token belongs to, or None if it is unknown/expired/revoked."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    now = now or utcnow()
    row = db.scalar(
        select(ApiToken)
        .where(ApiToken.token_hash == _token_hash(token))
        .options(joinedload(ApiToken.user))
    )
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    # Recording every use would be one write per API call; a minute's precision is enough.
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now
    user = row.user
    return user if user.is_active else None


def revoke_api_token(db: Session, user: User, token_id: int, now: datetime | None = None) -> bool:
    row = db.get(ApiToken, token_id)
    if row is None or row.user_id != user.id or row.revoked_at is not None:
        return False
    row.revoked_at = now or utcnow()
    audit(db, "token_revoked", user, row.prefix)
    return True


def list_api_tokens(db: Session, user: User) -> list[ApiToken]:
    """The user's own tokens, newest first (revoked and expired ones included, for the record)."""
    return list(
        db.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user.id)
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
    )
