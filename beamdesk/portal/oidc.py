"""OpenID Connect sign-in (Keycloak, Umbrella ID, eduTEAMS…): the Authlib client and user mapping.

A person signing in through the identity provider (IdP) is known by the pair
(issuer, subject): the only identifier the provider promises never to reuse. On first
sign-in a new ``user``-role account is created. An existing local account is *never* linked
by e-mail address: many providers let people set an unverified address, so matching on it
would let anyone who can register at the IdP take over the local account with that address.
Linking a local account to an IdP identity is an administrator's job.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from sqlalchemy import select
from sqlalchemy.orm import Session

from beamdesk.errors import Forbidden
from beamdesk.portal.auth import audit
from beamdesk.portal.models import GlobalRole, User
from beamdesk.settings import Settings

CLIENT_NAME = "sso"
CALLBACK_PATH = "/login/oidc/callback"
USERNAME_MAX = 64
_NOT_ALLOWED = re.compile(r"[^a-z0-9._-]+")


class OidcError(Forbidden):
    """The provider's answer cannot be used to sign in; the message is safe to show."""

    title = "Sign-in refused"


def make_client(settings: Settings) -> StarletteOAuth2App:
    """An Authlib client reading the provider's metadata from its discovery document."""
    oauth = OAuth()
    issuer = settings.oidc.issuer.rstrip("/")
    return oauth.register(
        CLIENT_NAME,
        client_id=settings.oidc.client_id,
        client_secret=settings.oidc.client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        # Authlib adds a nonce for the 'openid' scope and a PKCE verifier for S256.
        client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
    )


def id_token_checks(issuer: str, client_id: str) -> dict[str, dict[str, Any]]:
    """Claims the ID token must carry, beyond the nonce, expiry and signature Authlib checks.

    Authlib checks ``aud`` only when told to: without this, a token the provider issued to
    another client (another site using the same IdP) would be accepted here.
    """
    return {
        "iss": {"essential": True, "value": issuer},
        "aud": {"essential": True, "values": [client_id]},
        "sub": {"essential": True},
    }


def callback_url(settings: Settings) -> str:
    """Where the provider sends the browser back; must be registered at the provider."""
    return settings.base_url.rstrip("/") + CALLBACK_PATH


def sanitise_username(wanted: str) -> str:
    """'José Müller@x' -> 'jose_muller_x': ASCII letters, digits and . _ - only."""
    ascii_name = unicodedata.normalize("NFKD", wanted).encode("ascii", "ignore").decode()
    name = _NOT_ALLOWED.sub("_", ascii_name.lower()).strip("._-")
    return name[: USERNAME_MAX - 8] or "user"


def unique_username(db: Session, wanted: str) -> str:
    base = sanitise_username(wanted)
    taken = set(db.scalars(select(User.username).where(User.username.like(f"{base}%"))))
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _text(claims: Mapping[str, Any], key: str, limit: int = 255) -> str:
    value = claims.get(key)
    return value[:limit] if isinstance(value, str) else ""


def user_for_claims(db: Session, claims: Mapping[str, Any], ip: str = "") -> User:
    """The account for validated ID-token claims, created on first sign-in.

    Name and e-mail are refreshed from the provider on each sign-in, since it is their
    source of truth; username and role stay as they are.
    """
    issuer, subject = _text(claims, "iss"), _text(claims, "sub")
    if not issuer or not subject:
        raise OidcError("The identity provider did not say who you are (no iss/sub).")
    user = db.scalar(select(User).where(User.oidc_issuer == issuer, User.oidc_subject == subject))
    email, full_name = _text(claims, "email"), _text(claims, "name")
    if user is None:
        wanted = _text(claims, "preferred_username") or email.split("@")[0] or subject
        user = User(
            username=unique_username(db, wanted),
            role=GlobalRole.user,
            email=email,
            full_name=full_name,
            password_hash="",
            oidc_issuer=issuer,
            oidc_subject=subject,
        )
        db.add(user)
        db.flush()
        audit(db, "user_created", user, user.username, f"oidc {issuer}", ip)
    else:
        if not user.is_active:
            raise OidcError("This account is disabled; contact the user office.")
        user.email = email or user.email
        user.full_name = full_name or user.full_name
    audit(db, "login", user, user.username, f"oidc {issuer}", ip)
    return user
