"""Every dataset reads through the API exactly as h5py reads it."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.h5.builders import SHARED_DATA, H5World


def _datasets(f: h5py.File) -> list[str]:
    names: list[str] = []

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            names.append("/" + name)

    f.visititems(visit)  # hard links only: what h5py itself reaches without external files
    return names


def _check_dataset(world: H5World, file: str, f: h5py.File, name: str) -> None:
    dset = f[name]
    expected = dset[()]
    if isinstance(expected, h5py.Empty):
        r = world.get("data", file=file, path=name, format="bin")
        assert r.status_code == 200 and r.content == b""
        return
    if dset.dtype.hasobject:  # variable-length strings and references: JSON only
        r = world.get("data", file=file, path=name)
        assert r.status_code == 200, r.text
        got = r.json()
        flat = np.asarray(expected, dtype=object).ravel().tolist()
        want = [
            v.decode("utf-8", "replace")
            if isinstance(v, bytes)
            else (str(v) if isinstance(v, h5py.h5r.Reference) else v)
            for v in flat
        ]
        assert list(np.asarray(got, dtype=object).ravel()) == want
        return
    r = world.get("data", file=file, path=name, format="npy")
    assert r.status_code == 200, (name, r.text)
    got = np.load(io.BytesIO(r.content), allow_pickle=False)
    assert got.dtype == np.asarray(expected).dtype, name
    np.testing.assert_array_equal(got, expected)


def test_every_type_matches_h5py(h5world: H5World) -> None:
    path = h5world.root / "raw" / "types.h5"
    with h5py.File(path, "r") as f:
        names = _datasets(f)
        assert len(names) > 25
        for name in names:
            _check_dataset(h5world, "raw/types.h5", f, name)


@pytest.mark.parametrize("name", ["f2", "f16", "int32_be", "c8"])
def test_safe_dtype_gives_javascript_types(h5world: H5World, name: str) -> None:
    r = h5world.get("data", file="raw/types.h5", path=f"/{name}", format="bin", dtype="safe")
    assert r.status_code == 200
    with h5py.File(h5world.root / "raw" / "types.h5") as f:
        expected = f[name][()]
    want = {
        "f": {2: "<f4", 4: "<f4", 8: "<f8"}.get(expected.dtype.itemsize, "<f8"),
        "i": "<i4",
        "c": "<c8",
    }[expected.dtype.kind]
    got = np.frombuffer(r.content, dtype=want).reshape(expected.shape)
    np.testing.assert_allclose(got, expected.astype(want), rtol=0)


def test_json_values_and_scalars(h5world: H5World) -> None:
    get = h5world.get
    assert get("data", file="raw/types.h5", path="/scalar_f").json() == 3.5
    assert get("data", file="raw/types.h5", path="/scalar_str").json() == "Elettra"
    assert get("data", file="raw/types.h5", path="/vlen_utf8").json() == ["café", "☕", "x"]
    assert get("data", file="raw/types.h5", path="/compound").json() == [[1, 2.5], [3, 4.5]]
    assert get("data", file="raw/types.h5", path="/c8", selection="0").json() == pytest.approx(
        [float(v) for v in _c8_first(h5world.root)]
    )
    assert get("data", file="raw/types.h5", path="/empty").json() is None
    f4 = get("data", file="raw/types.h5", path="/f4", selection="1:3,::2", flatten="true")
    with h5py.File(h5world.root / "raw" / "types.h5") as f:
        np.testing.assert_allclose(f4.json(), f["f4"][1:3, ::2].ravel())


def _c8_first(root: Path) -> list[float]:
    with h5py.File(root / "raw" / "types.h5") as f:
        v = f["c8"][0]
    return [v.real, v.imag]


def test_meta_matches_h5grove_shapes(h5world: H5World) -> None:
    root = h5world.get("meta", file="raw/types.h5").json()
    assert root["kind"] == "group" and root["name"] == ""
    kids = {c["name"]: c for c in root["children"]}
    assert kids["f4"]["kind"] == "dataset" and kids["f4"]["shape"] == [5, 6]
    assert kids["f4"]["type"] == {"class": 1, "dtype": "<f4", "order": 0, "size": 4}
    assert kids["compressed"]["kind"] == "group"
    assert kids["soft"]["kind"] == "dataset"  # valid soft link: resolved
    assert kids["soft_broken"] == {
        "kind": "soft_link",
        "name": "soft_broken",
        "target_path": "/nowhere",
    }
    assert kids["ext_inside"]["kind"] == "dataset"
    for name in ("ext_missing", "ext_other_proposal", "ext_absolute", "ext_symlink_out"):
        assert kids[name]["kind"] == "external_link", name
    assert kids["dtype_committed"]["kind"] == "datatype"
    lz4 = h5world.get("meta", file="raw/types.h5", path="/compressed/lz4").json()
    assert lz4["chunks"] == [16, 40] and lz4["filters"][0]["id"] == 32004
    attrs = h5world.get("attr", file="raw/types.h5", path="/entry").json()
    assert attrs == {"NX_class": "NXentry", "default": "data"}
    one = h5world.client.get(
        "/api/proposals/20260001/h5/attr?file=raw/types.h5&path=/entry&attr_keys=default",
        headers=h5world.auth(),
    )
    assert one.json() == {"default": "data"}
    paths = h5world.get("paths", file="raw/types.h5", path="/entry").json()
    assert paths == ["/entry", "/entry/data", "/entry/data/signal"]


def test_external_link_inside_proposal_reads(h5world: H5World) -> None:
    r = h5world.get("data", file="raw/types.h5", path="/ext_inside", format="npy")
    np.testing.assert_array_equal(np.load(io.BytesIO(r.content)), np.arange(4.0))


@pytest.mark.parametrize(
    "name", ["ext_other_proposal", "ext_absolute", "ext_symlink_out", "ext_missing", "soft_broken"]
)
def test_links_out_are_never_followed(h5world: H5World, name: str) -> None:
    r = h5world.get("data", file="raw/types.h5", path=f"/{name}")
    assert r.status_code in (404, 422)
    assert "4242" not in r.text and "1313" not in r.text


def test_stats_match_numpy(h5world: H5World) -> None:
    with h5py.File(h5world.root / "raw" / "types.h5") as f:
        data = f["f8"][1]
    got = h5world.get("stats", file="raw/types.h5", path="/f8", selection="1").json()
    assert got["min"] == pytest.approx(data.min()) and got["max"] == pytest.approx(data.max())
    assert got["mean"] == pytest.approx(data.mean()) and got["std"] == pytest.approx(data.std())


EXAMPLES = sorted((SHARED_DATA / "nexus-examples").glob("*.*[hn][dx5s]*"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_nexus_examples_read_like_h5py(h5world: H5World, example: Path) -> None:
    target = h5world.root / "examples" / example.name
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(example, target)  # a symlink to shared storage would (rightly) be 404
    meta = h5world.get("meta", file=f"examples/{example.name}")
    assert meta.status_code == 200, meta.text
    with h5py.File(example, "r") as f:
        for name in _datasets(f):
            _check_dataset(h5world, f"examples/{example.name}", f, name)
