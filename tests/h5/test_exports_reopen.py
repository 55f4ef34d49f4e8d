"""Downloads that reopen: HDF5 subsets as NeXus, PNG as on screen, TIFF in the source dtype.

Every produced file is read back with an independent reader (h5py, PIL, tifffile) and
compared with numpy against the source file read by h5py.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import h5py
import matplotlib
import numpy as np
import pytest
import tifffile
from PIL import Image

from beamdesk.demo import files as demo
from beamdesk.h5 import nexus
from beamdesk.h5.nxline import axis_names
from tests.h5.builders import OTHER, H5World

START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def demo_world(h5world: H5World) -> H5World:
    raw = h5world.root / "raw"
    demo.write_xrf_map(
        raw / "xrf.h5",
        rows=6,
        cols=5,
        elements={"Fe": "K", "Cu": "K"},
        seed=1,
        title="map",
        sample="shell",
        start=START,
    )
    demo.write_xanes_scan(raw / "xanes.h5", start=START, seed=2, sample="goethite")
    demo.write_saxs_frames(
        raw / "saxs.h5", frames=2, start=START, seed=3, radius_nm=5.0, sample="silica"
    )
    demo.write_projection_stack(
        raw / "tomo.h5", start=START, shape=demo.StackShape(frames=4, rows=16, cols=12)
    )
    return h5world


def subset(world: H5World, file: str, *paths: str):  # type: ignore[no-untyped-def]
    return world.client.get(
        "/api/proposals/20260001/h5/subset",
        params=[("file", file), *(("paths", p) for p in paths)],
        headers=world.auth(),
    )


def saved(world: H5World, response, tmp_path: Path, name: str = "subset.h5") -> Path:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    out = tmp_path / name
    out.write_bytes(response.content)
    return out


def follow_defaults(f: h5py.File) -> h5py.Group:
    """H5Web's rule, written out here: follow ``@default`` from the root to an NXdata."""
    node: h5py.Group = f["/"]
    for _ in range(8):
        nx_class = node.attrs.get("NX_class", "")
        if (nx_class.decode() if isinstance(nx_class, bytes) else nx_class) == "NXdata":
            return node  # facility files write it as a fixed-length byte string
        named = node.attrs["default"]
        node = f[named] if named.startswith("/") else node[named]
    raise AssertionError("no NXdata at the end of @default")


def only_hard_links(f: h5py.File) -> None:
    def check(group: h5py.Group) -> None:
        for name in group:
            link = group.get(name, getlink=True)
            assert isinstance(link, h5py.HardLink), f"{group.name}/{name} is {link}"
            if isinstance(group[name], h5py.Group):
                check(group[name])

    check(f["/"])


def assert_same_plot(source: h5py.Group, got: h5py.Group) -> None:
    """Signal, axes, errors and auxiliary signals of two NXdata groups are equal."""
    signal = source.attrs["signal"]
    assert got.attrs["signal"] == signal
    np.testing.assert_array_equal(got[signal][()], source[signal][()])
    names = axis_names(source, source[signal])
    assert axis_names(got, got[signal]) == names
    for axis in names:
        if axis != "." and axis in source:
            np.testing.assert_array_equal(got[axis][()], source[axis][()])
            assert dict(got[axis].attrs) == dict(source[axis].attrs)
    for extra in (f"{signal}_errors", "errors", *source.attrs.get("auxiliary_signals", [])):
        if extra in source:
            np.testing.assert_array_equal(got[extra][()], source[extra][()])


# (file, exported path, the NXdata group whose plot the subset must open)
DEMO_PLOTS = [
    ("raw/xrf.h5", "/entry/maps", "/entry/maps"),
    ("raw/xrf.h5", "/entry/maps/total_counts", "/entry/maps"),
    ("raw/xrf.h5", "/entry/spectra/data", "/entry/spectra"),
    ("raw/xrf.h5", "/entry/sum_spectrum", "/entry/sum_spectrum"),
    ("raw/xanes.h5", "/entry/data/mu", "/entry/data"),
    ("raw/saxs.h5", "/entry/data", "/entry/data"),
    ("raw/saxs.h5", "/entry/reduced/I", "/entry/reduced"),
    ("raw/tomo.h5", "/entry/data/data", "/entry/data"),
]


