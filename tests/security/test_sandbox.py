"""Attacks on the trust boundary through users' HDF5 files, and on the reader sandbox.

Hostile files sit in the *released* proposal (anyone may read it). They point, by every
spelling libhdf5 understands, at an embargoed proposal's data and at the installation's
secret key: external links, virtual datasets and external raw storage with absolute,
``..``-relative and working-directory-relative names, a symlink, a ``@default`` through an
external link. Each route that reads HDF5 is called as an anonymous visitor and as an
outsider: the answers may describe the hostile file itself, never carry a secret byte.

Files that crash libhdf5 (self-referencing virtual datasets: a segfault in libhdf5 2.0)
are served and indexed: the server keeps answering, the request gets a problem, the file
is remembered as bad (one crash, not one per request), the catalogue records it and goes
on, and the database keeps every row.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from beamdesk.sandbox.pool import ReaderError, ReaderLimits, ReaderPool, bwrap_argv
from tests.nexus import nx_data, nx_entry, nx_root
from tests.security.conftest import Facility, problem
from tests.security.expectations import VARIANTS

RELEASED = VARIANTS[4].number
EMBARGOED = VARIANTS[2].number
SECRET_FILE = "raw/secret.h5"
SECRET_VALUE = 7_654_321.0
SECRET_TITLE = "EMBARGOED-TITLE-q8Zx"
KEY_MARKER = b"SECRET-KEY-MARKER-3f9a"
HOSTILE = "raw/hostile"


# --- the files -------------------------------------------------------------------------


def write_secret(path: Path) -> None:
    with h5py.File(path, "w") as f:
        nx_root(f, default="entry", nx_class=False)
        entry = nx_entry(f, fields={"title": SECRET_TITLE})
        nx_data(entry, "data", "counts", SECRET_VALUE + np.arange(4096, dtype="f8"))


def hostile_files(root: Path, secret: Path, key: Path) -> dict[str, Callable[[Path], None]]:
    """name -> writer; ``root`` is the data root, ``secret`` the embargoed file."""
    here = root / RELEASED / HOSTILE
    rel_secret = os.path.relpath(secret, here)
    rel_key = os.path.relpath(key, here)
    cwd_key = os.path.relpath(key, Path.cwd())

    def group_of(f: h5py.File) -> h5py.Group:
        return nx_data(nx_entry(f), "data", "counts")  # the hostile "counts" comes next

    def external_link(target: str) -> Callable[[Path], None]:
        def write(path: Path) -> None:
            with h5py.File(path, "w") as f:
                g = group_of(f)
                g["counts"] = h5py.ExternalLink(target, "/entry/data/counts")
                f["whole"] = h5py.ExternalLink(target, "/")

        return write

    def virtual(target: str) -> Callable[[Path], None]:
        def write(path: Path) -> None:
            layout = h5py.VirtualLayout(shape=(4096,), dtype="f8")
            layout[:] = h5py.VirtualSource(target, "/entry/data/counts", shape=(4096,))
            with h5py.File(path, "w", libver="latest") as f:
                group_of(f).create_virtual_dataset("counts", layout, fillvalue=-1)

        return write

    def external_storage(target: str) -> Callable[[Path], None]:
        def write(path: Path) -> None:
            with h5py.File(path, "w") as f:
                group_of(f).create_dataset(
                    "counts", shape=(22,), dtype="u1", external=[(target, 0, 22)]
                )

        return write

    def default_through_link(path: Path) -> None:
        with h5py.File(path, "w") as f:
            f.attrs["default"] = "outside"
            f["outside"] = h5py.ExternalLink(str(secret), "/entry")
            e = f.create_group("entry")
            e.attrs["NX_class"] = "NXentry"
            e["title"] = h5py.ExternalLink(str(secret), "/entry/title")
            layout = h5py.VirtualLayout(shape=(1,), dtype="f8")
            layout[:] = h5py.VirtualSource(str(secret), "/entry/data/counts", shape=(1,))
            s = e.create_group("sample")
            s.attrs["NX_class"] = "NXsample"
            s.create_virtual_dataset("temperature", layout, fillvalue=-1)

    def symlink(path: Path) -> None:
        path.symlink_to(secret)

    return {
        "ext_absolute": external_link(str(secret)),
        "ext_relative": external_link(rel_secret),
        "vds_absolute": virtual(str(secret)),
        "vds_relative": virtual(rel_secret),
        "vds_cwd": virtual(os.path.relpath(secret, Path.cwd())),
        "efile_absolute": external_storage(str(key)),
        "efile_relative": external_storage(rel_key),
        "efile_cwd": external_storage(cwd_key),
        "default_through_link": default_through_link,
        "symlink": symlink,
    }


def self_virtual(path: Path) -> None:
    """A virtual dataset whose source is itself: libhdf5 recurses until it segfaults."""
    layout = h5py.VirtualLayout(shape=(10,), dtype="f8")
    layout[:] = h5py.VirtualSource(".", "/entry/data/counts", shape=(10,))
    with h5py.File(path, "w", libver="latest") as f:
        g = f.create_group("entry/data")
        g.attrs["NX_class"] = "NXdata"
        g.attrs["signal"] = "counts"
        g.create_virtual_dataset("counts", layout, fillvalue=0)


def mutual_virtual(path: Path) -> None:
    with h5py.File(path, "w", libver="latest") as f:
        g = f.create_group("entry/data")
        for a, b in (("counts", "other"), ("other", "counts")):
            layout = h5py.VirtualLayout(shape=(10,), dtype="f8")
            layout[:] = h5py.VirtualSource(".", f"/entry/data/{b}", shape=(10,))
            g.create_virtual_dataset(a, layout, fillvalue=0)


@pytest.fixture(scope="module")
def hostile(facility: Facility) -> Iterator[list[str]]:
    root = facility.settings.data_root
    secret = root / EMBARGOED / SECRET_FILE
    write_secret(secret)
    key = facility.settings.var_dir / "secret_key"
    key.write_bytes(KEY_MARKER)
    folder = root / RELEASED / HOSTILE
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for name, write in hostile_files(root, secret, key).items():
        write(folder / f"{name}.h5")
        names.append(f"{HOSTILE}/{name}.h5")
    yield names


# --- what must never come back ---------------------------------------------------------

SECRET_BYTES = [
    np.float64(SECRET_VALUE).tobytes(),
    KEY_MARKER,
    SECRET_TITLE.encode(),
    b"7654321",
    b"7.654321e",
    b"7.65432",
]


def assert_nothing_leaks(where: object, status: int, body: bytes) -> None:
    assert status < 500, (where, body[:300])
    for secret in SECRET_BYTES:
        assert secret not in body, (where, secret)
    assert b"Traceback" not in body, where


def requests_for(file: str) -> list[tuple[str, str, dict[str, object]]]:
    """(method, url, params or JSON) of every route that reads HDF5 content."""
    h5 = f"/api/proposals/{RELEASED}/h5"
    xrf = f"/api/proposals/{RELEASED}/xrf"
    out: list[tuple[str, str, dict[str, object]]] = []
    for path in (
        "/entry/data/counts",
        "/whole",
        "/outside",
        "/entry/title",
        "/entry/sample/temperature",
        "/whole/entry/data/counts",
    ):
        out += [
            ("GET", f"{h5}/meta", {"file": file, "path": path}),
            ("GET", f"{h5}/attr", {"file": file, "path": path}),
            ("GET", f"{h5}/stats", {"file": file, "path": path}),
        ]
        for fmt in ("json", "bin", "npy", "csv", "tiff", "png"):
            out.append(("GET", f"{h5}/data", {"file": file, "path": path, "format": fmt}))
    out += [
        ("GET", f"{h5}/paths", {"file": file, "path": "/"}),
        ("GET", f"{h5}/line", {"file": file, "path": "/entry/data"}),
        ("GET", f"{h5}/subset", {"file": file, "paths": "/entry"}),
        (
            "GET",
            f"{h5}/data",
            {"file": file, "path": "/entry/data/counts", "selection": "0:64", "downsample": "8x8"},
        ),
        ("POST", f"{xrf}/spectrum", {"file": file, "path": "/entry/data/counts"}),
        (
            "POST",
            f"{xrf}/roi",
            {
                "file": file,
                "path": "/entry/data/counts",
                "windows": [{"name": "a", "emin": 0, "emax": 99}],
                "calibration": {"zero": 0, "gain": 1},
            },
        ),
        ("GET", f"{xrf}/spectra", {"file": file}),
        ("GET", f"{xrf}/result", {"file": file}),
        (
            "POST",
            f"{xrf}/rgb",
            {"file": file, "red": {"group": "counts"}, "green": {"group": "counts"}},
        ),
        (
            "POST",
            f"/api/proposals/{RELEASED}/jobs",
            {"input": f"{file}::/entry/data/counts", "config": {}},
        ),
    ]
    return out


@pytest.mark.parametrize("persona", ["anonymous", "outsider"])
def test_hostile_files_leak_nothing_through_any_route(
    facility: Facility, hostile: list[str], persona: str
) -> None:
    headers = facility.bearer(persona) if persona != "anonymous" else {}
    facility.client.cookies.clear()
    served = 0
    for file in hostile:
        for method, url, params in requests_for(file):
            if method == "GET":
                r = facility.client.get(url, params=params, headers=headers)
            else:
                r = facility.client.post(url, json=params, headers=headers)
            assert_nothing_leaks((persona, file, url, params), r.status_code, r.content)
            served += r.status_code == 200
    assert served > 0  # the hostile files' own metadata is still shown
    # the embargoed file itself stays out of reach for both
    r = facility.client.get(
        f"/api/proposals/{EMBARGOED}/h5/data",
        headers=headers,
        params={"file": SECRET_FILE, "path": "/entry/data/counts"},
    )
    assert r.status_code == 404


def test_notebook_generation_reads_no_link_out(facility: Facility, hostile: list[str]) -> None:
    csrf = facility.use("outsider")
    for file in hostile:
        for path in ("", "/whole", "/entry/data/counts"):
            r = facility.client.post(
                f"/proposals/{RELEASED}/notebook",
                data={"file": file, "path": path, "csrf_token": csrf},
            )
            # 404/422: refused before the hub is asked; 503 would mean it read the target
            assert r.status_code in (404, 422), (file, path, r.status_code, r.text[:200])
            assert_nothing_leaks((file, path), r.status_code, r.content)
    facility.client.cookies.clear()


def test_catalogue_records_nothing_from_outside(facility: Facility, hostile: list[str]) -> None:
    from beamdesk.db import make_sessionmaker, session_scope
    from beamdesk.portal.catalogue import index_data_root
    from beamdesk.portal.models import Dataset

    with session_scope(make_sessionmaker(facility.app.state.engine)) as db:
        index_data_root(db, facility.settings.data_root, only=RELEASED)
        rows = {d.path: d for d in db.query(Dataset)}
        for file in hostile:
            row = rows.get(file)
            if row is None:  # the symlink leaves the proposal: not listed at all
                assert file.endswith("symlink.h5")
                continue
            text = f"{row.title} {row.parameters} {row.nx_classes} {row.error}"
            assert SECRET_TITLE not in text and "7654321" not in text, (file, text)
    facility.restore()


# --- crashing files ------------------------------------------------------------------------


def _health_throughout(facility: Facility, action: Callable[[], None]) -> list[float]:
    """Run ``action`` while another thread asks /api/health; the answer times."""
    times: list[float] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            assert facility.client.get("/api/health").status_code == 200
            times.append(time.perf_counter() - t0)
            time.sleep(0.05)

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        action()
    finally:
        done.set()
        thread.join()
    return times


def _unsafe_events(facility: Facility) -> int:
    with facility.app.state.sessionmaker() as db:
        from beamdesk.portal.models import AuditEvent

        return db.query(AuditEvent).filter_by(action="unsafe_file").count()


@pytest.mark.parametrize("writer", [self_virtual, mutual_virtual])
def test_a_crashing_file_costs_a_worker_not_the_server(
    facility: Facility, writer: Callable[[Path], None]
) -> None:
    folder = facility.settings.data_root / RELEASED / "raw" / "crash"
    folder.mkdir(parents=True, exist_ok=True)
    file = f"raw/crash/{writer.__name__}.h5"
    writer(facility.settings.data_root / RELEASED / file)
    url = f"/api/proposals/{RELEASED}/h5/data"
    params = {"file": file, "path": "/entry/data/counts"}
    before = _unsafe_events(facility)
    answers = []

    def attack() -> None:
        for _ in range(3):
            answers.append(facility.client.get(url, params=params))

    times = _health_throughout(facility, attack)
    assert times and max(times) < 1.0, times
    for r in answers:
        assert r.status_code == 422
        assert "could not be read safely" in problem(r)["detail"]
    # one crash, remembered: the later requests did not start another worker on it
    assert _unsafe_events(facility) == before + 1
    # the proposal's good files still read
    r = facility.client.get(url, params={"file": "raw/scan.h5", "path": "/entry/data/counts"})
    assert r.status_code == 200 and r.json() == np.arange(12).reshape(3, 4).tolist()
    # a changed file is tried again
    (facility.settings.data_root / RELEASED / file).unlink()
    write_good = facility.settings.data_root / RELEASED / file
    with h5py.File(write_good, "w") as f:
        f["entry/data/counts"] = np.arange(10.0)
    r = facility.client.get(url, params=params)
    assert r.status_code == 200 and r.json() == list(np.arange(10.0))


CORPUS = Path(__file__).parent / "corpus"


def test_index_goes_on_past_hostile_files_and_keeps_the_database(facility: Facility) -> None:
    """A file on which libhdf5 loops forever (found by fuzzing the catalogue's reader:
    corpus/hangs_libhdf5.h5) and one that segfaults it, then a good file: the index
    records both bad ones, indexes the good one, and the database keeps every row."""
    from beamdesk.db import make_sessionmaker, session_scope
    from beamdesk.portal.catalogue import index_data_root
    from beamdesk.portal.models import AuditEvent, Dataset

    folder = facility.settings.data_root / RELEASED / "raw" / "crash-index"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a_hang.h5").write_bytes((CORPUS / "hangs_libhdf5.h5").read_bytes())
    self_virtual(folder / "b_crash.h5")
    with h5py.File(folder / "b_crash.h5", "a", libver="latest") as f:
        f.attrs["default"] = "entry"  # the catalogue reads the file's default plot
        f["entry"].attrs["NX_class"] = "NXentry"
    with h5py.File(folder / "c_good.h5", "w") as f:
        nx_root(f, default="entry", nx_class=False)
        nx_entry(f, fields={"title": "after the bad files"})
    with facility.app.state.sessionmaker() as db:
        events = db.query(AuditEvent).count()
        datasets = db.query(Dataset).count()
    pool = ReaderPool(ReaderLimits(reply_timeout=3))
    try:
        with session_scope(make_sessionmaker(facility.app.state.engine)) as db:
            t0 = time.perf_counter()
            report = index_data_root(db, facility.settings.data_root, only=RELEASED, readers=pool)
            seconds = time.perf_counter() - t0
            rows = {d.path: d for d in db.query(Dataset)}
    finally:
        pool.close()
    assert report.broken >= 1 and seconds < 60
    assert "could not be read safely" in rows["raw/crash-index/a_hang.h5"].error
    assert rows["raw/crash-index/c_good.h5"].title == "after the bad files"
    assert len(rows) >= datasets + 3
    with sqlite3.connect(facility.db_path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("SELECT count(*) FROM audit_events").fetchone()[0] == events
    facility.restore()


# --- the pool's own limits -----------------------------------------------------------------


@pytest.fixture
def proposal(tmp_path: Path) -> Path:
    folder = tmp_path / "data" / "P1"
    (folder / "raw").mkdir(parents=True)
    with h5py.File(folder / "raw" / "big.h5", "w") as f:
        f.create_dataset(
            "d",
            data=np.random.default_rng(1).random((2048, 2048)),
            chunks=(64, 64),
            compression="gzip",
        )
        # 512 MiB of zeros in a few kilobytes: decompression is what costs memory
        f.create_dataset(
            "zeros",
            shape=(8192, 8192),
            dtype="f8",
            chunks=(1024, 1024),
            compression="gzip",
            fillvalue=0.0,
        )
        f["zeros"][:1024, :1024] = 0.0
    return folder


def test_a_hanging_request_is_killed_and_the_worker_replaced(proposal: Path) -> None:
    """Statistics over 512 MiB (fill, then a copy of the finite values, then several passes)
    take seconds on any machine; the 32 MiB dataset once finished inside 0.2 s on a fast one."""
    incidents: list[tuple[str, str]] = []
    pool = ReaderPool(
        ReaderLimits(reply_timeout=0.2),
        on_incident=lambda folder, file, what: incidents.append((file, what)),
    )
    try:
        with pytest.raises(ReaderError) as err:
            pool.call(
                proposal,
                "h5.stats",
                "raw/big.h5",
                path="/zeros",
                selection=None,
                max_read_bytes=2**30,
            )
        assert err.value.status == 422 and "took longer" in err.value.detail
        assert incidents == [("raw/big.h5", "took longer than 0.2 s")]
        assert pool.worker_pids() == []  # killed, not returned to the pool
        with pytest.raises(ReaderError):  # remembered: not tried again until it changes
            pool.call(proposal, "h5.meta", "raw/big.h5", path="/d")
        assert len(incidents) == 1
        with h5py.File(proposal / "raw" / "small.h5", "w") as f:
            f["d"] = np.arange(3)
        meta = pool.call(proposal, "h5.meta", "raw/small.h5", path="/d")  # a new worker
        assert b'"shape":[3]' in meta["body"]
    finally:
        pool.close()


def test_a_request_past_the_memory_limit_is_refused(proposal: Path) -> None:
    """512 MiB of zeros asked for as JSON from a worker allowed 700 MiB: libhdf5 fails
    the allocation (it segfaults on it), the worker dies alone, the caller gets a 422."""
    pool = ReaderPool(ReaderLimits(memory_bytes=700 * 2**20))
    try:
        with pytest.raises(ReaderError) as err:
            pool.call(
                proposal,
                "h5.data",
                "raw/big.h5",
                path="/zeros",
                query={"format": "json"},
                max_read_bytes=2**31,
            )
        assert err.value.status in (413, 422)
        with h5py.File(proposal / "raw" / "small.h5", "w") as f:
            f["d"] = np.arange(3)
        assert b'"shape":[3]' in pool.call(proposal, "h5.meta", "raw/small.h5", path="/d")["body"]
    finally:
        pool.close()


def test_a_worker_sees_only_its_proposal(tmp_path: Path, proposal: Path) -> None:
    """Run a probe in exactly the sandbox the pool gives its workers."""
    other = tmp_path / "data" / "P2" / "raw"
    other.mkdir(parents=True)
    (other / "x.h5").write_bytes(b"other proposal")
    database = tmp_path / "beamdesk.db"
    database.write_bytes(b"database")
    key = tmp_path / "secret_key"
    key.write_bytes(KEY_MARKER)
    probe = (
        "import os, sys\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        open(p, 'rb').read(1); print('READ', p)\n"
        "    except OSError as e:\n"
        "        print('DENIED', p, e.errno)\n"
        "try:\n"
        "    open(sys.argv[1], 'ab'); print('WROTE')\n"
        "except OSError: print('NOWRITE')\n"
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 22), timeout=1); print('NET')\n"
        "except OSError: print('NONET')\n"
        "print('PIDS', len([d for d in os.listdir('/proc') if d.isdigit()]))\n"
        "print('UID', os.getuid())\n"
    )
    own = proposal / "raw" / "big.h5"
    argv = [
        *bwrap_argv(proposal),
        sys.executable,
        "-I",
        "-c",
        probe,
        str(own),
        str(other / "x.h5"),
        str(database),
        str(key),
        "/etc/shadow",
        f"/proc/{os.getpid()}/environ",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    assert f"READ {own}" in out
    for denied in (other / "x.h5", database, key, "/etc/shadow"):
        assert f"DENIED {denied}" in out, out
    assert "READ /proc" not in out and "NOWRITE" in out and "NONET" in out, out
    assert "PIDS 2" in out or "PIDS 1" in out, out  # only the sandbox's own processes
    assert "UID 65534" in out
