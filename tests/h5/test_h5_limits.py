"""Size limits, malformed selections and damaged files give clear 4xx answers."""

from __future__ import annotations

import io

import h5py
import numpy as np
import pytest

from tests.h5.builders import H5World


@pytest.fixture
def small_limit(app) -> None:  # type: ignore[no-untyped-def]
    app.state.settings = app.state.settings.changed(limits={"max_read_bytes": 1000})


@pytest.mark.parametrize(
    "selection", ["1:2:0", "a", "0,0,0,0", "1:2:3:4", "99", "-7", "0;1", ":,::-1", "1.5", ","]
)
def test_malformed_selection_explains_syntax(h5world: H5World, selection: str) -> None:
    r = h5world.get("data", file="raw/types.h5", path="/f4", selection=selection)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["message"] == body["detail"]
    assert "start:stop[:step]" in body["detail"] and selection in body["detail"]


def test_oversize_selection_is_413_with_a_hint(h5world: H5World, small_limit: None) -> None:
    r = h5world.get("data", file="raw/types.h5", path="/compressed/gzip")
    assert r.status_code == 413
    detail = r.json()["detail"]
    assert "[64, 80]" in detail and "uint16" in detail and "selection=" in detail
    hint = detail.split("selection=")[1].split(",")[0:2]
    sel = ",".join(hint).rstrip(".").split(" ")[0].rstrip(",")
    ok = h5world.get("data", file="raw/types.h5", path="/compressed/gzip", selection=sel)
    assert ok.status_code == 200, (sel, ok.text)
    with h5py.File(h5world.root / "raw" / "types.h5") as f:
        assert np.asarray(ok.json()).size * 2 <= 1000
        assert f["compressed/gzip"].size * 2 > 1000


def test_binary_is_streamed_beyond_the_limit(h5world: H5World, small_limit: None) -> None:
    r = h5world.get("data", file="raw/types.h5", path="/compressed/zstd", format="npy")
    assert r.status_code == 200
    with h5py.File(h5world.root / "raw" / "types.h5") as f:
        np.testing.assert_array_equal(np.load(io.BytesIO(r.content)), f["compressed/zstd"][()])


@pytest.mark.parametrize("content", [b"", b"not hdf5 at all", "truncate"])
def test_damaged_files_are_4xx_and_server_goes_on(h5world: H5World, content) -> None:  # type: ignore[no-untyped-def]
    bad = h5world.root / "raw" / "bad.h5"
    if content == "truncate":
        data = (h5world.root / "raw" / "types.h5").read_bytes()
        content = data[: len(data) // 3]
    bad.write_bytes(content)
    for endpoint, path in (("meta", "/"), ("data", "/f4"), ("paths", "/")):
        r = h5world.get(endpoint, file="raw/bad.h5", path=path)
        assert 400 <= r.status_code < 500, (endpoint, r.status_code, r.text)
        assert "Traceback" not in r.text
    assert h5world.get("data", file="raw/types.h5", path="/int8").json() == list(range(-5, 5))


def test_unknown_format_and_dtype(h5world: H5World) -> None:
    assert h5world.get("data", file="raw/types.h5", path="/f4", format="xml").status_code == 422
    assert h5world.get("data", file="raw/types.h5", path="/f4", dtype="weird").status_code == 422
    r = h5world.get("data", file="raw/types.h5", path="/vlen_utf8", dtype="safe")
    assert r.status_code == 422
    r = h5world.get("data", file="raw/types.h5", path="/vlen_utf8", format="bin")
    assert r.status_code == 422 and "json" in r.json()["detail"]
    assert h5world.get("data", file="raw/types.h5", path="/nope").status_code == 404
    assert h5world.get("data", file="raw/types.h5", path="/entry").status_code == 422
