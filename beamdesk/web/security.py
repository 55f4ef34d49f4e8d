"""Security headers on every response, and CSRF tokens for cookie-authenticated changes."""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from beamdesk.errors import Forbidden

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

# No inline scripts anywhere. style-src keeps 'unsafe-inline' for style="" attributes in
# the templates and for the constructed stylesheets and inline styles of H5Web's panels and
# menus; img-src data:/blob: for its PNG snapshots and exported files (blob: downloads).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
# The viewer page only (routes/viewer.py): H5Web 17 keeps its arrays in scijs ndarray and
# ndarray-ops, which compile their accessors with `Function(...)` at run time (upstream issue
# silx-kit/h5web#2047), so that page must allow 'unsafe-eval'. It still forbids inline and
# foreign scripts; every other page keeps the strict policy.
VIEWER_CSP = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-eval'")
HSTS = b"max-age=31536000; includeSubDomains"
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class SecurityHeadersMiddleware:
    """Pure ASGI (not BaseHTTPMiddleware) so streamed downloads are not buffered."""

    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app = app
        # Behind HTTPS (BEAMDESK_COOKIE_SECURE=true) browsers are told to never use plain HTTP.
        self.headers = HEADERS + ([(b"strict-transport-security", HSTS)] if hsts else [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use; templates put it in every form."""
    token = request.session.get(CSRF_FIELD)
    if not token:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_FIELD] = token
    return token


async def verify_csrf(request: Request) -> None:
    """Dependency for every state-changing route.

    Bearer-token calls carry no ambient credential, so they need no CSRF token; calls
    authenticated by the session cookie must echo the session's token in the form or in
    the ``X-CSRF-Token`` header.
    """
    if request.method in SAFE_METHODS:
        return
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    expected = request.session.get(CSRF_FIELD, "")
    given = request.headers.get(CSRF_HEADER, "")
    if not given and "form" in request.headers.get("content-type", ""):
        form = await request.form()
        value = form.get(CSRF_FIELD, "")
        given = value if isinstance(value, str) else ""
    if not expected or not given or not hmac.compare_digest(expected, given):
        raise Forbidden(
            "The form expired or did not come from this site; reload the page and try again.",
            title="CSRF check failed",
        )
