"""``beamdesk backup`` / ``beamdesk restore`` through the command line, across databases.

A facility is built on one kind of database, backed up, and restored into an empty
instance (a fresh database after ``db upgrade``, an empty data root) on the other kind.
Every row of every table and every processed file must come back identical (compared
here with plain SELECTs and bytes, not with the backup's own code), and the restored
instance must work: the old API tokens still sign in, and new rows get new ids.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

import beamdesk.models  # noqa: F401  (every table on the metadata)
from beamdesk.cli import app as cli
from beamdesk.db import Base, make_engine, make_sessionmaker, session_scope
from beamdesk.migrate import upgrade
from beamdesk.settings import Settings
from tests.conftest import _fresh_postgres_database, _postgres_url, make_settings
from tests.security.world import Facts, build


def database(kind: str, folder: Path) -> str:
    url = (
        f"sqlite:///{folder / 'beamdesk.db'}"
        if kind == "sqlite"
        else _fresh_postgres_database(_postgres_url())
    )
    upgrade(url)
    return url


def env(settings: Settings) -> dict[str, str]:
    return {
        "BEAMDESK_DATABASE_URL": settings.database_url,
        "BEAMDESK_DATA": str(settings.data_root),
        "BEAMDESK_VAR": str(settings.var_dir),
        "BEAMDESK_SECRET_KEY": settings.secret_key,
    }


def dump(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, by primary key, times in UTC."""
    engine = make_engine(url)
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).mappings()
            out[table.name] = [
                {
                    k: v.astimezone(UTC) if isinstance(v, datetime) and v.tzinfo else v
                    for k, v in row.items()
                }
                for row in rows
            ]
    engine.dispose()
    return out


def processed(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.glob("*/processed/**/*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    ("source", "target"), [("sqlite", "postgresql"), ("postgresql", "sqlite"), ("sqlite", "sqlite")]
)
def test_backup_restores_into_an_empty_instance(tmp_path: Path, source: str, target: str) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    old = make_settings(tmp_path / "a", database(source, tmp_path / "a"))
    new = make_settings(tmp_path / "b", database(target, tmp_path / "b"))
    engine = make_engine(old.database_url)
    with session_scope(make_sessionmaker(engine)) as db:
        facts: Facts = build(db, old)
    engine.dispose()
    result_dir = old.data_root / "20260103" / "processed" / "jobs" / "7"
    result_dir.mkdir(parents=True)
    (result_dir / "fit ünïcode.nxs").write_bytes(bytes(range(256)) * 1000)
    # raw data is the beamline's: it must not be in the backup
    assert (old.data_root / "20260103" / "raw" / "scan.h5").is_file()

    runner = CliRunner()
    out = tmp_path / "backup"
    r = runner.invoke(cli, ["backup", str(out)], env=env(old))
    assert r.exit_code == 0, r.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tables"]["proposals"]["rows"] == 5
    assert not any("/raw/" in f for f in manifest["files"])
    assert "20260103/processed/jobs/7/fit ünïcode.nxs" in manifest["files"]

    r = runner.invoke(cli, ["restore", str(out)], env=env(new))
    assert r.exit_code == 0, r.output
    before, after = dump(old.database_url), dump(new.database_url)
    for table in before:
        assert after[table] == before[table], table
    assert sum(len(rows) for rows in after.values()) > 50
    assert processed(new.data_root) == processed(old.data_root)
    assert not list(new.data_root.glob("*/raw/*"))

    # the restored instance works: old tokens, new ids
    from beamdesk.web.app import create_app

    app = create_app(new)
    with TestClient(app) as client:
        bearer = {"Authorization": f"Bearer {facts.tokens['pi']}"}
        listed = client.get("/api/proposals", headers=bearer).json()
        assert {p["number"] for p in listed["items"]} == {
            "20260101",
            "20260102",
            "20260103",
            "20260104",
            "20260105",
        }
        made = client.post("/api/proposals", headers=bearer, json={"title": "After restore"})
        assert made.status_code == 201, made.text
    app.state.engine.dispose()

    # a second restore into the now non-empty instance is refused, and changes nothing
    r = runner.invoke(cli, ["restore", str(out)], env=env(new))
    assert r.exit_code == 2 and "not empty" in r.output


def test_damaged_backup_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    old = make_settings(tmp_path / "a", database("sqlite", tmp_path / "a"))
    new = make_settings(tmp_path / "b", database("sqlite", tmp_path / "b"))
    engine = make_engine(old.database_url)
    with session_scope(make_sessionmaker(engine)) as db:
        build(db, old)
    engine.dispose()
    runner = CliRunner()
    out = tmp_path / "backup"
    assert runner.invoke(cli, ["backup", str(out)], env=env(old)).exit_code == 0
    users = out / "db" / "users.jsonl"
    users.write_text(users.read_text().replace('"office"', '"0ffice"'))
    r = runner.invoke(cli, ["restore", str(out)], env=env(new))
    assert r.exit_code == 2 and "checksum" in r.output
    assert all(not rows for rows in dump(new.database_url).values())
