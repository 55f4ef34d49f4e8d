"""The hub's authenticator: JupyterHub trusts the portal through one-time sign-in tickets.

Flow: a browser reaching the hub unauthenticated is sent to the portal's ``/jupyter``
(``login_url``); the portal, once the person is signed in there, issues a ticket
(``beamdesk.jupyter.signin``) and sends the browser to ``/hub/beamdesk-login?ticket=…``;
this handler consumes the ticket and signs the person in to the hub under their portal
username. A used, expired, tampered or unknown ticket gets 403.

Runs inside the hub process, which reads the same ``BEAMDESK_*`` settings (database,
secret key) as the portal.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from jupyterhub.auth import Authenticator
from jupyterhub.handlers import BaseHandler
from sqlalchemy.orm import Session, sessionmaker
from tornado import web
from traitlets import Any as AnyTrait
from traitlets import Unicode

from beamdesk.db import make_engine, make_sessionmaker, session_scope
from beamdesk.jupyter.config import hub_settings
from beamdesk.jupyter.signin import Redeemed, TicketRefused, redeem_ticket
from beamdesk.settings import Settings, settings_from_env

REFUSED = (
    "This sign-in link is invalid, expired or used already. Open JupyterLab from BeamDesk again."
)


class TicketLoginHandler(BaseHandler):
    """``GET /hub/beamdesk-login?ticket=…``: sign in with a portal ticket, then go on."""

    async def get(self) -> None:
        ticket = self.get_argument("ticket", default="")
        user = await self.login_user({"ticket": ticket})
        if user is None:
            raise web.HTTPError(403, REFUSED)
        target = getattr(self, "_beamdesk_next", "")
        # Only places on this hub that belong to the user (or the hub's own pages).
        allowed = (f"{self.hub.base_url}", f"{self.base_url}user/{user.escaped_name}/")
        if not (target.startswith(allowed) and "//" not in target and ".." not in target):
            target = self.get_next_url(user)
        self.redirect(target)


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
        return (self.portal_url or hub_settings(self._settings()).portal_url).rstrip("/")

    def login_url(self, base_url: str) -> str:
        # The hub appends ?next=…; the portal puts it into the ticket.
        return f"{self._portal()}/jupyter"

    def get_handlers(self, app: Any) -> list[tuple[str, type[BaseHandler]]]:
        return [("/beamdesk-login", TicketLoginHandler)]

    def normalize_username(self, username: str) -> str:
        # Portal usernames are case-sensitive and unique: keep them as they are, so the
        # hub's user and the portal's user are always the same person.
        return username

    def redeem(self, ticket: str) -> Redeemed | None:
        """Consume a ticket in the portal's database (blocking; run in a thread)."""
        settings = self._settings()
        try:
            with session_scope(self._sessionmaker()) as db:
                redeemed = redeem_ticket(db, settings.secret_key, ticket)
        except TicketRefused as exc:
            self.log.warning("BeamDesk sign-in ticket refused: %s", exc)
            return None
        return redeemed

    async def authenticate(self, handler: Any, data: dict[str, str]) -> dict[str, Any] | None:
        ticket = (data or {}).get("ticket", "")
        redeemed = await asyncio.to_thread(self.redeem, ticket)
        if redeemed is None:
            return None
        if handler is not None:
            handler._beamdesk_next = redeemed.next_path
        return {"name": redeemed.username}


def portal_login_link(portal_url: str, next_path: str = "") -> str:
    """Where to send someone to open the hub from the portal."""
    query = f"?{urlencode({'next': next_path})}" if next_path else ""
    return f"{portal_url.rstrip('/')}/jupyter{query}"
