"""The catalogue: every file under ``$BEAMDESK_DATA/<proposal>/`` as a ``Dataset`` row.

Indexing is idempotent and cheap to repeat: a file whose size and modification time are
unchanged is not read again; a changed file is re-hashed and re-described; a vanished
file loses its row. A file HDF5 cannot open is recorded with the error and the walk goes
on. Symlinks are followed only when they stay inside the proposal folder, so the
catalogue never lists (or hashes) what the file API would refuse to serve.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from beamdesk.db import utcnow
from beamdesk.h5.browse import has_hdf5_signature
from beamdesk.h5.paths import PathNotFound, proposal_root, resolve_in_proposal
from beamdesk.portal.access import Identity, readable_proposals
from beamdesk.portal.models import Beamline, Beamtime, Dataset, Proposal
from beamdesk.sandbox.pool import ReaderError, ReaderPool, shared_pool

HASH_BLOCK = 1024 * 1024
# Files being written (by BeamDesk's jobs or by copy tools) are not data yet.
IN_PROGRESS_SUFFIXES = (".part", ".tmp", ".partial")
MAX_ERROR_LENGTH = 500


@dataclass
class IndexReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    broken: int = 0
    proposals: int = 0
    # Folders under the data root with no proposal of that number in the database.
    unknown_folders: list[str] = field(default_factory=list)

    def merge(self, other: IndexReport) -> None:
        for name in ("added", "updated", "unchanged", "removed", "broken", "proposals"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.unknown_folders += other.unknown_folders

    def summary(self) -> str:
        text = (
            f"{self.proposals} proposals: {self.added} files added, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.removed} removed, {self.broken} unreadable"
        )
        if self.unknown_folders:
            text += f"; folders with no proposal: {', '.join(sorted(self.unknown_folders))}"
        return text


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _mtime(stat: os.stat_result) -> datetime:
    return datetime.fromtimestamp(stat.st_mtime, UTC)


def walk_proposal(folder: Path) -> Iterator[tuple[str, Path]]:
    """(relative path, resolved file) of every data file in a proposal folder.

    Symlinked files and folders are followed only if they resolve inside the folder, and a
    folder is visited once even if links make a loop.
    """
    folder = folder.resolve()
    seen: set[Path] = set()
    stack: list[tuple[Path, str]] = [(folder, "")]
    while stack:
        directory, prefix = stack.pop()
        real = directory.resolve()
        if real in seen:
            continue
        seen.add(real)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(".") or entry.name.endswith(IN_PROGRESS_SUFFIXES):
                continue
            rel = f"{prefix}{entry.name}"
            try:
                target = Path(entry.path).resolve(strict=True)
            except (OSError, RuntimeError):
                continue  # dangling link or a loop
            if target != folder and not target.is_relative_to(folder):
                continue
            if target.is_dir():
                stack.append((Path(entry.path), rel + "/"))
            elif target.is_file():
                yield rel, target


def search_text_of(row: Dataset) -> str:
    return " ".join((row.path, row.title or "", row.instrument or "")).lower()


def describe_into(
    row: Dataset, path: Path, stat: os.stat_result, folder: Path, readers: ReaderPool | None = None
) -> None:
    """Fill a row from the file: size, time, checksum, and NeXus metadata if HDF5.

    The metadata is read by a sandboxed reader of the proposal ``folder``: a hostile file
    costs that worker, never the indexer, and is recorded with the reason.
    """
    row.size = stat.st_size
    row.mtime = _mtime(stat)
    row.sha256 = sha256_of(path)
    row.is_hdf5 = has_hdf5_signature(path)
    row.error = ""
    row.title, row.instrument, row.nx_classes = "", "", ""
    row.start_time = row.end_time = None
    row.parameters = None
    row.indexed_at = utcnow()
    if row.is_hdf5:
        pool = readers or shared_pool()
        try:
            meta = pool.call(folder, "catalogue.metadata", path.relative_to(folder).as_posix())
        except ReaderError as exc:  # any broken file is recorded, never fatal
            row.error = exc.detail[:MAX_ERROR_LENGTH]
        else:
            row.title, row.instrument = meta["title"], meta["instrument"]
            row.nx_classes, row.parameters = meta["nx_classes"], meta["parameters"] or None
            row.start_time = _utc(meta["start_time"])
            row.end_time = _utc(meta["end_time"])
    row.search_text = search_text_of(row)


def _utc(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def index_proposal(
    db: Session,
    proposal: Proposal,
    data_root: Path,
    progress: Any = None,
    readers: ReaderPool | None = None,
) -> IndexReport:
    """Bring one proposal's rows in line with its folder. ``progress(relpath)`` per file."""
    report = IndexReport(proposals=1)
    try:
        folder = proposal_root(data_root, proposal.number)
    except PathNotFound:
        folder = None
    known = {
        d.path: d for d in db.scalars(select(Dataset).where(Dataset.proposal_id == proposal.id))
    }
    found: set[str] = set()
    for rel, path in walk_proposal(folder) if folder else ():
        found.add(rel)
        if progress:
            progress(rel)
        try:
            stat = path.stat()
        except OSError:
            continue  # vanished between listing and reading: the next run will notice
        row = known.get(rel)
        if row and row.size == stat.st_size and row.mtime == _mtime(stat):
            report.unchanged += 1
            continue
        if row is None:
            row = Dataset(
                proposal_id=proposal.id,
                path=rel,
                kind="processed" if rel.startswith("processed/") else "raw",
            )
            db.add(row)
            report.added += 1
        else:
            report.updated += 1
        try:
            describe_into(row, path, stat, folder, readers)  # type: ignore[arg-type]
        except OSError as exc:  # unreadable (permissions, I/O error): record and go on
            row.size, row.mtime = stat.st_size, _mtime(stat)
            row.error = f"cannot read: {exc.strerror or exc}"[:MAX_ERROR_LENGTH]
        if row.error:
            report.broken += 1
    for rel, row in known.items():
        if rel not in found:
            db.delete(row)
            report.removed += 1
    db.flush()
    return report


