"""Your account (``/account``: change your password) and the user office's accounts
(``/office/accounts``: set a person's password, disable or re-enable an account), with
their API twins ``/api/me/password`` and ``/api/users/…``.

Changing a password or disabling an account ends the account's browser sessions and
revokes its API tokens (``portal.auth``). Who may manage accounts is decided by
``portal.access.may_manage_accounts``. Passwords are set from signed-in browser sessions
only: an API token, which reads data for a script, must not become a way to take an
account over.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from beamdesk.errors import Forbidden
from beamdesk.jupyter.sessions import access_lost
from beamdesk.portal import access
from beamdesk.portal.auth import (
    MIN_PASSWORD_LENGTH,
    AccountError,
    WrongPassword,
    change_password,
    set_active,
    set_password,
)
from beamdesk.portal.directory import accounts_matching, user_named
from beamdesk.portal.models import User
from beamdesk.settings import Settings
from beamdesk.web.deps import (
    DB,
    SESSION_GENERATION,
    AppSettings,
    CurrentIdentity,
    CurrentUser,
    Now,
    SignedInUser,
)
from beamdesk.web.problems import not_found
from beamdesk.web.ratelimit import (
    PasswordAttempt,
    client_ip,
    rate_limited,
    throttle_password_check,
)
from beamdesk.web.schemas import AccountOut, AccountPage, api_errors
from beamdesk.web.security import verify_csrf

router = APIRouter(responses=api_errors(400, 409, 429))
PAGE_SIZE = 50
NO_STORE = {"Cache-Control": "no-store"}


def refuse_bearer(request: Request) -> None:
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        raise Forbidden("Set passwords from a signed-in browser session, not with a token.")


async def own_password_check(request: Request, user: SignedInUser) -> PasswordAttempt:
    """Checking the current password is a password oracle: throttled as sign-in is (the
    per-address limit and the slow-down of the account's name; no device is trusted)."""
    return await throttle_password_check(request, user.username, trust_device=False)


CHANGES = [
    Depends(verify_csrf),
    Depends(refuse_bearer),
    Depends(rate_limited("password")),
]


def _change_own(
    request: Request, db: Session, user: User, attempt: PasswordAttempt, current: str, new: str
) -> None:
    """Change the caller's password; this browser's session goes on, all others end.

    Their notebook server keeps running (it may hold their work), but the portal token it
    had is revoked with the others.
    """
    try:
        change_password(db, user, current, new, ip=client_ip(request))
    except WrongPassword:
        attempt.failed()
        db.commit()  # the failed attempt stays in the audit log
        raise
    db.commit()
    attempt.succeeded()
    # Only this session is carried over to the new generation (a copy of the old cookie
    # elsewhere is dead); the session keeps its CSRF token.
    request.session[SESSION_GENERATION] = user.session_generation


# ------------------------------------------------------------------ your account
def account_page(
    request: Request, user: User, *, error: str = "", status: int = 200
) -> HTMLResponse:
    context = {
        "user": user,
        "messages": request.session.pop("flash", []),
        "error": error,
        "has_password": bool(user.password_hash),
        "min_length": MIN_PASSWORD_LENGTH,
    }
    return request.app.state.templates.TemplateResponse(
        request, "account.html", context, status_code=status, headers=NO_STORE
    )


@router.get("/account", response_class=HTMLResponse, include_in_schema=False)
def account(request: Request, user: CurrentUser) -> Response:
    if user is None:
        return RedirectResponse("/login?next=/account", status_code=303)
    return account_page(request, user)


@router.post("/account/password", include_in_schema=False, dependencies=CHANGES)
def change_password_form(
    request: Request,
    db: DB,
    user: SignedInUser,
    attempt: Annotated[PasswordAttempt, Depends(own_password_check)],
    current: Annotated[str, Form(max_length=1024)] = "",
    new: Annotated[str, Form(max_length=1024)] = "",
    repeat: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    if new != repeat:
        return account_page(request, user, error="The two new passwords differ.", status=422)
    try:
        _change_own(request, db, user, attempt, current, new)
    except AccountError as exc:
        return account_page(request, user, error=exc.detail, status=exc.status)
    request.session.setdefault("flash", []).append(
        [
            "ok",
            "Password changed. You are signed out everywhere else and your API tokens are revoked.",
        ]
    )
    return RedirectResponse("/account", status_code=303)


class PasswordChange(BaseModel):
    current: str = Field(max_length=1024)
    new: str = Field(max_length=1024)


@router.post("/api/me/password", status_code=204, tags=["account"], dependencies=CHANGES)
def change_password_api(
    body: PasswordChange,
    request: Request,
    db: DB,
    user: SignedInUser,
    attempt: Annotated[PasswordAttempt, Depends(own_password_check)],
) -> Response:
    """Change your password (from a signed-in browser session, with ``X-CSRF-Token``).

    Every other session of yours ends and every API token of yours is revoked; this
    session goes on.
    """
    _change_own(request, db, user, attempt, body.current, body.new)
    return Response(status_code=204)


# ------------------------------------------------------------------ the user office
def _manager(identity: access.Identity) -> None:
    if not access.may_manage_accounts(identity):
        raise not_found("This is for the user office.")


def _account(db: Session, username: str) -> User:
    user = user_named(db, username)
    if user is None:
        raise not_found(f"No account {username!r}.")
    return user


def account_json(user: User) -> dict[str, Any]:
    return {
        "username": user.username,
        "full_name": user.full_name,
        "email": user.email,
        "role": user.role.value,
        "active": user.is_active,
        "has_password": bool(user.password_hash),
        "single_sign_on": bool(user.oidc_subject),
    }


@router.get("/office/accounts", response_class=HTMLResponse, include_in_schema=False)
def office_accounts(
    request: Request,
    db: DB,
    user: CurrentUser,
    identity: CurrentIdentity,
    q: str = Query("", max_length=100),
    page: int = Query(1, ge=1, le=100_000),
) -> Response:
    if user is None:
        return RedirectResponse("/login?next=/office/accounts", status_code=303)
    _manager(identity)
    total, rows = accounts_matching(db, q.strip(), PAGE_SIZE, (page - 1) * PAGE_SIZE)
    context = {
        "user": user,
        "messages": request.session.pop("flash", []),
        "accounts": rows,
        "q": q,
        "query": f"{urlencode({'q': q})}&" if q else "",
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "min_length": MIN_PASSWORD_LENGTH,
    }
    return request.app.state.templates.TemplateResponse(
        request, "accounts.html", context, headers=NO_STORE
    )


def _end_notebooks(db: Session, settings: Settings, user: User, why: str, now: datetime) -> None:
    """Their notebook server goes too (stopped once the change is committed): it runs with
    the account's rights, and a password set by the office usually answers a compromise."""
    access_lost(db, settings, user.id, reason=why, now=now)


def _back(request: Request, kind: str, text: str) -> RedirectResponse:
    request.session.setdefault("flash", []).append([kind, text])
    return RedirectResponse("/office/accounts", status_code=303)


@router.post("/office/accounts/{username}/password", include_in_schema=False, dependencies=CHANGES)
def set_password_form(
    username: str,
    request: Request,
    db: DB,
    user: SignedInUser,
    identity: CurrentIdentity,
    settings: AppSettings,
    now: Now,
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    _manager(identity)
    target = _account(db, username)
    try:
        set_password(db, user, target, password, now=now, ip=client_ip(request))
    except AccountError as exc:
        return _back(request, "error", f"{username}: {exc}")
    _end_notebooks(db, settings, target, "password set by the user office", now)
    db.commit()
    return _back(
        request, "ok", f"New password set for {username}; their sessions and tokens have ended."
    )


@router.post(
    "/office/accounts/{username}/active",
    include_in_schema=False,
    dependencies=[Depends(verify_csrf)],
)
def set_active_form(
    username: str,
    request: Request,
    db: DB,
    user: SignedInUser,
    identity: CurrentIdentity,
    settings: AppSettings,
    now: Now,
    active: Annotated[str, Form(max_length=1)] = "0",
) -> Response:
    _manager(identity)
    target = _account(db, username)
    try:
        set_active(db, user, target, active == "1", now=now, ip=client_ip(request))
    except AccountError as exc:
        return _back(request, "error", str(exc))
    if active != "1":
        _end_notebooks(db, settings, target, "account disabled", now)
    db.commit()
    if active == "1":
        return _back(request, "ok", f"{username} may sign in again.")
    return _back(request, "ok", f"{username} is disabled; their sessions and tokens have ended.")


@router.get("/api/users", tags=["accounts"], response_model=AccountPage)
def list_accounts(
    db: DB,
    identity: CurrentIdentity,
    user: SignedInUser,
    q: str = Query("", max_length=100),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10**9),
) -> dict[str, Any]:
    """The facility's accounts (user office only)."""
    _manager(identity)
    total, rows = accounts_matching(db, q.strip(), limit, offset)
    return {"total": total, "items": [account_json(u) for u in rows]}


class NewPassword(BaseModel):
    password: str = Field(max_length=1024)


@router.post(
    "/api/users/{username}/password", status_code=204, tags=["accounts"], dependencies=CHANGES
)
def set_password_api(
    username: str,
    body: NewPassword,
    request: Request,
    db: DB,
    user: SignedInUser,
    identity: CurrentIdentity,
    settings: AppSettings,
    now: Now,
) -> Response:
    """Give an account a new password (user office only). Its sessions end, its API
    tokens are revoked and its notebook server is stopped."""
    _manager(identity)
    target = _account(db, username)
    set_password(db, user, target, body.password, now=now, ip=client_ip(request))
    _end_notebooks(db, settings, target, "password set by the user office", now)
    db.commit()
    return Response(status_code=204)


def _set_active_api(
    request: Request,
    db: Session,
    settings: Settings,
    now: datetime,
    user: User,
    identity: access.Identity,
    username: str,
    on: bool,
) -> dict[str, Any]:
    _manager(identity)
    target = _account(db, username)
    set_active(db, user, target, on, now=now, ip=client_ip(request))
    if not on:
        _end_notebooks(db, settings, target, "account disabled", now)
    db.commit()  # a disabled account must be out by the time the caller hears so
    return account_json(target)


@router.post(
    "/api/users/{username}/disable",
    tags=["accounts"],
    response_model=AccountOut,
    dependencies=[Depends(verify_csrf)],
)
def disable_account(
    username: str,
    request: Request,
    db: DB,
    settings: AppSettings,
    now: Now,
    user: SignedInUser,
    identity: CurrentIdentity,
) -> dict[str, Any]:
    """Disable an account (user office only): its sessions end at once, its API tokens
    are revoked, its notebook server is stopped, it cannot sign in until enabled again."""
    return _set_active_api(request, db, settings, now, user, identity, username, False)


@router.post(
    "/api/users/{username}/enable",
    tags=["accounts"],
    response_model=AccountOut,
    dependencies=[Depends(verify_csrf)],
)
def enable_account(
    username: str,
    request: Request,
    db: DB,
    settings: AppSettings,
    now: Now,
    user: SignedInUser,
    identity: CurrentIdentity,
) -> dict[str, Any]:
    """Let a disabled account sign in again (user office only; its old tokens stay
    revoked)."""
    return _set_active_api(request, db, settings, now, user, identity, username, True)
