"""A corpus of broken and hostile HDF5 files, each asked for through the HDF5 API.

Every answer must be a success or a clear 4xx problem+json (never a 500, never a
traceback, never bytes from outside the proposal), and after each file the server must
still serve a good file correctly.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.security.conftest import Facility, problem
from tests.security.expectations import VARIANTS
from tests.security.world import H5_FILE

NUMBER = VARIANTS[2].number  # scheduled, under embargo: read as the user office
OTHER = VARIANTS[0].number
PASSWD_FIRST_LINE = Path("/etc/passwd").read_text().splitlines()[0]


def _valid(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "entry/data",
            data=np.arange(200_000, dtype="f8").reshape(400, 500),
            chunks=(40, 50),
            compression="gzip",
        )
        f["entry"].attrs["NX_class"] = "NXentry"


def truncated(path: Path) -> None:
    _valid(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def truncated_after_superblock(path: Path) -> None:
    _valid(path)
    path.write_bytes(path.read_bytes()[:200])


def wrong_signature(path: Path) -> None:
    _valid(path)
    data = bytearray(path.read_bytes())
    data[1:4] = b"XDF"
    path.write_bytes(bytes(data))


def wrong_superblock(path: Path) -> None:
    """Signature intact, superblock body (version, sizes, root address) scrambled."""
    _valid(path)
    data = bytearray(path.read_bytes())
    data[8:60] = np.random.default_rng(3).integers(0, 256, 52, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def garbage_chunks(path: Path) -> None:
    """Valid metadata; the gzip chunks overwritten with noise."""
    _valid(path)
    with h5py.File(path, "r") as f:
        ds = f["entry/data"]
        offsets = [ds.id.get_chunk_info(i).byte_offset for i in range(ds.id.get_num_chunks())]
        sizes = [ds.id.get_chunk_info(i).size for i in range(ds.id.get_num_chunks())]
    data = bytearray(path.read_bytes())
    noise = np.random.default_rng(5).integers(0, 256, max(sizes), dtype=np.uint8).tobytes()
    for off, size in zip(offsets, sizes, strict=True):
        data[off : off + size] = noise[:size]
    path.write_bytes(bytes(data))


def not_hdf5(path: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)


def empty(path: Path) -> None:
    path.write_bytes(b"")


def huge_dimensions(path: Path) -> None:
    """2**40 elements declared, chunked, nothing allocated: 8 TB if anyone read it all."""
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/data", shape=(2**40,), dtype="f8", chunks=(4096,))
        f.create_dataset(
            "entry/image",
            shape=(2**20, 2**20),
            dtype="u2",
            chunks=(256, 256),
            maxshape=(None, None),
        )


def recursive_links(path: Path) -> None:
    with h5py.File(path, "w") as f:
        g = f.create_group("entry")
        g["data"] = h5py.SoftLink("/entry/other")
        g["other"] = h5py.SoftLink("/entry/data")
        g["self"] = h5py.SoftLink("/entry/self")
        g["loop"] = g  # a hard-link cycle: /entry/loop is /entry
        g["deep"] = h5py.SoftLink("/entry/loop/loop/loop/loop/deep")


def external_to_etc(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_group("entry")
        f["entry/data"] = h5py.ExternalLink("/etc/passwd", "/")
        f["entry/other_proposal"] = h5py.ExternalLink(
            f"../../{OTHER}/{H5_FILE}", "/entry/data/counts"
        )
        f.create_dataset(
            "entry/raw_passwd", shape=(64,), dtype="u1", external=[("/etc/passwd", 0, 64)]
        )


def many_attributes(path: Path) -> None:
    with h5py.File(path, "w", libver="latest") as f:
        g = f.create_group("entry")
        for i in range(10_000):
            g.attrs[f"a{i:05d}"] = i
        g.create_dataset("data", data=np.arange(5))
        g["data"].attrs.create("big", np.zeros(60_000, dtype="f8"))


def virtual_outside(path: Path) -> None:
    """A virtual dataset whose source is another proposal's data."""
    source = path.parents[3] / OTHER / H5_FILE  # data root / other proposal
    layout = h5py.VirtualLayout(shape=(3, 4), dtype="i4")
    layout[:] = h5py.VirtualSource(str(source), "/entry/data/counts", shape=(3, 4))
    with h5py.File(path, "w", libver="latest") as f:
        f.create_group("entry")
        f["entry"].create_virtual_dataset("data", layout, fillvalue=-1)


