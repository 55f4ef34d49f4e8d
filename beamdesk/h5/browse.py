"""One folder of a proposal, for the viewer's file browser: names, sizes, dates, HDF5 or not.

Every entry is re-resolved with ``resolve_in_proposal``, so a symlink that leads out of the
proposal folder (or nowhere) is left out rather than listed, and a listed path can be handed
back to any confined endpoint unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from beamdesk.h5.paths import PathNotFound, clean_relative, resolve_in_proposal

# A folder of a million frames must not become a million-row answer.
MAX_ENTRIES = 2000
SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass(frozen=True)
class Entry:
    name: str
    path: str  # relative to the proposal folder, forward slashes
    kind: str  # "folder" or "file"
    size: int
    mtime: datetime
    is_hdf5: bool


@dataclass(frozen=True)
class Listing:
    path: str
    parent: str | None  # None at the proposal folder itself
    entries: list[Entry]
    truncated: bool


def has_hdf5_signature(path: Path) -> bool:
    """HDF5's signature at byte 0, 512, 1024, 2048, … (a user block may precede it).

    Reads a few bytes only, without opening the file with libhdf5, so listing a folder of
    big files stays cheap.
    """
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            offset = 0
            while offset + len(SIGNATURE) <= size:
                fh.seek(offset)
                if fh.read(len(SIGNATURE)) == SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False
    return False


def list_folder(data_root: Path, number: str, relpath: str, limit: int = MAX_ENTRIES) -> Listing:
    """Folders first, then files, each sorted by name; PathNotFound if not a folder here."""
    rel = clean_relative(relpath)
    folder = resolve_in_proposal(data_root, number, rel)
    if not folder.is_dir():
        raise PathNotFound(rel)
    entries: list[Entry] = []
    names = sorted(os.listdir(folder))
    truncated = False
    for name in names:
        if name.startswith("."):
            continue
        child_rel = f"{rel}/{name}" if rel else name
        try:
            target = resolve_in_proposal(data_root, number, child_rel)
            st = target.stat()
        except (PathNotFound, OSError):
            continue  # broken, looping, oddly named or leading out of the proposal
        if len(entries) >= limit:
            truncated = True
            break
        is_dir = target.is_dir()
        entries.append(
            Entry(
                name=name,
                path=child_rel,
                kind="folder" if is_dir else "file",
                size=0 if is_dir else st.st_size,
                mtime=datetime.fromtimestamp(st.st_mtime, UTC),
                is_hdf5=not is_dir and has_hdf5_signature(target),
            )
        )
    entries.sort(key=lambda e: (e.kind != "folder", e.name.lower()))
    parent = None if not rel else rel.rpartition("/")[0]
    return Listing(path=rel, parent=parent, entries=entries, truncated=truncated)
