"""Selection parsing, slab planning and the file cache, on their own."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from beamdesk.errors import Invalid
from beamdesk.h5.handles import FileCache
from beamdesk.h5.reading import iter_bytes, slab_ranges
from beamdesk.h5.selection import describe, parse_selection


def test_selection_normalises_like_numpy() -> None:
    a = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    cases = {
        "": np.s_[...],
        "1": np.s_[1],
        "-1,2": np.s_[-1, 2],
        "1:3": np.s_[1:3],
        "::2,-3:": np.s_[::2, -3:],
        "0,1:4:2,5": np.s_[0, 1:4:2, 5],
        ":,:,:": np.s_[:, :, :],
        " 2 , : ": np.s_[2, :],
        "1:99": np.s_[1:99],
    }
    for text, key in cases.items():
        sel = parse_selection(text, a.shape)
        expected = a[key]
        np.testing.assert_array_equal(a[sel.key], expected)
        assert sel.result_shape == expected.shape
        assert parse_selection(describe(sel), a.shape) == sel


@pytest.mark.parametrize("text", ["1:2:0", "a", "0,0,0,0", "5", "1::-1", "1:2:3:4", ""])
def test_selection_errors(text: str) -> None:
    if text == "":
        with pytest.raises(Invalid):
            parse_selection("0", ())
        return
    with pytest.raises(Invalid) as err:
        parse_selection(text, (4, 5, 6))
    assert err.value.status == 422


def test_slabs_cover_selection_chunk_aligned(tmp_path: Path) -> None:
    data = np.arange(100 * 30, dtype="i4").reshape(100, 30)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        d = f.create_dataset("d", data=data, chunks=(8, 30))
        sel = parse_selection("3:97", d.shape)
        parts = list(slab_ranges(d, sel, 30 * 4 * 16))
        starts = [p.members[0].start for p in parts]
        assert starts[0] == 3 and all(s % 8 == 0 for s in starts[1:])
        body = b"".join(iter_bytes(d, sel, "origin", 30 * 4 * 16))
        np.testing.assert_array_equal(np.frombuffer(body, "i4").reshape(94, 30), data[3:97])
        sel = parse_selection("1,::7", d.shape)  # first axis fixed: stream along the second
        body = b"".join(iter_bytes(d, sel, "origin", 8))
        np.testing.assert_array_equal(np.frombuffer(body, "i4"), data[1, ::7])


def test_cache_reuses_and_invalidates(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        f["x"] = [1, 2, 3]
    cache = FileCache(capacity=2)
    first = cache.get(path)
    assert cache.get(path) is first
    with h5py.File(tmp_path / "new.h5", "w") as f:  # rewritten elsewhere, then renamed
        f["x"] = [4, 5]
    os.replace(tmp_path / "new.h5", path)
    second = cache.get(path)
    assert second is not first and list(second["x"][()]) == [4, 5]
    for i in range(3):
        other = tmp_path / f"o{i}.h5"
        h5py.File(other, "w").close()
        cache.get(other)
    assert len(cache) == 2


def test_swmr_reader_sees_appended_rows(tmp_path: Path) -> None:
    path = tmp_path / "swmr.h5"
    # One process holds both ends here, and libhdf5 insists that opens of one file in one
    # process agree on locking; the reader never locks (a beamline writer's own process
    # locks as it likes: tests/h5/test_h5_writer.py).
    writer = h5py.File(path, "w", libver="latest", locking=False)
    d = writer.create_dataset("d", shape=(0,), maxshape=(None,), dtype="f8", chunks=(16,))
    writer.swmr_mode = True
    cache = FileCache()
    handle = cache.get(path)
    assert handle.swmr_mode
    d.resize((5,))
    d[:] = np.arange(5.0)
    d.flush()
    reread = cache.get(path)["d"]
    reread.refresh()
    np.testing.assert_array_equal(reread[()], np.arange(5.0))
    writer.close()
