"""A beamline writer in another process is never blocked by the viewer, and is seen.

The writer is a separate Python process using h5py with HDF5's default file locking (no
``locking=False``, no ``HDF5_USE_FILE_LOCKING`` in its environment), driven step by step
over a pipe while the API serves the same file through the sandboxed reader workers in
between. Expected values come from what the writer wrote and from h5py's own read of the
file, never from the API.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.h5.builders import H5World

FRAME = (4, 5)

WRITER = textwrap.dedent(
    """
    import json, sys
    import h5py, numpy as np

    f = None
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            op = cmd["op"]
            if op == "open":
                f = h5py.File(cmd["path"], cmd["mode"], **cmd.get("kw", {}))
                out = {"locking": f.id.get_access_plist().get_file_locking()[0]}
            elif op == "create":
                d = f.create_dataset(
                    "entry/frames", shape=(0, *cmd["frame"]), maxshape=(None, *cmd["frame"]),
                    dtype="f8", chunks=(1, *cmd["frame"]))
                out = {}
            elif op == "swmr":
                f.swmr_mode = True
                out = {}
            elif op == "append":
                d = f["entry/frames"]
                n = d.shape[0]
                d.resize(n + len(cmd["values"]), axis=0)
                for i, v in enumerate(cmd["values"]):
                    d[n + i] = np.full(d.shape[1:], v)
                out = {"shape": list(d.shape)}
            elif op == "flush":
                f["entry/frames"].flush() if f.swmr_mode else f.flush()
                out = {}
            elif op == "close":
                f.close()
                out = {}
            print(json.dumps({"ok": out}), flush=True)
        except Exception as exc:
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
    """
)


class Writer:
    """A writer process; each step returns what it answered or fails the test."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "HDF5_USE_FILE_LOCKING"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", WRITER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )

    def __call__(self, op: str, **args: object) -> dict[str, object]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        assert "error" not in answer, f"the writer's {op} failed: {answer['error']}"
        return answer["ok"]

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def writer() -> Iterator[Writer]:
    w = Writer()
    yield w
    if w.process.poll() is None:
        w.stop()


def h5py_frames(path: Path) -> np.ndarray:
    """h5py's own read (SWMR-read mode while a SWMR writer holds the file)."""
    try:
        f = h5py.File(path, "r", locking=False)
    except OSError:
        f = h5py.File(path, "r", swmr=True, locking=False)
    with f:
        return np.asarray(f["entry/frames"][()])


