"""Who and what the facility has, by name: people and beamlines, for forms and lists."""

from __future__ import annotations

from sqlalchemy import func, or_, select
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


def accounts_matching(db: Session, q: str, limit: int, offset: int) -> tuple[int, list[User]]:
    """How many accounts have ``q`` in username, full name or e-mail (all when ''), and
    ``limit`` of them from ``offset``, by username."""
    where = []
    if q:
        pattern = f"%{q.lower()}%"
        where.append(
            or_(
                func.lower(User.username).like(pattern),
                func.lower(User.full_name).like(pattern),
                func.lower(User.email).like(pattern),
            )
        )
    total = db.scalar(select(func.count()).select_from(User).where(*where)) or 0
    rows = db.scalars(
        select(User).where(*where).order_by(User.username).limit(limit).offset(offset)
    ).all()
    return total, list(rows)
