"""The hub's authenticator: JupyterHub trusts the portal through one-time sign-in tickets.

Flow: a browser reaching the hub unauthenticated is sent to the portal's ``/jupyter``
(``login_url``); the portal, once the person is signed in there, issues a ticket bound to
that browser (``beamdesk.jupyter.signin``) and sends the browser to
``/hub/beamdesk-login?ticket=…``. That handler sets the hub's own binding cookie and sends
the browser back to the portal's ``/jupyter/confirm``, which checks that this is the
browser that asked and records the cookie's hash; the portal then sends the browser to
``/hub/beamdesk-signin?ticket=…``, which consumes the ticket for the browser holding that
cookie and signs the person in to the hub under their portal username. A used, expired,
tampered, unknown, foreign or unbound ticket gets 403.

Runs inside the hub process, which reads the same ``BEAMDESK_*`` settings (database,
secret key) as the portal.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import urlencode

from jupyterhub.auth import Authenticator
from jupyterhub.handlers import BaseHandler
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from tornado import web
from traitlets import Any as AnyTrait
from traitlets import Unicode

from beamdesk.db import make_engine, make_sessionmaker, session_scope
from beamdesk.jupyter.layout import hub_layout
from beamdesk.jupyter.signin import (
    LOGIN_PATH,
    SIGNIN_PATH,
    Pending,
    Redeemed,
    TicketRefused,
    check_ticket,
    new_binding_secret,
    redeem_ticket,
    secret_hash,
)
from beamdesk.portal.models import User
from beamdesk.settings import Settings, settings_from_env

REFUSED = (
    "This sign-in link is invalid, expired or used already. Open JupyterLab from BeamDesk again."
)
# The hub's half of a ticket's browser binding: a random secret in a cookie on the hub's
# host, for the hub's pages only. Its SHA-256 goes to the portal, never the secret.
BROWSER_COOKIE = "beamdesk-hub-browser"
_SECRET = re.compile(r"[A-Za-z0-9_-]{32,100}")


async def _sign_in(handler: BaseHandler, data: dict[str, str]) -> None:
    user = await handler.login_user(data)
    if user is None:
        raise web.HTTPError(403, REFUSED)
    target = getattr(handler, "_beamdesk_next", "")
    # Only places on this hub that belong to the user (or the hub's own pages).
    allowed = (f"{handler.hub.base_url}", f"{handler.base_url}user/{user.escaped_name}/")
    if not (target.startswith(allowed) and "//" not in target and ".." not in target):
        target = handler.get_next_url(user)
    handler.redirect(target)


class TicketLoginHandler(BaseHandler):
    """``GET /hub/beamdesk-login?ticket=…``: where the portal sends the browser first.

    A bound ticket is not consumed here: the browser gets the hub's binding cookie and is
    sent to the portal, which confirms that it is the browser that asked for the ticket.
    """

    async def get(self) -> None:
        ticket = self.get_argument("ticket", default="")
        pending = await asyncio.to_thread(self.authenticator.check, ticket)
        if pending is None or not pending.bound:
            raise web.HTTPError(403, REFUSED)
        secret = self.get_cookie(BROWSER_COOKIE) or ""
        if not _SECRET.fullmatch(secret):
            secret = new_binding_secret()
            # A session cookie on the hub's pages; reused by every ticket of this browser,
            # so two tabs opening notebooks at once do not undo each other.
            self.set_cookie(
                BROWSER_COOKIE,
                secret,
                path=self.hub.base_url,
                httponly=True,
                samesite="Lax",
                secure=_https(self.request),
            )
        self.redirect(self.authenticator.confirm_url(ticket, secret))


def _https(request: Any) -> bool:
    """Served over HTTPS, also behind proxies: nginx says https, the hub's own proxy then
    adds http (``X-Forwarded-Proto: https,http``) and tornado believes the last one."""
    forwarded = request.headers.get("X-Forwarded-Proto", "")
    return request.protocol == "https" or "https" in (p.strip() for p in forwarded.split(","))


class TicketSigninHandler(BaseHandler):
    """``GET /hub/beamdesk-signin?ticket=…``: the portal confirmed the ticket for the
    browser holding the hub's binding cookie; consume it and sign the person in."""

    async def get(self) -> None:
        ticket = self.get_argument("ticket", default="")
        await _sign_in(
            self, {"ticket": ticket, "hub_browser": self.get_cookie(BROWSER_COOKIE) or ""}
        )


