"""Ending a user's notebook server when their access shrinks.

A server's sandbox mounts the proposals its user could read when it started. When a member
is removed from a proposal, or an account is disabled, that server must go at once: its
portal token is revoked in the same transaction as the change, and the server is stopped
through the hub's API right after the change is committed.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import event
from sqlalchemy.orm import Session

from beamdesk.jupyter.hubapi import HubClient, HubUnavailable
from beamdesk.jupyter.layout import HubLayout, hub_layout
from beamdesk.jupyter.workspace import revoke_server_tokens
from beamdesk.portal.auth import audit
from beamdesk.portal.models import User
from beamdesk.settings import Settings

log = logging.getLogger("beamdesk.jupyter")
STOP_TIMEOUT = 10.0


def stop_server(hub: HubLayout, username: str) -> bool:
    """Ask the hub to stop ``username``'s server; False if the hub could not be asked.

    A facility without a hub (no service token was ever made) has nothing to stop.
    """
    if not hub.service_token_file.exists():
        return True
    try:
        with HubClient(hub, timeout=STOP_TIMEOUT) as api:
            api.stop_server(username)
    except HubUnavailable:
        log.warning("could not stop %s's notebook server: the hub did not answer", username)
        return False
    return True


def end_notebook_server(
    db: Session, hub: HubLayout, user: User, *, reason: str, now: datetime
) -> None:
    """Revoke ``user``'s server tokens now, and stop their server once ``db`` commits.

    After the commit, so that a server started again at once already sees the change.
    """
    revoked = revoke_server_tokens(db, user, now)
    audit(db, "notebook_ended", None, user.username, f"{reason}; tokens revoked: {revoked}")
    username = user.username
    event.listen(db, "after_commit", lambda _session: stop_server(hub, username), once=True)


def access_lost(
    db: Session, settings: Settings, user_id: int, *, reason: str, now: datetime
) -> None:
    """The user ``user_id`` can read less than when their server started: end it."""
    user = db.get(User, user_id)
    if user is not None:
        end_notebook_server(db, hub_layout(settings), user, reason=reason, now=now)
