"""Downsampling, streaming downloads and exports, checked against numpy and h5py."""

from __future__ import annotations

import io

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image
from sqlalchemy import select

from beamdesk.portal.models import AuditEvent
from beamdesk.settings import LimitsSection
from tests.h5.builders import H5World

IMAGE = np.random.default_rng(3).random((3, 203, 157)).astype("f4") * 1000


@pytest.fixture
def stack(h5world: H5World) -> H5World:
    with h5py.File(h5world.root / "raw" / "stack.h5", "w") as f:
        f.create_dataset("frames", data=IMAGE, chunks=(1, 32, 157), compression="gzip")
        f.create_dataset(
            "big", data=np.arange(3_000_000, dtype="f8").reshape(6000, 500), chunks=(7, 500)
        )
    return h5world


def block_reduce(a: np.ndarray, fy: int, fx: int, fn) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Independent reference: loop over blocks, edge blocks partial."""
    rows = range(0, a.shape[0], fy)
    cols = range(0, a.shape[1], fx)
    return np.array([[fn(a[r : r + fy, c : c + fx]) for c in cols] for r in rows])


@pytest.mark.parametrize(("method", "fn"), [("mean", np.mean), ("max", np.max), ("min", np.min)])
def test_downsample_matches_block_reduce(stack: H5World, method: str, fn) -> None:  # type: ignore[no-untyped-def]
    r = stack.get(
        "data",
        file="raw/stack.h5",
        path="/frames",
        selection="1",
        downsample="50x40",
        downsample_method=method,
        format="npy",
    )
    assert r.status_code == 200, r.text
    fy, fx = (int(v) for v in r.headers["x-downsample-factors"].split(","))
    assert (fy, fx) == (5, 4)  # ceil(203/50), ceil(157/40)
    got = np.load(io.BytesIO(r.content))
    assert got.shape == (41, 40)
    np.testing.assert_allclose(got, block_reduce(IMAGE[1], fy, fx, fn), rtol=1e-6)


def test_decimate_and_bad_downsample(stack: H5World) -> None:
    r = stack.get(
        "data",
        file="raw/stack.h5",
        path="/frames",
        selection="2,10:,:",
        downsample="20x20",
        downsample_method="decimate",
        format="npy",
    )
    np.testing.assert_array_equal(np.load(io.BytesIO(r.content)), IMAGE[2, 10::10, ::8])
    for params in (
        {"downsample": "10"},
        {"downsample": "0x5"},
        {"downsample": "5x5", "downsample_method": "median"},
    ):
        assert (
            stack.get(
                "data", file="raw/stack.h5", path="/frames", selection="0", **params
            ).status_code
            == 422
        )
    r = stack.get("data", file="raw/stack.h5", path="/frames", downsample="5x5")
    assert r.status_code == 422 and "2-D" in r.json()["detail"]


def test_a_reduced_view_scans_a_bounded_amount(stack: H5World) -> None:
    """A mean over 64 GiB of declared zeros would keep a reader busy for a minute: it is
    refused at once, naming decimate, which reads only what it returns (and is answered)."""
    with h5py.File(stack.root / "raw" / "huge.h5", "w") as f:
        f.create_dataset("data", shape=(262144, 262144), chunks=(1024, 1024), dtype="u1")
    limit = 16 * LimitsSection().max_read_bytes  # 4 GiB: the tests' settings keep the default
    for method in ("mean", "max", "min"):
        r = stack.get(
            "data", file="raw/huge.h5", path="/data", downsample="512x512", downsample_method=method
        )
        assert r.status_code == 413, r.text
        assert "64.0 GiB" in r.json()["detail"] and "decimate" in r.json()["detail"]
    rows = limit // 262144  # as many whole rows as one view may scan: still answered
    r = stack.get(
        "data",
        file="raw/huge.h5",
        path="/data",
        selection=f"0:{rows},0:262144",
        downsample="512x512",
        downsample_method="max",
        format="npy",
    )
    assert r.status_code == 200, r.text
    assert not np.load(io.BytesIO(r.content)).any()
    r = stack.get(
        "data",
        file="raw/huge.h5",
        path="/data",
        downsample="512x512",
        downsample_method="decimate",
        format="npy",
    )
    assert r.status_code == 200 and np.load(io.BytesIO(r.content)).shape == (512, 512)


def test_big_npy_streams_and_matches_h5py(stack: H5World) -> None:
    with stack.client.stream(
        "GET",
        "/api/proposals/20260001/h5/data",
        headers=stack.auth(),
        params={"file": "raw/stack.h5", "path": "/big", "selection": "3:5997", "format": "npy"},
    ) as r:
        assert r.status_code == 200
        parts = list(r.iter_bytes())
        body = b"".join(parts)
    assert int(r.headers["content-length"]) == len(body)
    assert r.headers["content-disposition"].endswith('stack_big_3-5997.npy"')
    with h5py.File(stack.root / "raw" / "stack.h5") as f:
        np.testing.assert_array_equal(np.load(io.BytesIO(body)), f["big"][3:5997])
    r = stack.get(
        "data",
        file="raw/stack.h5",
        path="/big",
        selection="::3,1:400:7",
        format="bin",
        dtype="safe",
    )
    np.testing.assert_array_equal(
        np.frombuffer(r.content, "<f8").reshape(2000, 57),
        np.arange(3_000_000.0).reshape(6000, 500)[::3, 1:400:7],
    )


def test_csv_tiff_png_exports(stack: H5World, sessions) -> None:  # type: ignore[no-untyped-def]
    r = stack.get("data", file="raw/stack.h5", path="/frames", selection="0,0:4,0:5", format="csv")
    np.testing.assert_allclose(
        np.loadtxt(io.StringIO(r.text), delimiter=","), IMAGE[0, 0:4, 0:5], rtol=1e-7
    )
    r = stack.get("data", file="raw/stack.h5", path="/frames", format="tiff")
    np.testing.assert_array_equal(tifffile.imread(io.BytesIO(r.content)), IMAGE)
    r = stack.get(
        "data",
        file="raw/stack.h5",
        path="/frames",
        selection="0",
        format="png",
        colormap="gray",
        vmin=0,
        vmax=1000,
        flip_y=True,  # row 0 at the top (H5Web's default has it at the bottom)
        colorbar=False,  # the image alone (tests/h5/test_exports_reopen.py: with the bar)
    )
    png = np.asarray(Image.open(io.BytesIO(r.content)))
    assert png.shape == (203, 157, 4)
    expected = np.round(np.clip(IMAGE[0] / 1000, 0, 1) * 255)
    assert np.abs(png[..., 0].astype(int) - expected).max() <= 2  # 256-entry LUT rounding
    assert stack.get("data", file="raw/stack.h5", path="/frames", format="csv").status_code == 422
    assert (
        stack.get(
            "data",
            file="raw/stack.h5",
            path="/frames",
            selection="0",
            format="png",
            colormap="nope",
        ).status_code
        == 422
    )
    with sessions() as db:
        events = db.scalars(select(AuditEvent).where(AuditEvent.action == "data_download"))
        targets = [e.target for e in events]
    assert targets.count("20260001/raw/stack.h5::/frames") == 3  # csv, tiff, png; not bin


def test_subset_opens_again(h5world: H5World, tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = h5world.client.get(
        "/api/proposals/20260001/h5/subset",
        params=[
            ("file", "raw/types.h5"),
            ("paths", "/entry/data/signal"),
            ("paths", "/compressed/lz4"),
            ("paths", "/ext_inside"),
        ],
        headers=h5world.auth(),
    )
    assert r.status_code == 200, r.text
    out = tmp_path / "subset.h5"
    out.write_bytes(r.content)
    with h5py.File(out) as got, h5py.File(h5world.root / "raw" / "types.h5") as src:
        assert got["entry"].attrs["NX_class"] == "NXentry"
        assert got["entry/data"].attrs["signal"] == "signal"
        assert got["entry/data/signal"].attrs["units"] == "counts"
        np.testing.assert_array_equal(got["entry/data/signal"][()], src["entry/data/signal"][()])
        np.testing.assert_array_equal(got["compressed/lz4"][()], src["compressed/lz4"][()])
        np.testing.assert_array_equal(got["ext_inside"][()], np.arange(4.0))
        assert "f4" not in got
    bad = h5world.client.get(
        "/api/proposals/20260001/h5/subset",
        params=[("file", "raw/types.h5"), ("paths", "/ext_other_proposal")],
        headers=h5world.auth(),
    )
    assert bad.status_code == 422