def index_data_root(
    db: Session,
    data_root: Path,
    *,
    only: str | None = None,
    console: Any = None,
    readers: ReaderPool | None = None,
) -> IndexReport:
    """Index every proposal folder (or only one); commit per proposal so work is kept."""
    data_root = Path(data_root)
    query = select(Proposal).order_by(Proposal.number)
    if only:
        query = query.where(Proposal.number == only)
    proposals = list(db.scalars(query))
    report = IndexReport()
    if not only and data_root.is_dir():
        numbers = {p.number for p in proposals}
        report.unknown_folders = [
            e.name
            for e in os.scandir(data_root)
            if e.is_dir() and not e.name.startswith(".") and e.name not in numbers
        ]
    progress_bar = None
    if console is not None:
        from rich.progress import Progress  # the CLI's bar; the web never asks for one

        progress_bar = Progress(console=console, transient=True)
        progress_bar.start()
    try:
        task = progress_bar.add_task("indexing", total=len(proposals)) if progress_bar else None
        for proposal in proposals:

            def tick(rel: str, number: str = proposal.number) -> None:
                if progress_bar is not None and task is not None:
                    progress_bar.update(task, description=f"{number}/{rel}"[:60])

            report.merge(index_proposal(db, proposal, data_root, tick, readers))
            db.commit()
            if progress_bar is not None and task is not None:
                progress_bar.advance(task)
    finally:
        if progress_bar is not None:
            progress_bar.stop()
    return report


def index_file(
    db: Session,
    proposal: Proposal,
    data_root: Path,
    relpath: str,
    *,
    kind: str = "processed",
    provenance: dict[str, Any] | None = None,
    readers: ReaderPool | None = None,
) -> Dataset:
    """Record (or refresh) one file, e.g. a job's result, with where it came from."""
    path = resolve_in_proposal(data_root, proposal.number, relpath)
    rel = path.relative_to(proposal_root(data_root, proposal.number)).as_posix()
    row = db.scalar(select(Dataset).where(Dataset.proposal_id == proposal.id, Dataset.path == rel))
    if row is None:
        row = Dataset(proposal_id=proposal.id, path=rel)
        db.add(row)
    row.kind = kind
    row.provenance = provenance
    describe_into(row, path, path.stat(), proposal_root(data_root, proposal.number), readers)
    db.flush()
    return row


# --- searching ---------------------------------------------------------------------------


