"""Sign-in and sign-out: local accounts (argon2id) and OpenID Connect; ``/api/me``.

A successful sign-in clears the session before storing the user id and the account's
session generation, so nothing planted in the session beforehand (a fixed CSRF token,
stale OAuth state) survives into the signed-in session. Signing out raises the
generation: every session of the account ends, a copied cookie included.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.starlette_client import OAuthError, StarletteOAuth2App
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from joserfc.errors import JoseError

from beamdesk.errors import BadGateway, BadRequest
from beamdesk.portal import oidc
from beamdesk.portal.auth import AuthError, audit, authenticate, end_sessions
from beamdesk.portal.models import User
from beamdesk.settings import Settings
from beamdesk.web.deps import (
    DB,
    SESSION_GENERATION,
    SESSION_USER,
    AppSettings,
    CurrentUser,
    Now,
    SignedInUser,
)
from beamdesk.web.metrics import record_sign_in_failure
from beamdesk.web.problems import not_found
from beamdesk.web.ratelimit import (
    PasswordAttempt,
    client_ip,
    rate_limited,
    remember_device,
    sign_in_attempt,
)
from beamdesk.web.schemas import Me, api_errors
from beamdesk.web.security import verify_csrf

router = APIRouter(responses=api_errors())
AFTER_SIGN_IN = "/proposals"
OIDC_NEXT = "oidc_next"


def safe_next(value: str | None, default: str = AFTER_SIGN_IN) -> str:
    """``value`` if it is a path on this site, else '/': never a redirect to another site.

    '//host' and '/\\host' are read by browsers as other hosts; browsers also drop tabs and
    newlines, so '/\\t/host' would become '//host'.
    """
    if not value:
        return default
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def start_session(request: Request, user: User) -> None:
    request.session.clear()
    request.session[SESSION_USER] = user.id
    request.session[SESSION_GENERATION] = user.session_generation


def login_page(
    request: Request,
    settings: Settings,
    next_url: str,
    error: str = "",
    username: str = "",
    status: int = 200,
) -> HTMLResponse:
    context: dict[str, Any] = {
        "user": None,
        "next": next_url,
        "error": error,
        "username": username,
        "oidc_enabled": settings.oidc.enabled,
        "oidc_name": settings.oidc.name,
    }
    return request.app.state.templates.TemplateResponse(
        request, "login.html", context, status_code=status
    )


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(
    request: Request, user: CurrentUser, settings: AppSettings, next: str = ""
) -> Response:
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return login_page(request, settings, next)


@router.post(
    "/login",
    include_in_schema=False,
    dependencies=[Depends(verify_csrf), Depends(rate_limited("login"))],
)
def login(
    request: Request,
    db: DB,
    settings: AppSettings,
    now: Now,
    attempt: Annotated[PasswordAttempt, Depends(sign_in_attempt)],
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    try:
        user = authenticate(db, username.strip(), password, now=now, ip=client_ip(request))
    except AuthError as exc:
        attempt.failed()
        record_sign_in_failure(request, "password")
        # Returned, not raised, and committed: the audit event must stick.
        db.commit()
        return login_page(request, settings, next, str(exc), username, status=400)
    # Committed before answering: the browser's next request must find the new state.
    db.commit()
    attempt.succeeded()
    start_session(request, user)
    response = RedirectResponse(safe_next(next), status_code=303)
    remember_device(request, response, user.username)
    return response


@router.post("/logout", include_in_schema=False, dependencies=[Depends(verify_csrf)])
def logout(request: Request, db: DB, user: CurrentUser) -> Response:
    """Sign out everywhere: every session of the account ends, not only this browser's
    (a copy of the cookie, wherever it went, stops working too)."""
    if user is not None and not request.headers.get("authorization"):
        end_sessions(db, user)
        audit(db, "logout", user, user.username, "", client_ip(request))
        db.commit()
    request.session.clear()
    return RedirectResponse("/", status_code=303)


def oidc_client(request: Request, settings: Settings) -> StarletteOAuth2App:
    """The app's Authlib client, made on first use (it caches the provider's metadata)."""
    if not settings.oidc.enabled:
        raise not_found("Single sign-on is not configured here.")
    state = request.app.state
    if getattr(state, "oidc_client", None) is None:
        state.oidc_client = oidc.make_client(settings)
    return state.oidc_client


@router.get("/login/oidc", include_in_schema=False)
async def oidc_start(request: Request, settings: AppSettings, next: str = "") -> Response:
    client = oidc_client(request, settings)
    request.session[OIDC_NEXT] = safe_next(next)
    try:
        return await client.authorize_redirect(request, oidc.callback_url(settings))
    except httpx.HTTPError as exc:
        raise BadGateway(
            f"{settings.oidc.name} cannot be reached; try again later.",
            title="Sign-in provider unavailable",
        ) from exc


@router.get("/login/oidc/callback", include_in_schema=False)
async def oidc_callback(request: Request, db: DB, settings: AppSettings) -> Response:
    client = oidc_client(request, settings)
    refused = f"Sign-in with {settings.oidc.name} failed"
    try:
        metadata = await client.load_server_metadata()
        checks = oidc.id_token_checks(metadata["issuer"], settings.oidc.client_id)
        token = await client.authorize_access_token(request, claims_options=checks)
    except (OAuthError, AuthlibBaseError, JoseError) as exc:
        # Bad or replayed state, wrong nonce, bad signature, expired or foreign id_token.
        reason = str(getattr(exc, "description", None) or getattr(exc, "error", None) or exc)
        record_sign_in_failure(request, "oidc")
        raise BadRequest(
            f"{refused}: {reason.rstrip('.')}. Start again from the sign-in page.",
            title="Sign-in refused",
        ) from exc
    except httpx.HTTPError as exc:
        raise BadGateway(
            f"{settings.oidc.name} cannot be reached; try again later.",
            title="Sign-in provider unavailable",
        ) from exc
    claims = token.get("userinfo")
    if not claims:
        record_sign_in_failure(request, "oidc")
        raise BadRequest(f"{refused}: the provider sent no ID token.", title="Sign-in refused")
    try:
        user = oidc.user_for_claims(db, claims, client_ip(request))
    except oidc.OidcError:  # a 403 "Sign-in refused" with the provider's reason
        record_sign_in_failure(request, "oidc")
        raise
    db.commit()  # before the redirect, whose follow-up request must find the new account
    target = request.session.get(OIDC_NEXT, AFTER_SIGN_IN)
    start_session(request, user)
    return RedirectResponse(safe_next(target), status_code=303)


@router.get("/api/me", tags=["account"], response_model=Me)
def me(user: SignedInUser) -> dict[str, Any]:
    """Who the caller is: for scripts checking their token, and for front ends."""
    return {
        "id": user.id,
        "username": user.username,
        "full_name": user.full_name,
        "email": user.email,
        "role": user.role.value,
        "beamlines": sorted(b.name for b in user.beamlines),
    }
