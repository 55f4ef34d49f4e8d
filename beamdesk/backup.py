"""``beamdesk backup`` and ``beamdesk restore``: the database and the processed results.

A backup is a folder anyone can read with a text editor::

    manifest.json             format, versions, schema revision, row counts, SHA-256 of every file
    db/<table>.jsonl          one JSON object per row, table by table, in primary-key order
    files/<proposal>/processed/...   BeamDesk's results, byte for byte

The database is dumped through SQLAlchemy table by table, not with a database's own dump
tool, so a backup taken on SQLite restores into PostgreSQL and back. Raw data
(``<proposal>/raw/``) belongs to the beamline, which keeps it in its own archive; it is not
copied (it can be terabytes). Neither is the secret key (``$BEAMDESK_VAR/secret_key``):
without it sessions are signed anew and everybody signs in again, which is harmless.

Restore goes into an *empty* instance: a fresh database brought to the same schema revision
by ``beamdesk db upgrade`` and a data root without those processed files. Every checksum is
verified before anything is written, and every file again after it is copied.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Enum,
    LargeBinary,
    Table,
    func,
    select,
    text,
)

import beamdesk
import beamdesk.models  # registers every table on the metadata
from beamdesk.db import Base, make_engine
from beamdesk.settings import Settings

FORMAT = 1
MANIFEST = "manifest.json"
BATCH = 1000
Report = Callable[[str], None]


class BackupError(Exception):
    """The backup or restore cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Summary:
    tables: int
    rows: int
    files: int
    bytes: int


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def tables() -> list[Table]:
    """Every table, parents before children (the order rows can be inserted in)."""
    return list(Base.metadata.sorted_tables)


def schema_revision(conn: Connection) -> str:
    try:
        return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar() or "")
    except Exception:  # no alembic_version table: a database never upgraded
        conn.rollback()
        return ""


# ------------------------------------------------------------------ values <-> JSON
def _encode(column: Column[Any], value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column.type, DateTime) or isinstance(value, datetime):
        return value.isoformat()
    if isinstance(column.type, LargeBinary):
        return base64.b64encode(value).decode()
    if isinstance(column.type, Enum) and hasattr(value, "name"):
        return value.name
    return value


def _decode(column: Column[Any], value: Any) -> Any:
    if value is None:
        return None
    kind = column.type
    if isinstance(kind, DateTime) or isinstance(getattr(kind, "impl", None), DateTime):
        return datetime.fromisoformat(value)
    if isinstance(kind, LargeBinary):
        return base64.b64decode(value)
    if isinstance(kind, Enum) and kind.enum_class is not None:
        return kind.enum_class[value]
    return value


def _ordered(table: Table) -> Any:
    return select(table).order_by(*table.primary_key.columns)


# ------------------------------------------------------------------ backup
def _processed_files(data_root: Path) -> Iterator[Path]:
    """``<proposal>/processed/**`` files under the data root, without following links out."""
    if not data_root.is_dir():
        return
    for proposal in sorted(p for p in data_root.iterdir() if p.is_dir() and not p.is_symlink()):
        processed = proposal / "processed"
        if not processed.is_dir() or processed.is_symlink():
            continue
        for path in sorted(processed.rglob("*")):
            if path.is_file() and not path.is_symlink():
                yield path


