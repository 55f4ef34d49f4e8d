"""One unprivileged Unix account per portal user, for their notebook server.

The portal's usernames are not Unix names (mixed case, ``@``, up to 64 characters), so the
account is named from a hash of the username: stable, short, unique, and revealing nothing.
Accounts are made on first use with ``useradd`` and never get a password or a shell login.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

ACCOUNT_PREFIX = "bd-"
# The lowest uid an account may have: never root, never a system account.
MIN_UID = 1000


class AccountError(RuntimeError):
    """The account could not be made or is unsafe; the message is safe to show."""


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int


def account_name(username: str) -> str:
    """``bd-`` and 12 hex digits of the username's SHA-256 (15 characters)."""
    return ACCOUNT_PREFIX + hashlib.sha256(username.encode()).hexdigest()[:12]


def _lookup(name: str) -> Account | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    if entry.pw_uid < MIN_UID:
        raise AccountError(f"The account {name} exists with a system uid; refusing to use it.")
    return Account(name, entry.pw_uid, entry.pw_gid)


def ensure_account(username: str) -> Account:
    """The account of ``username``, made now if it does not exist (needs root)."""
    name = account_name(username)
    account = _lookup(name)
    if account is not None:
        return account
    if os.geteuid() != 0:
        raise AccountError("Notebook accounts can only be made by a hub running as root.")
    done = subprocess.run(
        [
            "useradd",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--user-group",
            "--key",
            f"UID_MIN={MIN_UID}",
            "--comment",
            "BeamDesk notebook server",
            name,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    account = _lookup(name)  # made now, or by a spawn racing with this one
    if account is None:
        raise AccountError(f"Could not make the notebook account: {done.stderr.strip()[:200]}")
    return account


def give_home(home: Path, account: Account) -> None:
    """Make ``home`` (and its ``notebooks`` folder) the account's, mode 0700.

    The home itself sits in the hub's own folder (root's, 0700), where the user cannot put a
    link; what is inside is the user's, so nothing here follows a link they may have made.
    """
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chown(home, account.uid, account.gid)
    os.chmod(home, 0o700)
    notebooks = home / "notebooks"
    if not notebooks.is_symlink():
        notebooks.mkdir(exist_ok=True)
        os.chown(notebooks, account.uid, account.gid, follow_symlinks=False)
