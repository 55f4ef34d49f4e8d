"""The file-handle cache under concurrency (many threads, few slots, the same few files), and
the opener against a folder swapped while it opens."""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
from pathlib import Path

import h5py
import numpy as np

from beamdesk.h5.handles import FileCache


def test_concurrent_reads_with_eviction_stay_correct(tmp_path: Path) -> None:
    files = []
    for k in range(3):
        path = tmp_path / f"f{k}.h5"
        with h5py.File(path, "w") as fh:
            fh.create_dataset("data", data=np.full((64, 64), k, dtype=np.int32), chunks=(8, 64))
        files.append(path)
    cache = FileCache(capacity=1)  # every other request evicts: the worst case
    failures: list[str] = []

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(150):
            k = int(rng.integers(3))
            try:
                handle = cache.get(files[k])
                row = handle["data"][int(rng.integers(64))]
                if not np.all(row == k):
                    failures.append(f"file {k} read {row[:3]}")
            except Exception as exc:  # any error is a failure of the cache
                failures.append(f"{type(exc).__name__}: {exc}")
            if rng.random() < 0.02:
                # drop evicted handles now, as a busy server eventually does (~24 times in all:
                # a collection costs the whole heap of the test process, seconds under xdist)
                gc.collect()

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_a_changed_file_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "grow.h5"
    with h5py.File(path, "w") as fh:
        fh["v"] = np.arange(3)
    cache = FileCache()
    assert cache.get(path)["v"].shape == (3,)
    first = cache.get(path)
    del first
    replacement = tmp_path / "new.h5"
    with h5py.File(replacement, "w") as fh:
        fh["v"] = np.arange(5)
    os.replace(replacement, path)  # a new inode: the old handle must not be reused
    assert cache.get(path)["v"].shape == (5,)


def test_a_folder_swapped_for_a_symlink_never_redirects_a_read(tmp_path: Path) -> None:
    """A user who can write in the proposal swaps a folder for a symlink to another
    proposal, again and again, while files are opened: the path check and the open are two
    steps, but the descriptor check refuses a handle that is not the file beneath the
    folder. (Without it, this loop read the other proposal's values 3 times in 3000.)"""
    from beamdesk.errors import BeamDeskError
    from beamdesk.h5.opener import ProposalFiles

    proposal, other = tmp_path / "P", tmp_path / "Q"
    (proposal / "real").mkdir(parents=True)
    other.mkdir()
    with h5py.File(proposal / "real" / "scan.h5", "w") as fh:
        fh["v"] = np.ones(4)
    with h5py.File(other / "scan.h5", "w") as fh:
        fh["v"] = np.full(4, 2.0)
    files = ProposalFiles(proposal, capacity=1)
    stop = threading.Event()

    def swap() -> None:
        real, moved = proposal / "real", proposal / "moved"
        while not stop.is_set():
            os.rename(real, moved)
            os.symlink(other, real)
            time.sleep(0.0002)
            os.unlink(real)
            os.rename(moved, real)
            time.sleep(0.0002)

    swapper = threading.Thread(target=swap)
    swapper.start()
    values: list[float] = []
    try:
        for i in range(3000):
            with contextlib.suppress(BeamDeskError, OSError):  # refused while swapped: right
                values.append(float(files.dataset("real/scan.h5", "/v")[0]))
            if i % 2:
                files.cache.clear()
    finally:
        stop.set()
        swapper.join()
    assert values and set(values) == {1.0}, f"read {values.count(2.0)} times from elsewhere"
