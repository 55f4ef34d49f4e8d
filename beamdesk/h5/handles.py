"""A small, thread-safe LRU cache of open read-only h5py files.

Opening a file costs a superblock read and, for big files, metadata cache warm-up; viewers
issue dozens of requests per click. A cached handle is dropped (not closed: a streaming
response in another thread may still be reading it; h5py closes it when the last reference
goes) when the file's (mtime, size, inode) changes, so rewritten or growing files are
seen afresh. Files written with SWMR are opened in SWMR-read mode where the format allows.

Files are opened in SWMR-read mode only when a plain read-only open is refused (a SWMR
writer has them open): ``H5Drefresh`` closes and reopens the dataset inside HDF5, which
breaks other threads reading the same dataset at that moment (seen under load as 422s,
"can't retrieve B-tree's shared ref. count object"), so finished files must never pay
for it, and refreshes of live files are serialised per file.

Opening is single-flight per path (concurrent first requests share one handle), and a
handle evicted from the LRU while a request still streams from it is found again through
a weak reference rather than opened a second time.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers bitshuffle, LZ4, Blosc, Zstd filters before opening)

from beamdesk.errors import Forbidden, Invalid

Signature = tuple[int, int, int]


def signature(path: Path) -> Signature:
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def open_readonly(path: Path) -> h5py.File:
    """Open for reading; in SWMR-read mode only if a SWMR writer holds the file.

    libhdf5 refuses a damaged file here as an OSError, or a RuntimeError for a superblock
    it cannot decode: both are the file's fault, a 422 naming none of libhdf5's words."""
    try:
        return h5py.File(path, "r", locking=False)
    except (OSError, RuntimeError) as exc:
        _refuse_unreadable(path, exc)
    try:
        return h5py.File(path, "r", swmr=True, locking=False)
    except (OSError, RuntimeError) as exc:
        _refuse_unreadable(path, exc)
        raise Invalid(
            f"{path.name} is not a readable HDF5 file (it may be truncated or damaged)."
        ) from exc


def _refuse_unreadable(path: Path, exc: Exception) -> None:
    """A file the reader may not read is 403 "Permission denied" (h5grove's words, which
    H5Web recognises), not a damaged file."""
    if isinstance(exc, PermissionError) or "Permission denied" in str(exc):
        raise Forbidden(f"Cannot read file {path.name}: Permission denied.") from exc


def check_not_truncated(handle: h5py.File, path: Path, size_on_disk: int) -> None:
    """Refuse a file shorter than libhdf5 believes it is.

    libhdf5 refuses to open a truncated file, except when the same file is still open in
    this process (a streaming response, a dropped cache entry): it then shares the old
    state and reads zeros past the new end. Comparing its idea of the size with the disk's
    catches that; a file growing under a SWMR writer is only ever longer on disk.
    """
    if handle.swmr_mode:  # a SWMR writer allocates ahead of what it has flushed
        return
    try:
        expected = handle.id.get_filesize()
    except (OSError, RuntimeError, ValueError):
        return
    if size_on_disk < expected:
        raise Invalid(
            f"{path.name} is shorter than its HDF5 structure says: it was truncated or "
            "is being rewritten.",
        )


class FileCache:
    def __init__(self, capacity: int = 32) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._files: OrderedDict[Path, tuple[Signature, h5py.File]] = OrderedDict()
        # Every handle still alive (cached or held by a running request), by path.
        self._alive: weakref.WeakValueDictionary[tuple[Path, Signature], h5py.File] = (
            weakref.WeakValueDictionary()
        )
        self._opening: dict[Path, threading.Lock] = {}

    def _cached(self, path: Path, sig: Signature) -> h5py.File | None:
        """Under ``self._lock``: a valid handle for (path, sig), put back at the LRU's end."""
        entry = self._files.get(path)
        if entry is not None and entry[0] == sig and entry[1].id.valid:
            self._files.move_to_end(path)
            return entry[1]
        handle = self._alive.get((path, sig))
        if handle is not None and handle.id.valid:
            self._remember(path, sig, handle)
            return handle
        return None

    def _remember(self, path: Path, sig: Signature, handle: h5py.File) -> None:
        self._files[path] = (sig, handle)
        self._files.move_to_end(path)
        self._alive[(path, sig)] = handle
        while len(self._files) > self.capacity:
            self._files.popitem(last=False)

    def get(self, path: Path) -> h5py.File:
        """An open handle for the resolved ``path``, reopened if the file changed."""
        sig = signature(path)
        with self._lock:
            handle = self._cached(path, sig)
            if handle is not None:
                return handle
            opening = self._opening.setdefault(path, threading.Lock())
        with opening:  # one opener per path; the others wait and share its handle
            with self._lock:
                handle = self._cached(path, sig)
                if handle is not None:
                    return handle
                self._files.pop(path, None)
            handle = open_readonly(path)  # outside the cache lock: opening can be slow
            check_not_truncated(handle, path, sig[1])
            with self._lock:
                self._remember(path, sig, handle)
                self._opening.pop(path, None)
            return handle

    def clear(self) -> None:
        with self._lock:
            self._files.clear()

    def __len__(self) -> int:
        return len(self._files)


# One lock per live (SWMR) file name: bounded by the files being written, not by opens.
_refresh_locks: dict[str, threading.Lock] = {}
_refresh_guard = threading.Lock()


def refresh(dataset: h5py.Dataset) -> None:
    """Pick up rows a SWMR writer appended since the handle was opened (live files only)."""
    if not dataset.file.swmr_mode:
        return
    with _refresh_guard:
        lock = _refresh_locks.setdefault(dataset.file.filename, threading.Lock())
    with lock:
        dataset.refresh()
