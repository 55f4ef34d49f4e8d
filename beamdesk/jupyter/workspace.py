"""A user's single-user server: their home folder, their proposals' data, their API token.

Called by the hub before each start (``pre_spawn_hook``). The links under
``~/proposals`` are rebuilt every time, so a proposal the user has lost access to
disappears at the next start, and one they gained appears.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from beamdesk.db import utcnow
from beamdesk.h5.paths import PathNotFound, proposal_root
from beamdesk.portal import access
from beamdesk.portal.auth import create_api_token, revoke_api_token
from beamdesk.portal.models import ApiToken, Proposal, User

# The token a single-user server gets; replaced at every start, so at most one is live.
TOKEN_NAME = "jupyterhub server"
TOKEN_DAYS = 1  # short-lived: a server started again gets a new one
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class NoSuchUser(LookupError):
    """The hub asked for a user the portal does not know (or who is disabled)."""


@dataclass(frozen=True)
class Workspace:
    home: Path
    proposals_dir: Path  # the links, for spawners that link (not the sandbox, which mounts)
    folders: dict[str, Path]  # proposal number -> its folder, for every readable proposal
    environment: dict[str, str]

    @property
    def linked(self) -> list[str]:
        return sorted(self.folders)


def home_name(username: str) -> str:
    """The user's folder name; usernames are checked, never trusted as path components."""
    if not _SAFE_NAME.match(username) or username in {".", ".."}:
        raise NoSuchUser(username)
    return username


def readable_numbers(db: Session, user: User, now: datetime) -> list[str]:
    identity = access.identity_of(user)
    return list(
        db.scalars(
            select(Proposal.number)
            .where(access.readable_proposals(identity, now))
            .order_by(Proposal.number)
        )
    )


def proposal_folders(data_root: Path, numbers: list[str]) -> dict[str, Path]:
    """The folder of each proposal in ``numbers`` that has data."""
    folders: dict[str, Path] = {}
    for number in numbers:
        try:
            folders[number] = proposal_root(data_root, number)
        except PathNotFound:
            continue  # no data yet
    return folders


def link_proposals(proposals_dir: Path, wanted: dict[str, Path]) -> list[str]:
    """Make ``proposals_dir`` hold exactly one symlink per proposal in ``wanted``."""
    proposals_dir.mkdir(parents=True, exist_ok=True)
    for entry in proposals_dir.iterdir():
        if entry.is_symlink() and (
            entry.name not in wanted or Path(entry.readlink()) != wanted[entry.name]
        ):
            entry.unlink()
    for number, target in wanted.items():
        link = proposals_dir / number
        if not link.is_symlink():
            link.symlink_to(target, target_is_directory=True)
    return sorted(wanted)


def revoke_server_tokens(db: Session, user: User, now: datetime) -> int:
    """Revoke the portal tokens of ``user``'s notebook servers; the caller commits."""
    rows = db.scalars(
        select(ApiToken).where(
            ApiToken.user_id == user.id, ApiToken.name == TOKEN_NAME, ApiToken.revoked_at.is_(None)
        )
    )
    return sum(revoke_api_token(db, user, row.id, now) for row in list(rows))


def renew_server_token(db: Session, user: User, now: datetime) -> str:
    """Revoke the user's previous server token and make a fresh one."""
    revoke_server_tokens(db, user, now)
    return create_api_token(db, user, name=TOKEN_NAME, expires_days=TOKEN_DAYS, now=now).token


def prepare_workspace(
    db: Session,
    *,
    username: str,
    home_root: Path,
    data_root: Path,
    portal_url: str,
    link: bool = True,
    now: datetime | None = None,
) -> Workspace:
    """Home, proposal links and environment for ``username``'s server; the caller commits.

    ``link=False`` (the sandbox, which mounts the folders itself) touches nothing inside the
    home: it belongs to the user, and the hub is root.
    """
    now = now or utcnow()
    user = db.scalar(select(User).where(User.username == username))
    if user is None or not user.is_active:
        raise NoSuchUser(username)
    home = home_root / home_name(username)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    proposals_dir = home / "proposals"
    folders = proposal_folders(data_root, readable_numbers(db, user, now))
    if link:
        (home / "notebooks").mkdir(exist_ok=True)
        link_proposals(proposals_dir, folders)
    token = renew_server_token(db, user, now)
    env = {
        "BEAMDESK_URL": portal_url,
        "BEAMDESK_TOKEN": token,
        "BEAMDESK_PROPOSALS": str(proposals_dir),
    }
    return Workspace(home, proposals_dir, folders, env)