CORPUS: dict[str, Callable[[Path], None]] = {
    "truncated": truncated,
    "truncated_after_superblock": truncated_after_superblock,
    "wrong_signature": wrong_signature,
    "wrong_superblock": wrong_superblock,
    "garbage_chunks": garbage_chunks,
    "not_hdf5": not_hdf5,
    "empty": empty,
    "huge_dimensions": huge_dimensions,
    "recursive_links": recursive_links,
    "external_to_etc": external_to_etc,
    "many_attributes": many_attributes,
    "virtual_outside": virtual_outside,
}
# (endpoint, HDF5 path, selection) tried on every file of the corpus.
REQUESTS = [
    ("meta", "/", None),
    ("meta", "/entry", None),
    ("meta", "/entry/data", None),
    ("attr", "/entry", None),
    ("paths", "/", None),
    ("data", "/entry/data", None),
    ("data", "/entry/data", "0:3"),
    ("stats", "/entry/data", None),
    ("meta", "/entry/deep", None),
    ("data", "/entry/self", None),
    ("data", "/entry/other_proposal", None),
    ("data", "/entry/raw_passwd", None),
    ("data", "/entry/image", "0,0:4"),
    ("data", "/entry/image", None),
]


def still_serving(fac: Facility) -> None:
    r = fac.client.get(
        f"/api/proposals/{NUMBER}/h5/data",
        headers=fac.bearer("office"),
        params={"file": H5_FILE, "path": "/entry/data/counts"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == np.arange(12).reshape(3, 4).tolist()


@pytest.mark.parametrize("name", list(CORPUS))
def test_broken_file_gives_a_clear_4xx(facility: Facility, name: str) -> None:
    folder = facility.settings.data_root / NUMBER / "raw" / "broken"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.h5"
    CORPUS[name](path)
    file = f"raw/broken/{name}.h5"
    try:
        refused = 0
        for endpoint, h5path, selection in REQUESTS:
            params = {"file": file, "path": h5path}
            if selection:
                params["selection"] = selection
            r = facility.client.get(
                f"/api/proposals/{NUMBER}/h5/{endpoint}",
                headers=facility.bearer("office"),
                params=params,
            )
            where = (name, endpoint, h5path, selection, r.status_code)
            assert r.status_code < 500, (where, r.text[:300])
            assert "Traceback" not in r.text and PASSWD_FIRST_LINE not in r.text, where
            if r.status_code >= 400:
                refused += 1
                body = problem(r)
                assert body["status"] == r.status_code and len(body["detail"]) > 10, where
            elif endpoint == "data" and h5path == "/entry/data" and selection is None:
                # whole dataset served: only where it is small and really inside
                assert name == "many_attributes", where
        assert refused > 0, f"{name}: nothing refused"
        still_serving(facility)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_huge_dimensions_read_a_slice_and_refuse_the_whole(facility: Facility) -> None:
    folder = facility.settings.data_root / NUMBER / "raw" / "huge"
    folder.mkdir(parents=True, exist_ok=True)
    huge_dimensions(folder / "huge.h5")
    try:
        url = f"/api/proposals/{NUMBER}/h5/data"
        headers = facility.bearer("office")
        r = facility.client.get(
            url,
            headers=headers,
            params={"file": "raw/huge/huge.h5", "path": "/entry/data", "selection": "5:9"},
        )
        assert r.status_code == 200 and r.json() == [0.0] * 4  # the fill value
        r = facility.client.get(
            url, headers=headers, params={"file": "raw/huge/huge.h5", "path": "/entry/data"}
        )
        assert r.status_code == 413, r.text
        assert "selection" in problem(r)["detail"].lower()
        meta = facility.client.get(
            f"/api/proposals/{NUMBER}/h5/meta",
            headers=headers,
            params={"file": "raw/huge/huge.h5", "path": "/entry/data"},
        )
        assert meta.status_code == 200 and meta.json()["shape"] == [2**40]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_virtual_source_elsewhere_is_not_read(facility: Facility) -> None:
    """The other proposal's values (0..11) must not come out through a virtual dataset."""
    folder = facility.settings.data_root / NUMBER / "raw" / "vds"
    folder.mkdir(parents=True, exist_ok=True)
    virtual_outside(folder / "v.h5")
    try:
        for endpoint in ("data", "stats"):
            r = facility.client.get(
                f"/api/proposals/{NUMBER}/h5/{endpoint}",
                headers=facility.bearer("office"),
                params={"file": "raw/vds/v.h5", "path": "/entry/data"},
            )
            assert r.status_code == 404, r.text
            assert "outside" in problem(r)["detail"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
