"""Accounts: argon2id passwords, sign-in throttling, personal API tokens.

Pure service functions over a SQLAlchemy session; the web layer turns their results into
cookies and responses.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from beamdesk.db import utcnow
from beamdesk.portal.models import ApiToken, AuditEvent, GlobalRole, User

# argon2-cffi's defaults are argon2id with RFC 9106's low-memory profile.
_hasher = PasswordHasher()
# Verifying against this when the user does not exist keeps the timing the same.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
TOKEN_PREFIX = "bd_"
MIN_PASSWORD_LENGTH = 10


class AuthError(Exception):
    """Sign-in refused; the message is safe to show to the person signing in."""


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
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
    max_failures: int,
    lockout_seconds: int,
    now: datetime | None = None,
    ip: str = "",
) -> User:
    """Check a username and password; lock the account for a while after repeated failures.

    The lock-out doubles with each further failure (capped at a day), which stops online
    guessing without letting an attacker lock a person out for long by accident.
    """
    now = now or utcnow()
    user = db.scalar(select(User).where(User.username == username))
    if user is None or not user.is_active:
        verify_password("", password)
        audit(db, "login_failed", None, username, "unknown user", ip)
        raise AuthError("Wrong username or password.")
    if user.locked_until is not None and user.locked_until > now:
        audit(db, "login_locked", user, username, "", ip)
        wait = int((user.locked_until - now).total_seconds()) + 1
        raise AuthError(f"Too many failed sign-ins. Try again in {wait} seconds.")
    if not verify_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= max_failures:
            extra = user.failed_logins - max_failures
            seconds = min(lockout_seconds * (2**extra), 86400)
            user.locked_until = now + timedelta(seconds=seconds)
        audit(db, "login_failed", user, username, f"failures={user.failed_logins}", ip)
        raise AuthError("Wrong username or password.")
    user.failed_logins = 0
    user.locked_until = None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    audit(db, "login", user, username, "password", ip)
    return user


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
