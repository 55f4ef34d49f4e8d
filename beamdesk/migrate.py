"""Alembic migrations, run from Python so ``beamdesk db upgrade`` needs no alembic.ini.

The history in ``migrations/versions`` is frozen: ``0001`` is the first released schema and
every later change is its own revision, never an edit of an old one. Besides running the
migrations this module answers, in one line an operator can act on, whether a database is
the schema this code needs (``check_current``, used by ``serve`` and ``hub``) and whether it
can be upgraded (``check_upgradable``, used by ``db upgrade``), and backs a SQLite file up
before an upgrade.
"""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine, inspect, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"
UPGRADE_HINT = "run `beamdesk db upgrade`"


class SchemaError(Exception):
    """The database is not one this code can use or upgrade; the message is one line."""


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser would read '%' in a password as interpolation.
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None, "no migrations"
    return head


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@dataclass(frozen=True)
class SchemaState:
    """What a database holds: its recorded revision (None: none) and its tables' columns."""

    url: str
    revision: str | None
    columns: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.revision is None and not self.columns

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.url).get_backend_name() == "sqlite"

    @property
    def sqlite_path(self) -> Path | None:
        database = make_url(self.url).database
        if not self.is_sqlite or not database or database == ":memory:":
            return None
        return Path(database)


def inspect_schema(database_url: str) -> SchemaState:
    """Read the revision and the tables of a database (nothing is created or changed)."""
    path = SchemaState(database_url, None).sqlite_path
    if path is not None and not path.exists():  # connecting would create the file
        return SchemaState(database_url, None)
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            insp = inspect(conn)
            names = [n for n in insp.get_table_names() if n != VERSION_TABLE]
            columns = {n: frozenset(c["name"] for c in insp.get_columns(n)) for n in names}
            revision = None
            if insp.has_table(VERSION_TABLE):
                revision = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    except SQLAlchemyError as exc:
        reason = type(getattr(exc, "orig", None) or exc).__name__
        raise SchemaError(f"cannot open the database {safe_url(database_url)} ({reason})") from None
    finally:
        engine.dispose()
    return SchemaState(database_url, revision, columns)


def _models_columns() -> dict[str, frozenset[str]]:
    import beamdesk.models  # noqa: F401  (every table on Base.metadata)
    from beamdesk.db import Base

    return {t.name: frozenset(c.name for c in t.columns) for t in Base.metadata.sorted_tables}


@cache
def expected_columns(revision: str) -> dict[str, frozenset[str]]:
    """The tables and columns the migrations make up to ``revision``, read from a scratch
    SQLite database built by them (the head is also what the models describe: a test
    keeps the two equal)."""
    if revision == head_revision():
        return _models_columns()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'expected.db'}"
        upgrade(url, revision)
        return inspect_schema(url).columns


def _known(revision: str) -> bool:
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


def _lacking(state: SchemaState, revision: str) -> str | None:
    """'tables a, b' / 'columns t.c' the database lacks for ``revision``; None: nothing."""
    expected = expected_columns(revision)
    tables = sorted(set(expected) - set(state.columns))
    if tables:
        return f"table{'s' if len(tables) > 1 else ''} {', '.join(tables)}"
    cols = sorted(
        f"{t}.{c}" for t, names in expected.items() for c in names - state.columns.get(t, set())
    )
    if cols:
        return f"column{'s' if len(cols) > 1 else ''} {', '.join(cols)}"
    return None


def _check_shape(state: SchemaState) -> None:
    """Refuse a database that cannot be reasoned about: tables without a revision, a
    revision this code does not know, or a revision whose tables are not all there."""
    if state.revision is None:
        if state.columns:
            raise SchemaError(
                "the database has tables but no schema revision (it was not made by "
                "`beamdesk db upgrade`): use a new, empty database"
            )
        return
    if not _known(state.revision):
        raise SchemaError(
            f"database at revision {state.revision}, which this BeamDesk (newest "
            f"{head_revision()}) does not know: it was made by a newer BeamDesk"
        )
    lacking = _lacking(state, state.revision)
    if lacking:
        raise SchemaError(
            f"database says revision {state.revision} but lacks {lacking} (it was made by "
            "a development build whose first migration was rewritten): it cannot be "
            "upgraded in place; see 'Upgrading' in the README"
        )


def check_current(database_url: str) -> SchemaState:
    """The database is at the newest revision with all its tables, or SchemaError."""
    state = inspect_schema(database_url)
    head = head_revision()
    if state.empty:
        raise SchemaError(f"the database has no schema yet: {UPGRADE_HINT}")
    _check_shape(state)
    if state.revision != head:
        raise SchemaError(
            f"database at revision {state.revision}, this BeamDesk needs {head}: {UPGRADE_HINT}"
        )
    return state


def ensure_schema(database_url: str) -> bool:
    """Create the schema of an empty database (nothing to lose, as JupyterHub does), or
    check that an existing one is current; True if it was created. Never upgrades."""
    state = inspect_schema(database_url)
    if state.empty:
        upgrade(database_url)
        return True
    check_current(database_url)
    return False


def check_upgradable(database_url: str) -> SchemaState:
    """The database's state, if ``db upgrade`` may run on it; SchemaError otherwise."""
    state = inspect_schema(database_url)
    _check_shape(state)
    return state


def backup_sqlite(state: SchemaState, target_revision: str) -> Path | None:
    """Copy a SQLite database with SQLite's backup API (its WAL included) to
    ``<db>.before-<target_revision>.sqlite`` next to it; an earlier copy is kept."""
    source = state.sqlite_path
    if source is None or not source.exists():
        return None
    target = source.with_name(f"{source.name}.before-{target_revision}.sqlite")
    if target.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = source.with_name(f"{source.name}.before-{target_revision}-{stamp}.sqlite")
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    return target


def pg_dump_hint(state: SchemaState, target_revision: str) -> str:
    """A pg_dump command that backs up this PostgreSQL database (password left out)."""
    url = make_url(state.url).set(drivername="postgresql", password=None)
    name = f"{url.database or 'beamdesk'}-before-{target_revision}.dump"
    return f"pg_dump --format=custom --file={name} '{url.render_as_string()}'"