@pytest.mark.parametrize(("file", "path", "nxdata"), DEMO_PLOTS)
def test_demo_subsets_open_as_the_same_nexus_plot(  # type: ignore[no-untyped-def]
    demo_world: H5World, tmp_path: Path, file: str, path: str, nxdata: str
) -> None:
    out = saved(demo_world, subset(demo_world, file, path), tmp_path)
    with h5py.File(out, "r") as got, h5py.File(demo_world.root / file, "r") as src:
        only_hard_links(got)
        # H5Web's way: @default from the root.
        plot = follow_defaults(got)
        assert plot.name == nxdata
        assert_same_plot(src[nxdata], plot)
        # BeamDesk's own NeXus resolution agrees, and names the same signal.
        chain = nexus.default_chain(got)
        assert chain[-1].name == nxdata
        assert nexus.default_signal(got) == f"{nxdata}/{src[nxdata].attrs['signal']}"
        assert nexus.default_plot_classes(got) == "NXentry/NXdata"
        assert got["entry"].attrs["NX_class"] == "NXentry"
        assert got.attrs["NX_class"] == "NXroot"
        # Only the plot was asked for: the rest of the file stays out.
        assert "instrument" not in got["entry"]
        assert "subset_omitted" not in got.attrs


def test_subset_of_one_axis_drops_defaults_that_lead_nowhere(  # type: ignore[no-untyped-def]
    demo_world: H5World, tmp_path: Path
) -> None:
    """An axis alone is no plot: the NXdata group lacks its signal, so no @default says
    "plot me"; the root and entry keep nothing that names an absent object."""
    out = saved(demo_world, subset(demo_world, "raw/xanes.h5", "/entry/data/energy"), tmp_path)
    with h5py.File(out, "r") as got, h5py.File(demo_world.root / "raw/xanes.h5") as src:
        np.testing.assert_array_equal(got["entry/data/energy"][()], src["entry/data/energy"][()])
        assert "mu" not in got["entry/data"]
        assert "default" not in got["entry"].attrs
        assert got.attrs["default"] == "entry"  # the entry is there
        assert nexus.default_signal(got) == "/entry/data/energy"  # the first dataset


def test_whole_entry_keeps_its_default_chain(demo_world: H5World, tmp_path: Path) -> None:
    out = saved(demo_world, subset(demo_world, "raw/xrf.h5", "/entry"), tmp_path)
    with h5py.File(out, "r") as got, h5py.File(demo_world.root / "raw/xrf.h5") as src:
        assert follow_defaults(got).name == "/entry/maps"
        assert_same_plot(src["entry/maps"], got["entry/maps"])
        assert got["entry/instrument/monochromator/energy"][()] == 17.0


@pytest.fixture
def hostile(h5world: H5World, tmp_path: Path) -> H5World:
    """NeXus files whose @default and axes point outside the proposal or nowhere."""
    raw = h5world.root / "raw"
    with h5py.File(raw / "hostile.h5", "w") as f:
        f.attrs["NX_class"] = "NXroot"
        f.attrs["default"] = "../../../etc/passwd"
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = "/nowhere/at/all"
        data = entry.create_group("data")
        data.attrs.update({"NX_class": "NXdata", "signal": "counts", "axes": ["y", "x"]})
        data["counts"] = np.arange(12.0).reshape(3, 4)
        data["y"] = np.array([0.5, 1.5, 2.5])
        # x: another proposal's data, then an absolute path outside every proposal.
        data["x"] = h5py.ExternalLink(f"../../{OTHER}/secret.h5", "/values")
        data["counts_errors"] = h5py.ExternalLink(str(tmp_path / "outside.h5"), "/values")
        data.attrs["auxiliary_signals"] = ["aux"]
        data["aux"] = h5py.SoftLink("/entry/elsewhere/aux")  # soft link inside: followed
        entry["elsewhere/aux"] = np.ones((3, 4))
        entry["leak"] = h5py.ExternalLink("link_out.h5", "/values")  # symlink out
        f["plain"] = np.arange(5)
    with h5py.File(raw / "missing_default.h5", "w") as f:
        f.attrs["default"] = "/entry/missing"
        f["values"] = np.arange(3.0)
    return h5world


