"""Who and what the facility has, by name: people and beamlines, for forms and lists."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from beamdesk.portal.models import Beamline, GlobalRole, User


def user_named(db: Session, username: str) -> User | None:
    """The account called ``username``, or None."""
    return db.scalar(select(User).where(User.username == username))


def reviewers(db: Session) -> list[User]:
    """Everyone with the reviewer role, by username (the reviewer assignment form)."""
    return list(
        db.scalars(select(User).where(User.role == GlobalRole.reviewer).order_by(User.username))
    )


def beamlines(db: Session) -> list[Beamline]:
    """All beamlines, by name."""
    return list(db.scalars(select(Beamline).order_by(Beamline.name)))


def beamline_named(db: Session, name: str) -> Beamline | None:
    """The beamline called ``name``, or None."""
    return db.scalar(select(Beamline).where(Beamline.name == name))


def beamline_names(db: Session) -> list[str]:
    """The names of all beamlines, sorted (the search form's choice)."""
    return list(db.scalars(select(Beamline.name).order_by(Beamline.name)))