def backup(settings: Settings, out_dir: Path, report: Report = lambda _: None) -> Summary:
    """Write a backup of the database and the processed results into ``out_dir``."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise BackupError(f"{out_dir} is not empty; back up into a new folder.")
    (out_dir / "db").mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "beamdesk": beamdesk.__version__,
        "created_at": datetime.now().astimezone().isoformat(),
        "dialect": engine.dialect.name,
        "tables": {},
        "files": {},
    }
    rows_total = 0
    try:
        # One transaction (REPEATABLE READ on PostgreSQL): every table from the same moment.
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            manifest["schema_revision"] = schema_revision(conn)
            for table in tables():
                target = out_dir / "db" / f"{table.name}.jsonl"
                count = 0
                with target.open("w", encoding="utf-8") as fh:
                    result = conn.execution_options(yield_per=BATCH).execute(_ordered(table))
                    for row in result:
                        record = {c.name: _encode(c, row._mapping[c.name]) for c in table.columns}
                        fh.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
                        count += 1
                manifest["tables"][table.name] = {"rows": count, "sha256": sha256_of(target)}
                rows_total += count
                report(f"{table.name}: {count} rows")
    finally:
        engine.dispose()
    size = 0
    for path in _processed_files(settings.data_root):
        rel = path.relative_to(settings.data_root).as_posix()
        target = out_dir / "files" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        digest = sha256_of(target)
        manifest["files"][rel] = {"size": target.stat().st_size, "sha256": digest}
        size += target.stat().st_size
    report(f"{len(manifest['files'])} processed files, {size} bytes")
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return Summary(len(manifest["tables"]), rows_total, len(manifest["files"]), size)


# ------------------------------------------------------------------ restore
def read_manifest(in_dir: Path) -> dict[str, Any]:
    """The manifest, after checking that every file it lists is there and unchanged."""
    path = Path(in_dir) / MANIFEST
    if not path.is_file():
        raise BackupError(f"{in_dir} has no {MANIFEST}: not a BeamDesk backup.")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"backup format {manifest.get('format')} is not {FORMAT}.")
    for name, entry in manifest["tables"].items():
        if sha256_of(Path(in_dir) / "db" / f"{name}.jsonl") != entry["sha256"]:
            raise BackupError(f"db/{name}.jsonl does not match its checksum: damaged backup.")
    for rel, entry in manifest["files"].items():
        source = Path(in_dir) / "files" / rel
        if not source.is_file() or sha256_of(source) != entry["sha256"]:
            raise BackupError(f"files/{rel} is missing or damaged.")
    return manifest


def _check_empty(conn: Connection, settings: Settings, manifest: dict[str, Any]) -> None:
    revision = schema_revision(conn)
    if not revision:
        raise BackupError("the database has no schema: run 'beamdesk db upgrade' first.")
    if revision != manifest.get("schema_revision"):
        raise BackupError(
            f"the database is at schema {revision}, the backup at "
            f"{manifest.get('schema_revision')}: restore with the BeamDesk "
            "version that made the backup, then upgrade."
        )
    for table in tables():
        if conn.execute(select(func.count()).select_from(table)).scalar():
            raise BackupError(f"table {table.name} is not empty: restore into a fresh database.")
    clashes = [rel for rel in manifest["files"] if (settings.data_root / rel).exists()]
    if clashes:
        raise BackupError(f"{len(clashes)} processed files exist already, e.g. {clashes[0]}.")


def _reset_sequences(conn: Connection) -> None:
    """PostgreSQL hands out ids from sequences that explicit inserts do not advance."""
    if conn.dialect.name != "postgresql":
        return
    for table in tables():
        for column in table.primary_key.columns:
            if column.autoincrement is True or (
                column.autoincrement == "auto" and column.type.python_type is int
            ):
                seq = conn.execute(
                    text("SELECT pg_get_serial_sequence(:t, :c)"),
                    {"t": table.name, "c": column.name},
                ).scalar()
                if seq:
                    conn.execute(
                        text(
                            f"SELECT setval('{seq}', COALESCE((SELECT MAX("
                            f'"{column.name}") FROM "{table.name}"), 0) + 1, false)'
                        )
                    )


def _insert_rows(conn: Connection, table: Table, path: Path) -> int:
    columns = {c.name: c for c in table.columns}
    batch: list[dict[str, Any]] = []
    count = 0
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            unknown = set(record) - set(columns)
            if unknown:
                raise BackupError(f"{table.name}: unknown columns {sorted(unknown)}.")
            batch.append({k: _decode(columns[k], v) for k, v in record.items()})
            if len(batch) >= BATCH:
                conn.execute(table.insert(), batch)
                count += len(batch)
                batch = []
    if batch:
        conn.execute(table.insert(), batch)
        count += len(batch)
    return count


def restore(settings: Settings, in_dir: Path, report: Report = lambda _: None) -> Summary:
    """Restore a backup into an empty instance (fresh database at the backup's schema)."""
    in_dir = Path(in_dir)
    manifest = read_manifest(in_dir)
    known = {t.name for t in tables()}
    missing = set(manifest["tables"]) - known
    if missing:
        raise BackupError(f"the backup has tables this version does not know: {sorted(missing)}")
    engine: Engine = make_engine(settings.database_url)
    rows_total = 0
    try:
        with engine.begin() as conn:  # all rows or none
            _check_empty(conn, settings, manifest)
            for table in tables():
                if table.name not in manifest["tables"]:
                    continue
                count = _insert_rows(conn, table, in_dir / "db" / f"{table.name}.jsonl")
                if count != manifest["tables"][table.name]["rows"]:
                    raise BackupError(
                        f"{table.name}: {count} rows read, manifest says "
                        f"{manifest['tables'][table.name]['rows']}."
                    )
                rows_total += count
                report(f"{table.name}: {count} rows")
            _reset_sequences(conn)
    finally:
        engine.dispose()
    size = 0
    for rel, entry in manifest["files"].items():
        target = settings.data_root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(in_dir / "files" / rel, target)
        if sha256_of(target) != entry["sha256"]:
            raise BackupError(f"{rel} changed while being restored.")
        size += entry["size"]
    report(f"{len(manifest['files'])} processed files, {size} bytes")
    return Summary(len(manifest["tables"]), rows_total, len(manifest["files"]), size)