def _locked(path: str) -> bool:
    """Whether another process holds a lock on ``path`` (HDF5 locks with flock)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _served(h5world: H5World, file: str) -> tuple[list[int], dict[int, list[list[float]]]]:
    meta = h5world.get("meta", file=file, path="/entry/frames")
    assert meta.status_code == 200, meta.text
    shape = meta.json()["shape"]
    frames = {}
    for i in range(shape[0]):
        r = h5world.get("data", file=file, path="/entry/frames", selection=str(i))
        assert r.status_code == 200, r.text
        frames[i] = r.json()
    return shape, frames


def _assert_served_matches_file(h5world: H5World, file: str, values: list[float]) -> None:
    on_disk = h5py_frames(h5world.root / file)
    assert [float(v) for v in on_disk[:, 0, 0]] == values  # what the writer wrote
    shape, frames = _served(h5world, file)
    assert shape == list(on_disk.shape)
    for i, frame in frames.items():
        np.testing.assert_array_equal(np.asarray(frame), on_disk[i])
    # /data of the whole stack too (a read past the old end must not give zeros)
    whole = h5world.get("data", file=file, path="/entry/frames", format="bin", dtype="safe")
    assert whole.status_code == 200
    np.testing.assert_array_equal(
        np.frombuffer(whole.content, "<f8").reshape(on_disk.shape), on_disk
    )


@pytest.mark.parametrize("mode", ["a", "r+"])
def test_writer_appends_and_recreates_while_served(
    h5world: H5World, writer: Writer, mode: str
) -> None:
    file = f"raw/live_{mode.replace('+', 'plus')}.h5"
    path = str(h5world.root / file)
    answer = writer("open", path=path, mode="w")
    assert answer["locking"] == 1  # HDF5's default: the writer locks the file
    writer("create", frame=FRAME)
    writer("append", values=[0.0, 1.0])
    writer("close")
    _assert_served_matches_file(h5world, file, [0.0, 1.0])

    # (a) the viewer holds the file open in its workers; the writer appends anyway
    writer("open", path=path, mode=mode)
    assert _locked(path)  # the writer really holds HDF5's lock while the viewer serves
    meta = h5world.get("meta", file=file, path="/entry/frames")
    assert meta.status_code == 200 and meta.json()["shape"][0] == 2
    writer("append", values=[2.0, 3.0])
    writer("flush")
    _assert_served_matches_file(h5world, file, [0.0, 1.0, 2.0, 3.0])
    writer("append", values=[4.0])
    writer("close")
    _assert_served_matches_file(h5world, file, [0.0, 1.0, 2.0, 3.0, 4.0])

    # (b) the writer re-creates the file after the viewer read it
    writer("open", path=path, mode="w")
    writer("create", frame=FRAME)
    writer("append", values=[7.0, 8.0, 9.0])
    writer("close")
    _assert_served_matches_file(h5world, file, [7.0, 8.0, 9.0])
    writer("open", path=path, mode="w")
    writer("create", frame=FRAME)
    writer("append", values=[5.0])
    writer("close")
    _assert_served_matches_file(h5world, file, [5.0])


def test_swmr_writer_growth_is_served(h5world: H5World, writer: Writer) -> None:
    file = "raw/live_swmr.h5"
    path = str(h5world.root / file)
    writer("open", path=path, mode="w", kw={"libver": "latest"})
    writer("create", frame=FRAME)
    writer("swmr")
    writer("append", values=[0.0])
    writer("flush")
    _assert_served_matches_file(h5world, file, [0.0])
    for step in range(1, 4):
        writer("append", values=[float(step)])
        writer("flush")
        _assert_served_matches_file(h5world, file, [float(v) for v in range(step + 1)])
    writer("close")
    _assert_served_matches_file(h5world, file, [0.0, 1.0, 2.0, 3.0])


def test_beamdesks_readers_outside_the_workers_do_not_lock(tmp_path: Path, writer: Writer) -> None:
    """The XRF command line reads maps in its own process (``beamdesk xrf map`` holds one
    open for the whole fit): the writer must still open it for appending meanwhile."""
    from beamdesk.xrf.mapfit import open_dataset

    path = tmp_path / "map.h5"
    writer("open", path=str(path), mode="w")
    writer("create", frame=FRAME)
    writer("append", values=[1.0, 2.0])
    writer("close")
    with open_dataset(str(path), "entry/frames") as ds:
        assert not _locked(str(path))  # this process holds no lock on the file
        writer("open", path=str(path), mode="a")
        assert _locked(str(path))
        writer("append", values=[3.0])
        writer("close")
        assert ds.shape[0] == 2  # what was open before the append
    np.testing.assert_array_equal(h5py_frames(path)[:, 0, 0], [1.0, 2.0, 3.0])


def test_swmr_meta_is_fresh_while_an_older_handle_is_alive(tmp_path: Path, writer: Writer) -> None:
    """A handle of the file still held (a streaming /data response, a dropped cache entry)
    makes the next open share HDF5's cached object headers: /meta must still give the
    length the SWMR writer has flushed, for the dataset and in its group's children."""
    from beamdesk.h5 import api
    from beamdesk.h5.opener import ProposalFiles

    (tmp_path / "raw").mkdir()
    path = tmp_path / "raw" / "swmr.h5"
    writer("open", path=str(path), mode="w", kw={"libver": "latest"})
    writer("create", frame=FRAME)
    writer("swmr")
    writer("append", values=[0.0])
    writer("flush")
    files = ProposalFiles(tmp_path)
    held = []
    for step in range(1, 4):
        held.append(files.dataset("raw/swmr.h5", "/entry/frames"))  # kept alive meanwhile
        written = writer("append", values=[float(step)])["shape"]
        writer("flush")
        assert written == [step + 1, *FRAME]
        dataset = json.loads(api.meta(files, "raw/swmr.h5", "/entry/frames").body)
        assert dataset["shape"] == written
        group = json.loads(api.meta(files, "raw/swmr.h5", "/entry").body)
        assert [c["shape"] for c in group["children"]] == [written]
    writer("close")
