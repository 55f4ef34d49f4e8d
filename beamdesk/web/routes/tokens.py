"""Personal API tokens: the ``/tokens`` page and ``/api/tokens``.

A token's secret is shown once, in the response that creates it, and stored only as a
hash. Creating a token needs a signed-in browser session: a token that could mint further
tokens would let a leaked one outlive its own expiry and revocation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from beamdesk.errors import Forbidden
from beamdesk.portal.auth import NewToken, create_api_token, list_api_tokens, revoke_api_token
from beamdesk.portal.models import ApiToken, User
from beamdesk.web.deps import DB, CurrentUser, Now, SignedInUser
from beamdesk.web.problems import not_found
from beamdesk.web.ratelimit import rate_limited
from beamdesk.web.schemas import NewTokenOut, TokenOut, api_errors
from beamdesk.web.security import verify_csrf

router = APIRouter(responses=api_errors())
DEFAULT_DAYS = 90
MAX_DAYS = 365
NO_STORE = {"Cache-Control": "no-store"}


def _when(moment: datetime | None, none: str = "never") -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else none


def token_state(row: ApiToken, now: datetime) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


@dataclass(frozen=True)
class TokenView:
    id: int
    name: str
    prefix: str
    created: str
    expires: str
    last_used: str
    state: str


def token_view(row: ApiToken, now: datetime) -> TokenView:
    return TokenView(
        row.id,
        row.name,
        row.prefix,
        _when(row.created_at),
        _when(row.expires_at),
        _when(row.last_used_at),
        token_state(row, now),
    )


def token_json(row: ApiToken, now: datetime) -> dict[str, Any]:
    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "created_at": iso(row.created_at),
        "expires_at": iso(row.expires_at),
        "last_used_at": iso(row.last_used_at),
        "revoked_at": iso(row.revoked_at),
        "state": token_state(row, now),
    }


def refuse_bearer(request: Request) -> None:
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        raise Forbidden("Create tokens from a signed-in browser session, not with a token.")


def tokens_page(
    request: Request,
    db: DB,
    user: User,
    now: datetime,
    *,
    new_token: NewToken | None = None,
    error: str = "",
    status: int = 200,
) -> HTMLResponse:
    messages = request.session.pop("flash", [])
    context = {
        "user": user,
        "messages": messages,
        "new_token": new_token,
        "error": error,
        "tokens": [token_view(t, now) for t in list_api_tokens(db, user)],
        "default_days": DEFAULT_DAYS,
        "max_days": MAX_DAYS,
    }
    # The page may carry a secret: no browser or proxy cache may keep it.
    return request.app.state.templates.TemplateResponse(
        request, "tokens.html", context, status_code=status, headers=NO_STORE
    )


@router.get("/tokens", response_class=HTMLResponse, include_in_schema=False)
def tokens(request: Request, db: DB, user: CurrentUser, now: Now) -> Response:
    if user is None:
        return RedirectResponse("/login?next=/tokens", status_code=303)
    return tokens_page(request, db, user, now)


@router.post(
    "/tokens",
    include_in_schema=False,
    dependencies=[Depends(verify_csrf), Depends(refuse_bearer), Depends(rate_limited("tokens"))],
)
def create_token_form(
    request: Request,
    db: DB,
    user: SignedInUser,
    now: Now,
    name: Annotated[str, Form()] = "",
    expires_days: Annotated[str, Form()] = str(DEFAULT_DAYS),
) -> Response:
    name = name.strip()
    days = int(expires_days) if expires_days.strip().isdigit() else 0
    if not name or len(name) > 100:
        error = "Give the token a name of 1 to 100 characters."
    elif not 1 <= days <= MAX_DAYS:
        error = f"A token expires after 1 to {MAX_DAYS} days."
    else:
        new = create_api_token(db, user, name=name, expires_days=days, now=now)
        # Committed before the secret is shown: a token shown must be a token that works.
        db.commit()
        return tokens_page(request, db, user, now, new_token=new)
    return tokens_page(request, db, user, now, error=error, status=400)


@router.post(
    "/tokens/{token_id}/revoke", include_in_schema=False, dependencies=[Depends(verify_csrf)]
)
def revoke_token_form(
    request: Request, token_id: int, db: DB, user: SignedInUser, now: Now
) -> Response:
    if not revoke_api_token(db, user, token_id, now):
        raise not_found("No such token of yours, or it is revoked already.")
    db.commit()
    request.session.setdefault("flash", []).append(["ok", "The token is revoked."])
    return RedirectResponse("/tokens", status_code=303)


class TokenRequest(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    expires_days: int = Field(DEFAULT_DAYS, ge=1, le=MAX_DAYS)


@router.get("/api/tokens", tags=["account"], response_model=list[TokenOut])
def list_tokens(db: DB, user: SignedInUser, now: Now) -> list[dict[str, Any]]:
    """Your tokens, without their secrets."""
    return [token_json(t, now) for t in list_api_tokens(db, user)]


@router.post(
    "/api/tokens",
    status_code=201,
    tags=["account"],
    response_model=NewTokenOut,
    responses=api_errors(429),
    dependencies=[Depends(verify_csrf), Depends(refuse_bearer), Depends(rate_limited("tokens"))],
)
def create_token(body: TokenRequest, db: DB, user: SignedInUser, now: Now) -> Response:
    """A new token; the secret is in this response only."""
    new = create_api_token(
        db, user, name=body.name.strip(), expires_days=body.expires_days, now=now
    )
    db.commit()
    row = new.row
    body_out = {
        "id": row.id,
        "token": new.token,
        "prefix": row.prefix,
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
    }
    return JSONResponse(body_out, status_code=201, headers=NO_STORE)


@router.delete(
    "/api/tokens/{token_id}", status_code=204, tags=["account"], dependencies=[Depends(verify_csrf)]
)
def revoke_token(token_id: int, db: DB, user: SignedInUser, now: Now) -> Response:
    """Revoke one of your tokens (a token may revoke itself)."""
    if not revoke_api_token(db, user, token_id, now):
        raise not_found("No such token of yours, or it is revoked already.")
    db.commit()  # a revoked token must be dead by the time the caller hears so
    return Response(status_code=204)