class BeamDeskAuthenticator(Authenticator):
    """Accepts only portal-issued, one-time sign-in tickets."""

    auto_login = True
    portal_url = Unicode("", config=True, help="The portal's address (BEAMDESK_BASE_URL).")
    beamdesk_settings = AnyTrait(None, help="BeamDesk Settings (default: from the environment).")
    _sessions: sessionmaker[Session] | None = None

    def _settings(self) -> Settings:
        if self.beamdesk_settings is None:
            self.beamdesk_settings = settings_from_env()
        return self.beamdesk_settings

    def _sessionmaker(self) -> sessionmaker[Session]:
        if self._sessions is None:
            self._sessions = make_sessionmaker(make_engine(self._settings().database_url))
        return self._sessions

    def _portal(self) -> str:
        return (self.portal_url or hub_layout(self._settings()).portal_url).rstrip("/")

    def login_url(self, base_url: str) -> str:
        # The hub appends ?next=…; the portal puts it into the ticket.
        return f"{self._portal()}/jupyter"

    def confirm_url(self, ticket: str, hub_secret: str) -> str:
        """The portal's page that checks the browser and binds the ticket to its hub cookie."""
        query = urlencode({"ticket": ticket, "hub": secret_hash(hub_secret)})
        return f"{self._portal()}/jupyter/confirm?{query}"

    def get_handlers(self, app: Any) -> list[tuple[str, type[BaseHandler]]]:
        # Relative to the hub's base URL (/hub/).
        return [
            (LOGIN_PATH.removeprefix("/hub"), TicketLoginHandler),
            (SIGNIN_PATH.removeprefix("/hub"), TicketSigninHandler),
        ]

    def normalize_username(self, username: str) -> str:
        # Portal usernames are case-sensitive and unique: keep them as they are, so the
        # hub's user and the portal's user are always the same person.
        return username

    def check(self, ticket: str) -> Pending | None:
        """Is the ticket usable, and bound to a browser? (Blocking; run in a thread.)"""
        settings = self._settings()
        with session_scope(self._sessionmaker()) as db:
            try:
                return check_ticket(db, settings.secret_key, ticket)
            except TicketRefused as exc:  # committed: a replay is in the audit log
                self.log.warning("BeamDesk sign-in ticket refused: %s", exc)
                return None

    def redeem(self, ticket: str, hub_browser: str = "") -> Redeemed | None:
        """Consume a ticket in the portal's database (blocking; run in a thread)."""
        settings = self._settings()
        refused: TicketRefused | None = None
        with session_scope(self._sessionmaker()) as db:
            try:
                redeemed = redeem_ticket(db, settings.secret_key, ticket, hub_browser=hub_browser)
            except TicketRefused as exc:
                refused = exc  # committed all the same: the refusal is in the audit log
        if refused is not None:
            self.log.warning("BeamDesk sign-in ticket refused: %s", refused)
            return None
        return redeemed

    async def authenticate(self, handler: Any, data: dict[str, str]) -> dict[str, Any] | None:
        data = data or {}
        redeemed = await asyncio.to_thread(
            self.redeem, data.get("ticket", ""), data.get("hub_browser", "")
        )
        if redeemed is None:
            return None
        if handler is not None:
            handler._beamdesk_next = redeemed.next_path
        return {"name": redeemed.username}

    def still_active(self, username: str) -> bool:
        """Is the portal account behind a hub user still there and enabled? (Blocking.)"""
        try:
            with session_scope(self._sessionmaker()) as db:
                active = db.scalar(select(User.is_active).where(User.username == username))
        except SQLAlchemyError:
            self.log.exception("could not check BeamDesk account %s", username)
            return False  # fail closed: signing in again needs the database anyway
        return bool(active)

    async def refresh_user(self, user: Any, handler: Any = None) -> bool:
        """Called by the hub every ``auth_refresh_age`` seconds of a user's activity: a
        portal account disabled since signing in loses the hub (it must sign in again,
        which the portal refuses)."""
        return await asyncio.to_thread(self.still_active, user.name)


def portal_login_link(portal_url: str, next_path: str = "") -> str:
    """Where to send someone to open the hub from the portal."""
    query = f"?{urlencode({'next': next_path})}" if next_path else ""
    return f"{portal_url.rstrip('/')}/jupyter{query}"