def no_secret_values(f: h5py.File) -> None:
    def check(_: str, obj: h5py.HLObject) -> None:
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f":
            assert not np.isin(obj[()], [4242.5, 1313.25]).any(), obj.name

    f.visititems(check)


def test_hostile_defaults_and_axes_leak_nothing(hostile: H5World, tmp_path: Path) -> None:
    r = subset(hostile, "raw/hostile.h5", "/entry/data")
    out = saved(hostile, r, tmp_path)
    assert r.headers["x-subset-omitted"] == "/entry/data/counts_errors, /entry/data/x"
    with h5py.File(out, "r") as got:
        only_hard_links(got)
        no_secret_values(got)
        assert sorted(got["entry/data"]) == ["aux", "counts", "y"]
        np.testing.assert_array_equal(got["entry/data/aux"][()], np.ones((3, 4)))
        omitted = [s.decode() if isinstance(s, bytes) else s for s in got.attrs["subset_omitted"]]
        assert [s.split(":")[0] for s in omitted] == ["/entry/data/counts_errors", "/entry/data/x"]
        # The hostile @default attributes are replaced by the chain to what was exported.
        assert got.attrs["default"] == "entry"
        assert got["entry"].attrs["default"] == "data"
        assert follow_defaults(got).name == "/entry/data"
        assert nexus.default_signal(got) == "/entry/data/counts"
        assert "leak" not in got["entry"]
    # The whole entry: links out are left out, the hostile defaults do not survive.
    r = subset(hostile, "raw/hostile.h5", "/entry")
    out = saved(hostile, r, tmp_path, "entry.h5")
    assert "/entry/leak" in r.headers["x-subset-omitted"]
    with h5py.File(out, "r") as got:
        only_hard_links(got)
        no_secret_values(got)
        assert "default" not in got["entry"].attrs
        assert "default" not in got.attrs  # it named /etc/passwd
        assert nexus.default_signal(got) == "/entry/data/counts"  # NeXus: first NXdata


def test_default_to_a_missing_path_is_dropped(hostile: H5World, tmp_path: Path) -> None:
    out = saved(hostile, subset(hostile, "raw/missing_default.h5", "/values"), tmp_path)
    with h5py.File(out, "r") as got:
        assert "default" not in got.attrs
        np.testing.assert_array_equal(got["values"][()], np.arange(3.0))
    r = subset(hostile, "raw/hostile.h5", "/entry/data/x")
    assert r.status_code == 422 and "cannot be followed" in r.json()["detail"]
    assert b"4242" not in r.content


def test_virtual_dataset_inside_the_proposal_is_written_as_values(  # type: ignore[no-untyped-def]
    h5world: H5World, tmp_path: Path
) -> None:
    layout = h5py.VirtualLayout(shape=(2, 4), dtype="f8")
    layout[0] = h5py.VirtualSource("ext_target.h5", "/values", shape=(4,))
    layout[1] = h5py.VirtualSource("ext_target.h5", "/values", shape=(4,))
    with h5py.File(h5world.root / "raw" / "vds.h5", "w") as f:
        f.create_virtual_dataset("stacked", layout, fillvalue=-1)
    out = saved(h5world, subset(h5world, "raw/vds.h5", "/stacked"), tmp_path)
    with h5py.File(out, "r") as got:
        assert not got["stacked"].is_virtual
        np.testing.assert_array_equal(got["stacked"][()], np.tile(np.arange(4.0), (2, 1)))


# --- PNG: what H5Web's heatmap shows --------------------------------------------------------

RNG = np.random.default_rng(11)
STACK = RNG.random((4, 37, 53)) * 900 + 100  # frames × rows × cols, all positive


