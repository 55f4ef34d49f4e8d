"""Request-scoped dependencies: database session, settings, who is asking, proposal lookup.

Every route that touches a proposal gets it through ``proposal_for`` (or calls
``beamdesk.portal.access`` itself), so the access rules are applied in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from beamdesk.db import session_scope, utcnow
from beamdesk.errors import BeamDeskError, Forbidden, Unauthorized
from beamdesk.h5.paths import PathNotFound, proposal_root, resolve_in_proposal
from beamdesk.portal import access
from beamdesk.portal.access import Action, Identity
from beamdesk.portal.auth import audit, user_from_token
from beamdesk.portal.models import GlobalRole, Proposal, User
from beamdesk.portal.proposals import load_proposal
from beamdesk.settings import Settings
from beamdesk.web.problems import not_found
from beamdesk.web.ratelimit import client_ip

SESSION_USER = "uid"
# The account's session generation when the session began; a session whose generation is
# not the account's current one (signed out, password changed, disabled) is no session.
SESSION_GENERATION = "gen"


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


DENIAL = "access_denied"


def get_db(request: Request) -> Iterator[Session]:
    """One session per request, committed before the response is sent (scope="function"),
    so a client that follows a redirect at once sees what the request wrote.

    A refusal recorded by ``proposal_for`` is written to the audit log after the request's
    own changes are rolled back, so the denial is kept and nothing else of the request is.
    """
    try:
        with session_scope(request.app.state.sessionmaker) as session:
            yield session
    except BeamDeskError:
        denial = session.info.pop(DENIAL, None)
        if denial is not None:
            _audit_denial(request, denial)
        raise


def _audit_denial(request: Request, denial: tuple[int | None, str, str]) -> None:
    actor, target, detail = denial
    try:
        with session_scope(request.app.state.sessionmaker) as db:
            audit(db, DENIAL, actor, target, detail, client_ip(request))
    except SQLAlchemyError:  # the log must never turn a 404 into a 500
        logging.getLogger("beamdesk.web").exception("could not record an access denial")


def get_now(request: Request) -> datetime:
    """The current instant; tests may pin it through ``app.state.clock``."""
    clock = getattr(request.app.state, "clock", None)
    return clock() if clock else utcnow()


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def get_user(
    request: Request, db: Annotated[Session, Depends(get_db, scope="function")]
) -> User | None:
    """The signed-in user from a Bearer token or the session cookie, or None."""
    if hasattr(request.state, "user"):
        return request.state.user
    user: User | None = None
    token = _bearer(request)
    if token is not None:
        user = user_from_token(db, token)
        if user is None:
            raise Unauthorized("The API token is unknown, expired or revoked.")
    else:
        uid = request.session.get(SESSION_USER)
        if uid is not None:
            user = db.get(User, uid) if type(uid) is int else None
            generation = request.session.get(SESSION_GENERATION)
            if (
                user is None
                or not user.is_active
                or type(generation) is not int
                or generation != user.session_generation
            ):
                # Revoked (or from before generations existed): anonymous from now on.
                request.session.clear()
                user = None
    request.state.user = user
    return user


@dataclass(frozen=True)
class PageUser:
    """Who is signed in, as the page header shows it (name, role); no database object."""

    display_name: str
    role: GlobalRole


def page_user(request: Request) -> PageUser | None:
    """The signed-in user for an error page (404 of an unknown address or a refused
    proposal): the same rules as ``get_user`` (token, or cookie of the current session
    generation), read in a session of its own since the route's may be gone or rolled
    back. Never raises: an error page is shown signed out rather than not at all."""
    if "session" not in request.scope:  # outside the session middleware (500 handler)
        return None
    try:
        with session_scope(request.app.state.sessionmaker) as db:
            token = _bearer(request)
            user: User | None = None
            if token is not None:
                user = user_from_token(db, token)
            else:
                uid = request.session.get(SESSION_USER)
                generation = request.session.get(SESSION_GENERATION)
                if type(uid) is int and type(generation) is int:
                    found = db.get(User, uid)
                    if (
                        found is not None
                        and found.is_active
                        and found.session_generation == generation
                    ):
                        user = found
            return PageUser(user.display_name, user.role) if user is not None else None
    except Exception:  # the error page itself must not fail
        logging.getLogger("beamdesk.web").warning("error page shown signed out", exc_info=True)
        return None


def get_identity(user: Annotated[User | None, Depends(get_user)]) -> Identity:
    return access.identity_of(user)


def require_user(user: Annotated[User | None, Depends(get_user)]) -> User:
    if user is None:
        raise Unauthorized("Sign in, or send an API token as 'Authorization: Bearer …'.")
    return user


DB = Annotated[Session, Depends(get_db, scope="function")]
CurrentIdentity = Annotated[Identity, Depends(get_identity)]
CurrentUser = Annotated[User | None, Depends(get_user)]
SignedInUser = Annotated[User, Depends(require_user)]
AppSettings = Annotated[Settings, Depends(get_settings)]
Now = Annotated[datetime, Depends(get_now)]


def proposal_for(
    db: Session, identity: Identity, number: str, action: Action, now: datetime
) -> Proposal:
    """The proposal if the identity may do ``action`` to it; 404 otherwise.

    404 rather than 403, so a caller cannot learn which proposal numbers exist. The one
    exception: a proposal the caller may *see* but not act on gives 403, since its
    existence is no secret to them.
    """
    proposal = load_proposal(db, number)
    if proposal is None:
        raise not_found(f"No proposal {number}, or you may not see it.")
    rel = access.relation(identity, proposal, now)
    if access.may(rel, action):
        return proposal
    # Audited (by get_db) only if the refusal reaches the caller: pages that send an
    # anonymous visitor to the sign-in form instead are no denial.
    db.info[DENIAL] = (identity.user_id, number, action.value)
    if action != Action.view_proposal and access.may(rel, Action.view_proposal):
        if action == Action.read_data:
            raise not_found(f"No data of proposal {number} you may read.")
        raise Forbidden(f"You may not {action.value.replace('_', ' ')} on proposal {number}.")
    raise not_found(f"No proposal {number}, or you may not see it.")


@dataclass(frozen=True)
class ReadableFolder:
    """A proposal whose data the caller may read, with its folder on disk."""

    proposal: Proposal
    root: Path
    data_root: Path

    def file(self, relpath: str) -> Path:
        """The confined file ``relpath`` of this proposal; 404 if absent, a folder, or out."""
        number = self.proposal.number
        try:
            path = resolve_in_proposal(self.data_root, number, relpath)
        except PathNotFound:
            raise not_found(f"No file {relpath!r} in proposal {number}.") from None
        if not path.is_file():
            raise not_found(f"{relpath!r} is a folder, not a file.")
        return path


def readable_folder(
    number: str, db: DB, identity: CurrentIdentity, settings: AppSettings, now: Now
) -> ReadableFolder:
    """Dependency for every data route: access check first, then the confined folder."""
    proposal = proposal_for(db, identity, number, Action.read_data, now)
    try:
        root = proposal_root(settings.data_root, number)
    except PathNotFound as exc:
        raise not_found(f"Proposal {number} has no data yet.") from exc
    return ReadableFolder(proposal, root, settings.data_root)


ReadableProposal = Annotated[ReadableFolder, Depends(readable_folder)]
