"""Schema migrations as an operator meets them, on SQLite and PostgreSQL.

- The frozen history (0001 onwards, never regenerated) makes exactly what the models
  describe (Alembic's ``compare_metadata``), and each released revision still makes the
  schema of its release fixture.
- Databases of earlier releases, kept as SQL dumps in ``tests/fixtures`` (made once by
  ``tests/fixtures/make_migration_fixtures.py``, see the README there), upgrade to the head
  with every row intact, new columns at their defaults, and their people can sign in.
- ``beamdesk serve``, ``beamdesk hub`` and JupyterHub started by itself refuse an outdated
  schema with one line; ``beamdesk db upgrade`` refuses a database stamped at a revision
  but lacking its tables, backs a SQLite file up first (read back here with sqlite3) and
  prints a pg_dump command for PostgreSQL (run here, to show it works). The real CLI runs
  as a subprocess.
"""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
import shlex
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, create_engine, inspect, text
from sqlalchemy.engine import make_url

import beamdesk.models  # noqa: F401  (every table on Base.metadata)
from beamdesk.db import Base
from beamdesk.jupyter.hub_config import write_config
from beamdesk.migrate import MIGRATIONS, SchemaError, check_upgradable, upgrade
from tests.conftest import PASSWORD, _fresh_postgres_database, _postgres_url, make_settings

FIXTURES = Path(__file__).parent / "fixtures"
RELEASES = ["0001", "0002"]
BIN = Path(sys.executable).parent
TOKEN = "bd_release-fixture-token-of-amelie"  # in clear in make_migration_fixtures.py
# Every column a later revision adds to a released table, and the value old rows get.
NEW_COLUMN_DEFAULTS: dict[tuple[str, str], Any] = {
    ("users", "session_generation"): 0,
    ("hub_tickets", "browser_hash"): None,
    ("hub_tickets", "hub_hash"): None,
}
# What the first migration of an early development build made (commit f57c985): no
# collections, hub tickets or jobs, yet stamped 0001 like the released one.
EARLY_BUILD_LACKS = ["collection_items", "collections", "hub_tickets", "jobs"]

HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()
OPTS = {"compare_type": True, "compare_server_default": True}


# ------------------------------------------------------------------ databases
@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        _postgres_url()  # skips without a server (fails in CI)
    return request.param


@pytest.fixture
def blank(kind: str, tmp_path: Path) -> Callable[[], str]:
    """Makes new, empty databases of this kind."""

    def make() -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path / f'beamdesk-{secrets.token_hex(3)}.db'}"
        base = _postgres_url()
        assert base is not None
        return _fresh_postgres_database(base)

    return make


def load_fixture(url: str, revision: str) -> None:
    """Run a release dump into an empty database, with the database's own driver."""
    backend = make_url(url).get_backend_name()
    script = (FIXTURES / f"beamdesk-{revision}.{backend}.sql").read_text()
    if backend == "sqlite":
        db = sqlite3.connect(make_url(url).database)
        db.executescript(script)
        db.close()
        return
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(script)  # type: ignore[call-overload]


def revision_of(url: str) -> str:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    return found