@dataclass
class DatasetQuery:
    """What a caller may filter by; every field optional."""

    text: str = ""
    proposal: str = ""
    beamline: str = ""
    since: datetime | None = None
    until: datetime | None = None
    kind: str = ""


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def dataset_filter(identity: Identity, now: datetime, query: DatasetQuery) -> Select[Any]:
    """SELECT of the datasets the identity may read that match the query (not yet ordered).

    Proposals are narrowed first (access, number, beamline, title) in a subquery, so the
    dataset rows are reached through the (proposal_id, path) index.
    """
    proposals = select(Proposal.id).where(readable_proposals(identity, now))
    if query.proposal:
        proposals = proposals.where(Proposal.number == query.proposal)
    if query.beamline:
        beamline_ids = select(Beamline.id).where(Beamline.name == query.beamline)
        proposals = proposals.where(
            or_(
                Proposal.beamline_id.in_(beamline_ids),
                exists(
                    select(Beamtime.id).where(
                        Beamtime.proposal_id == Proposal.id, Beamtime.beamline_id.in_(beamline_ids)
                    )
                ),
            )
        )
    stmt = select(Dataset).where(Dataset.proposal_id.in_(proposals))
    for word in query.text.lower().split()[:8]:
        pattern = _like(word)
        titled = select(Proposal.id).where(func.lower(Proposal.title).like(pattern, escape="\\"))
        stmt = stmt.where(
            or_(Dataset.search_text.like(pattern, escape="\\"), Dataset.proposal_id.in_(titled))
        )
    # Date of a dataset: when the measurement started, or when the file was written.
    moment = func.coalesce(Dataset.start_time, Dataset.mtime)
    if query.since:
        stmt = stmt.where(moment >= query.since)
    if query.until:
        stmt = stmt.where(moment < query.until)
    if query.kind:
        stmt = stmt.where(Dataset.kind == query.kind)
    return stmt


# Counting every match of a broad search costs a full scan; past this, "1,000+" will do.
COUNT_LIMIT = 1_000


def count_up_to(db: Session, stmt: Select[Any], limit: int = COUNT_LIMIT) -> tuple[int, bool]:
    """(count, exact): the number of rows, or ``limit`` and False when there are more."""
    capped = stmt.with_only_columns(Dataset.id).order_by(None).limit(limit + 1).subquery()
    total = db.scalar(select(func.count()).select_from(capped)) or 0
    return min(total, limit), total <= limit


def search_datasets(
    db: Session,
    identity: Identity,
    now: datetime,
    query: DatasetQuery,
    *,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[tuple[Dataset, str]], int, bool]:
    """One page of (dataset, proposal number) in catalogue order, the count, and if exact.

    Catalogue order is by proposal (as registered) then path: the index's order, so a
    page is read without sorting every match.
    """
    stmt = dataset_filter(identity, now, query)
    total, exact = count_up_to(db, stmt)
    page = stmt.order_by(Dataset.proposal_id, Dataset.path).limit(limit).offset(offset).subquery()
    rows = db.execute(
        select(Dataset, Proposal.number)
        .join(page, Dataset.id == page.c.id)
        .join(Proposal, Proposal.id == Dataset.proposal_id)
        .order_by(Dataset.proposal_id, Dataset.path)
    ).all()
    return [(row, number) for row, number in rows], total, exact


# What the API shows of a dataset, in its order (the row's id and proposal_id are internal).
PUBLIC_FIELDS = (
    "path",
    "size",
    "mtime",
    "sha256",
    "is_hdf5",
    "title",
    "start_time",
    "end_time",
    "instrument",
    "nx_classes",
    "kind",
    "error",
    "provenance",
    "parameters",
)


def _text_condition(proposal_id: int, text: str) -> Any:
    condition = Dataset.proposal_id == proposal_id
    for word in text.lower().split()[:8]:
        condition = and_(condition, Dataset.search_text.like(_like(word), escape="\\"))
    return condition


def proposal_dataset_records(
    db: Session,
    proposal: Proposal,
    *,
    text: str = "",
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Like ``proposal_datasets`` but plain dicts of ``PUBLIC_FIELDS``: the API's hot path
    skips building ORM objects it would only copy out again."""
    condition = _text_condition(proposal.id, text)
    total = db.scalar(select(func.count(Dataset.id)).where(condition)) or 0
    columns = [getattr(Dataset, name) for name in PUBLIC_FIELDS]
    rows = (
        db.execute(
            select(*columns).where(condition).order_by(Dataset.path).limit(limit).offset(offset)
        )
        .mappings()
        .all()
    )
    return [dict(row) for row in rows], total


def proposal_datasets(
    db: Session, proposal: Proposal, *, text: str = "", limit: int = 50, offset: int = 0
) -> tuple[list[Dataset], int]:
    """One page of a proposal's datasets, for callers that already checked access."""
    condition = _text_condition(proposal.id, text)
    total = db.scalar(select(func.count(Dataset.id)).where(condition)) or 0
    rows = db.scalars(
        select(Dataset).where(condition).order_by(Dataset.path).limit(limit).offset(offset)
    ).all()
    return list(rows), total