@pytest.fixture
def pictures(h5world: H5World) -> H5World:
    with h5py.File(h5world.root / "raw" / "pictures.h5", "w") as f:
        f["stack"] = STACK
        image = STACK[0].copy()
        image[5, 7] = np.nan
        f["with_nan"] = image
        f["big_offset"] = 1e9 + np.arange(6.0).reshape(2, 3)
    return h5world


def png(world: H5World, **params: object) -> np.ndarray:
    r = world.get("data", file="raw/pictures.h5", format="png", **params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA"))


def expected_colours(values: np.ndarray, cmap: str = "viridis") -> np.ndarray:
    """matplotlib's colour map of the values normalised to their own min…max, data rows as
    they are (row 0 first)."""
    lo, hi = np.nanmin(values), np.nanmax(values)
    return matplotlib.colormaps[cmap]((values - lo) / (hi - lo), bytes=True)


def lut_index(colours: np.ndarray, cmap: str = "viridis") -> tuple[np.ndarray, np.ndarray]:
    """For each RGB colour, the nearest entry of the colour map's table and its distance."""
    lut = matplotlib.colormaps[cmap](np.arange(256), bytes=True)[:, :3].astype(int)
    d = np.abs(colours[:, None, :3].astype(int) - lut[None, :, :]).sum(axis=-1)
    return d.argmin(axis=1), d.min(axis=1)


def colour_bar(picture: np.ndarray, cols: int) -> np.ndarray:
    """The first column right of the image whose every pixel is a colour of the map."""
    for x in range(cols, picture.shape[1]):
        _, dist = lut_index(picture[:, x])
        if dist.max() <= 3 and np.ptp(picture[:, x, :3]) > 0:
            return picture[:, x]
    raise AssertionError("no colour bar")


def test_png_is_the_heatmap_as_h5web_draws_it(pictures: H5World) -> None:
    frame = STACK[2]
    picture = png(pictures, path="/stack", selection="2,:,:")
    rows, cols = frame.shape
    # One pixel per value, row 0 at the bottom (H5Web's default, y axis upwards).
    image = picture[:rows, :cols]
    np.testing.assert_array_equal(image, expected_colours(frame)[::-1])
    np.testing.assert_array_equal(picture[rows - 1, 0], expected_colours(frame)[0, 0])
    # Nothing of the image spills over: the column after it and the rows below are plain.
    assert (picture[:rows, cols] == picture[0, cols]).all()
    assert (picture[rows:, :cols] == picture[rows, 0]).all()
    # The colour bar: every colour of the map, from the maximum at the top to the minimum.
    bar = colour_bar(picture, cols)
    index, _ = lut_index(bar)
    assert index[0] == 255 and index[-1] == 0
    assert (np.diff(index) <= 0).all()
    # Its labels, min and max, in dark ink to the right of the bar.
    right = picture[:, cols + 30 :, :3].sum(axis=-1)
    assert (right[:20] < 200).any() and (right[-20:] < 200).any()


def test_png_flips_as_h5web_toggles_and_keeps_one_pixel_per_value(pictures: H5World) -> None:
    frame = STACK[1]
    rows, cols = frame.shape
    top_down = png(pictures, path="/stack", selection="1", flip_y="true")
    np.testing.assert_array_equal(top_down[:rows, :cols], expected_colours(frame))
    mirrored = png(pictures, path="/stack", selection="1", flip_x="true", colorbar="false")
    assert mirrored.shape == (rows, cols, 4)
    np.testing.assert_array_equal(mirrored, expected_colours(frame)[::-1, ::-1])


def test_png_scale_range_colormap_and_missing_values(pictures: H5World) -> None:
    frame = STACK[0]
    rows, cols = frame.shape
    got = png(pictures, path="/stack", selection="0", scale="log", colormap="Inferno")
    log = np.log10(frame)
    want = matplotlib.colormaps["inferno"]((log - log.min()) / np.ptp(log), bytes=True)
    np.testing.assert_array_equal(got[:rows, :cols], want[::-1])
    got = png(pictures, path="/stack", selection="0", vmin=300, vmax=600, colorbar="false")
    want = matplotlib.colormaps["viridis"](np.clip((frame - 300) / 300, 0, 1), bytes=True)
    np.testing.assert_array_equal(got, want[::-1])
    got = png(pictures, path="/with_nan", colorbar="false")
    assert tuple(got[rows - 1 - 5, 7]) == (0, 0, 0, 0)  # no value: transparent
    # 1e9 + 0…5: float32 would merge them; each keeps its own colour.
    got = png(pictures, path="/big_offset", colorbar="false")
    assert len({tuple(p) for p in got.reshape(-1, 4)}) == 6


def test_png_of_a_downsampled_image_has_the_binned_shape(pictures: H5World) -> None:
    r = pictures.get(
        "data",
        file="raw/pictures.h5",
        path="/stack",
        selection="3",
        downsample="10x10",
        format="npy",
    )
    binned = np.load(io.BytesIO(r.content))
    got = png(pictures, path="/stack", selection="3", downsample="10x10", colorbar="false")
    assert got.shape[:2] == binned.shape == (10, 9)  # ceil(37/4), ceil(53/6)
    np.testing.assert_array_equal(got, expected_colours(binned)[::-1])


def test_png_refuses_what_it_cannot_draw(pictures: H5World) -> None:
    bad = {"selection": "0", "colormap": "nope"}
    r = pictures.get("data", file="raw/pictures.h5", path="/stack", format="png", **bad)
    assert r.status_code == 422 and "colormap" in r.json()["detail"]
    r = pictures.get("data", file="raw/pictures.h5", path="/stack", format="png")
    assert r.status_code == 422 and "2-D" in r.json()["detail"]
    r = pictures.get(
        "data", file="raw/pictures.h5", path="/stack", format="png", selection="0", flip_y="x"
    )
    assert r.status_code == 422


# --- TIFF: the source dtype -----------------------------------------------------------------

TIFF_DTYPES = ["u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "f2", "f4", "f8", ">i2", ">f8"]


def values_of(dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Values that use the type's whole range, so any cast on the way shows."""
    n = int(np.prod(shape))
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        step = (int(info.max) - int(info.min)) // (n - 1)
        out = np.array([int(info.min) + k * step for k in range(n)], dtype=object)
        out[-1] = int(info.max)
        out = out.astype(dtype)
        return out.reshape(shape)
    return (RNG.standard_normal(n) * 1e3).astype(dtype).reshape(shape)


@pytest.fixture
def typed(h5world: H5World) -> H5World:
    with h5py.File(h5world.root / "raw" / "typed.h5", "w") as f:
        for code in TIFF_DTYPES:
            f[f"t{code.replace('>', 'be')}"] = values_of(np.dtype(code), (3, 4, 5))
        f["bool"] = RNG.random((3, 4, 5)) > 0.5
        f["f16"] = (RNG.random((3, 4, 5)) * 10).astype(np.longdouble)
    return h5world


def tiff(world: H5World, path: str, **params: object) -> np.ndarray:
    r = world.get("data", file="raw/typed.h5", path=path, format="tiff", **params)
    assert r.status_code == 200, r.text
    return tifffile.imread(io.BytesIO(r.content))


@pytest.mark.parametrize("code", TIFF_DTYPES)
def test_tiff_keeps_the_source_dtype(typed: H5World, code: str) -> None:
    path = f"/t{code.replace('>', 'be')}"
    with h5py.File(typed.root / "raw" / "typed.h5") as f:
        source = f[path][()]
    for selection, want in ((None, source), ("1", source[1]), ("1:3,2,:", source[1:3, 2])):
        got = tiff(typed, path, **({"selection": selection} if selection else {}))
        assert got.dtype == np.dtype(code).newbyteorder("=")
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_tiff_of_booleans_and_long_doubles(typed: H5World) -> None:
    with h5py.File(typed.root / "raw" / "typed.h5") as f:
        flags, long = f["bool"][()], f["f16"][()]
    got = tiff(typed, "/bool", selection="2")
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, flags[2].astype(np.uint8))
    got = tiff(typed, "/f16")
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, long.astype(np.float64))