def snapshot(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, by plain SELECTs ordered by primary key."""
    engine = create_engine(url)
    rows: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        insp = inspect(conn)
        for table in insp.get_table_names():
            if table == "alembic_version":
                continue
            key = ", ".join(f'"{c}"' for c in insp.get_pk_constraint(table)["constrained_columns"])
            result = conn.execute(text(f'SELECT * FROM "{table}" ORDER BY {key}'))
            rows[table] = [dict(r._mapping) for r in result]
    engine.dispose()
    return rows


def as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


# ------------------------------------------------------------------ history == models
def test_history_is_one_line_from_0001() -> None:
    """No branches, the first released revision is the base, every release is in it."""
    scripts = ScriptDirectory(str(MIGRATIONS))
    assert len(scripts.get_heads()) == 1
    chain = [s.revision for s in scripts.walk_revisions("base", "heads")][::-1]
    assert chain[0] == "0001" and scripts.get_revision("0001").down_revision is None
    assert chain[: len(RELEASES)] == RELEASES
    assert not (Path(__file__).parents[1] / "tools" / "regen_initial_migration.py").exists()


def test_upgrading_an_empty_database_makes_the_models(blank: Callable[[], str]) -> None:
    url = blank()
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts=OPTS), Base.metadata)
    engine.dispose()
    assert differences == [], "write a new migration for these (never edit an old one)"
    assert revision_of(url) == HEAD


@pytest.mark.parametrize("revision", RELEASES)
def test_a_released_revision_still_makes_its_fixture(
    blank: Callable[[], str], revision: str
) -> None:
    """0001 and later released files are frozen: today they make the schema the release
    made (its dump), index for index and type for type."""
    released, today = blank(), blank()
    load_fixture(released, revision)
    upgrade(today, revision)
    made = create_engine(today)
    reference = MetaData()
    reference.reflect(made)
    made.dispose()
    engine = create_engine(released)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts=OPTS), reference)
    engine.dispose()
    assert differences == []
    assert revision_of(released) == revision


# ------------------------------------------------------------------ release fixtures
@pytest.mark.parametrize("revision", RELEASES)
def test_a_release_upgrades_with_its_rows(
    blank: Callable[[], str], revision: str, tmp_path: Path
) -> None:
    url = blank()
    load_fixture(url, revision)
    before = snapshot(url)
    assert len(before["users"]) == 6 and len(before["datasets"]) == 2  # the fixture has rows

    upgrade(url)
    assert revision_of(url) == HEAD
    after = snapshot(url)
    assert set(before) <= set(after)
    for table, old_rows in before.items():
        assert len(after[table]) == len(old_rows), table
        for old, new in zip(old_rows, after[table], strict=True):
            assert {k: new[k] for k in old} == old, table  # every old value kept as it was
            for column in set(new) - set(old):
                assert (table, column) in NEW_COLUMN_DEFAULTS, f"say the default of {column}"
                assert new[column] == NEW_COLUMN_DEFAULTS[table, column], (table, column)

    # Facts written into the fixture (make_migration_fixtures.py), read back by SELECT.
    users = {u["username"]: u for u in after["users"]}
    assert users["amelie"]["full_name"] == "Amélie Durand"
    assert users["amelie"]["session_generation"] == (3 if revision >= "0002" else 0)
    assert users["jonas"]["failed_logins"] == 3 and users["o.lee"]["password_hash"] == ""
    assert {p["number"] for p in after["proposals"]} == {"20250042", "20240007"}
    assert after["datasets"][0]["size"] == 7_340_032_123  # a BigInteger survives
    assert as_json(after["datasets"][1]["provenance"])["program"] == "beamdesk xrf"
    assert as_json(after["collections"][0]["creators"])[0]["name"] == "Durand, Amélie"
    assert [i["dataset_id"] for i in after["collection_items"]] == [1, 2]
    assert after["jobs"][0]["log"] == "fitted 65536 spectra\n"
    ticket = after["hub_tickets"][0]
    assert (ticket["browser_hash"] is None) == (revision == "0001")

    engine = create_engine(url)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts=OPTS), Base.metadata) == []
    engine.dispose()

    # The upgraded database serves: amelie's token and password from the release work.
    from beamdesk.web.app import create_app

    app = create_app(make_settings(tmp_path, url))
    with TestClient(app, follow_redirects=False) as browser:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert browser.get("/api/me", headers=bearer).json()["username"] == "amelie"
        names = [t["name"] for t in browser.get("/api/tokens", headers=bearer).json()]
        assert names == ["analysis laptop"]
        page = browser.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf, page.text[:300]
        form = {"username": "marco", "password": PASSWORD, "csrf_token": csrf.group(1)}
        assert browser.post("/login", data=form).status_code == 303
        assert browser.get("/api/me").json()["username"] == "marco"
    app.state.engine.dispose()


# ------------------------------------------------------------------ the command line
def run(args: list[str], url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The installed ``beamdesk`` command on ``url``; a narrow terminal, so a message
    wrapped onto two lines would show."""
    env = os.environ | {
        "BEAMDESK_DATABASE_URL": url,
        "BEAMDESK_VAR": str(tmp_path / "var"),
        "BEAMDESK_DATA": str(tmp_path / "data"),
        "COLUMNS": "50",
    }
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )


def one_line(out: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


OUTDATED = (
    f"error: database at revision 0001, this BeamDesk needs {HEAD}: run `beamdesk db upgrade`"
)


def test_serve_refuses_an_outdated_schema(blank: Callable[[], str], tmp_path: Path) -> None:
    if HEAD == "0001":
        pytest.skip("no revision after 0001")
    url = blank()
    load_fixture(url, "0001")
    out = run(["beamdesk", "serve", "--port", "1"], url, tmp_path)
    assert out.returncode == 2
    assert one_line(out) == OUTDATED
    assert revision_of(url) == "0001"  # refusing changes nothing
    assert not list(tmp_path.glob("*.before-*"))


def test_hub_refuses_an_outdated_schema(tmp_path: Path) -> None:
    """``beamdesk hub``, and JupyterHub run on its generated configuration by a supervisor."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    load_fixture(url, "0001")
    out = run(["beamdesk", "hub"], url, tmp_path)
    assert out.returncode == 2
    assert one_line(out) == OUTDATED

    settings = make_settings(tmp_path / "var", url)
    config = write_config(settings)
    env = os.environ | {"BEAMDESK_DATABASE_URL": url, "BEAMDESK_VAR": str(settings.var_dir)}
    hub = subprocess.run(
        [str(BIN / "jupyterhub"), "-f", str(config)],
        env=env,
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert hub.returncode != 0
    assert one_line(hub) == OUTDATED
    assert revision_of(url) == "0001"


def test_db_upgrade_backs_up_sqlite_first(tmp_path: Path) -> None:
    path = tmp_path / "beamdesk.db"
    url = f"sqlite:///{path}"
    load_fixture(url, "0001")
    out = run(["beamdesk", "db", "upgrade"], url, tmp_path)
    assert out.returncode == 0, out.stderr
    backup = tmp_path / f"beamdesk.db.before-{HEAD}.sqlite"
    assert out.stdout.splitlines() == [
        f"backed up the database (revision 0001) to {backup}",
        f"database upgraded from 0001 to {HEAD}: {url}",
    ]
    assert revision_of(url) == HEAD
    # The copy is the database as it was: revision 0001, its rows, no newer columns.
    with sqlite3.connect(backup) as old:
        assert old.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001",)]
        assert old.execute("SELECT count(*) FROM users").fetchone() == (6,)
        columns = [row[1] for row in old.execute("PRAGMA table_info(users)")]
        assert "session_generation" not in columns
    old.close()

    again = run(["beamdesk", "db", "upgrade"], url, tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"database already at the newest schema ({HEAD}): {url}"
    assert sorted(p.name for p in tmp_path.glob("*.before-*")) == [backup.name]


def test_db_upgrade_creates_an_empty_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    out = run(["beamdesk", "db", "upgrade"], url, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"database created at the newest schema ({HEAD}): {url}"
    assert revision_of(url) == HEAD and not list(tmp_path.glob("*.before-*"))


def test_db_upgrade_prints_a_pg_dump_command_that_works(tmp_path: Path) -> None:
    base = _postgres_url()
    assert base is not None
    url = _fresh_postgres_database(base)
    load_fixture(url, "0001")
    out = run(["beamdesk", "db", "upgrade"], url, tmp_path)
    assert out.returncode == 0, out.stderr
    hint = out.stdout.splitlines()[0]
    prefix = "back up PostgreSQL before upgrading if you have not: "
    assert hint.startswith(prefix + "pg_dump "), out.stdout
    assert out.stdout.splitlines()[1].startswith(f"database upgraded from 0001 to {HEAD}")
    assert revision_of(url) == HEAD

    # The hint, run with this machine's pg_dump against the upgraded database, makes a dump.
    argv = shlex.split(hint.removeprefix(prefix))
    assert "+psycopg" not in argv[-1] and argv[-1].startswith("postgresql://")
    argv[0] = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"))[-1]
    subprocess.run(argv, cwd=tmp_path, check=True, timeout=120)
    dumped = next(tmp_path.glob(f"*-before-{HEAD}.dump"))
    assert dumped.read_bytes()[:5] == b"PGDMP"


def test_a_stamped_database_lacking_its_tables_is_named(
    blank: Callable[[], str], tmp_path: Path
) -> None:
    """What an early build's rewritten 0001 left behind: stamped 0001, four tables short.
    ``db upgrade`` and ``serve`` say so in one line and touch nothing."""
    url = blank()
    upgrade(url, "0001")
    engine = create_engine(url)
    with engine.begin() as conn:
        for table in EARLY_BUILD_LACKS:
            conn.execute(text(f'DROP TABLE "{table}"'))
    engine.dispose()
    said = (
        "error: database says revision 0001 but lacks tables "
        + ", ".join(EARLY_BUILD_LACKS)
        + " (it was made by a development build whose first migration was rewritten): "
        "it cannot be upgraded in place; see 'Upgrading' in the README"
    )
    for command in (["db", "upgrade"], ["serve", "--port", "1"]):
        out = run(["beamdesk", *command], url, tmp_path)
        assert out.returncode == 2, out.stdout
        assert one_line(out) == said
    assert revision_of(url) == "0001"
    assert not list(tmp_path.glob("*.before-*"))


def test_a_current_database_lacking_a_column_is_named(sqlite_url: str, tmp_path: Path) -> None:
    with sqlite3.connect(make_url(sqlite_url).database) as db:
        db.execute("ALTER TABLE datasets DROP COLUMN search_text")
    db.close()
    out = run(["beamdesk", "serve", "--port", "1"], sqlite_url, tmp_path)
    assert out.returncode == 2
    assert f"database says revision {HEAD} but lacks column datasets.search_text" in one_line(out)


def test_databases_that_cannot_be_reasoned_about_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    with sqlite3.connect(tmp_path / "other.db") as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    db.close()
    with pytest.raises(SchemaError, match="has tables but no schema revision"):
        check_upgradable(url)
    upgraded = f"sqlite:///{tmp_path / 'newer.db'}"
    upgrade(upgraded)
    with sqlite3.connect(tmp_path / "newer.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0099'")
    db.close()
    with pytest.raises(SchemaError, match=r"revision 0099, which this BeamDesk .* does not know"):
        check_upgradable(upgraded)
