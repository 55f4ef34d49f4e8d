"""A small, thread-safe LRU cache of open read-only h5py files.

Opening a file costs a superblock read and, for big files, metadata cache warm-up; viewers
issue dozens of requests per click. A cached handle is dropped (not closed: a streaming
response in another thread may still be reading it; h5py closes it when the last reference
goes) when the file's (mtime, size, inode) changes, so rewritten or growing files are
seen afresh. Files written with SWMR are opened in SWMR-read mode where the format allows.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers bitshuffle, LZ4, Blosc, Zstd filters before opening)

from beamdesk.h5.errors import H5RequestError

Signature = tuple[int, int, int]


def signature(path: Path) -> Signature:
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def open_readonly(path: Path) -> h5py.File:
    """Open for reading, in SWMR mode when the file supports it."""
    try:
        return h5py.File(path, "r", swmr=True)
    except OSError:
        pass
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise H5RequestError(
            422, f"{path.name} is not a readable HDF5 file (it may be truncated or damaged)."
        ) from exc


class FileCache:
    def __init__(self, capacity: int = 32) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._files: OrderedDict[Path, tuple[Signature, h5py.File]] = OrderedDict()

    def get(self, path: Path) -> h5py.File:
        """An open handle for the resolved ``path``, reopened if the file changed."""
        sig = signature(path)
        with self._lock:
            entry = self._files.get(path)
            if entry is not None and entry[0] == sig and entry[1].id.valid:
                self._files.move_to_end(path)
                return entry[1]
            self._files.pop(path, None)
        handle = open_readonly(path)  # outside the lock: opening can be slow
        with self._lock:
            self._files[path] = (sig, handle)
            self._files.move_to_end(path)
            while len(self._files) > self.capacity:
                self._files.popitem(last=False)
        return handle

    def clear(self) -> None:
        with self._lock:
            self._files.clear()

    def __len__(self) -> int:
        return len(self._files)


def refresh(dataset: h5py.Dataset) -> None:
    """Pick up rows a SWMR writer appended since the handle was opened."""
    if dataset.file.swmr_mode:
        dataset.refresh()
