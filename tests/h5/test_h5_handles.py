"""The file-handle cache under concurrency: many threads, few slots, the same few files."""

from __future__ import annotations

import gc
import threading
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
    import os

    replacement = tmp_path / "new.h5"
    with h5py.File(replacement, "w") as fh:
        fh["v"] = np.arange(5)
    os.replace(replacement, path)  # a new inode: the old handle must not be reused
    assert cache.get(path)["v"].shape == (5,)
