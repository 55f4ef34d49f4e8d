"""The HDF5/NeXus viewer in a real browser (Debian chromium) against a live server.

Needs the built front end (`make frontend`): the ``built_viewer`` fixture fails, rather than
skips, when it is missing, so a broken build can never pass silently.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import h5py
import matplotlib
import numpy as np
import pytest
from PIL import Image

from beamdesk.portal.models import ProposalState
from beamdesk.web.frontend import entry_assets
from tests.browser import sign_in
from tests.factories import make_proposal, make_world
from tests.nexus import nx_data, nx_entry, nx_root

pytestmark = pytest.mark.browser
NUMBER = "20260001"
FILE = "raw/scan_0001.nxs"
BIG_ROWS, BIG_COLS = 4200, 96  # taller than the 4096 the viewer shows unbinned


@pytest.fixture
def built_viewer() -> None:
    if entry_assets("viewer.html") is None:
        pytest.fail("The viewer front end is not built: run 'make frontend'")


def image_values() -> np.ndarray:
    y = np.linspace(-1.0, 1.0, 48)[:, None]
    x = np.linspace(-2.0, 2.0, 64)[None, :]
    return (1000.0 * np.exp(-(x**2 + y**2) / 0.3) + 10.0 * x).astype("f4")


def big_values() -> np.ndarray:
    """Row r, column c: (r mod 3)² (c + 1) + r div 3, so the mean of a 3-row bin
    (5/3 (c + 1) + k for bin k) differs from any single row of it."""
    rows = np.arange(BIG_ROWS)[:, None]
    cols = np.arange(BIG_COLS, dtype="f8")[None, :]
    return ((rows % 3) ** 2 * (cols + 1.0) + rows // 3).astype("f4")


def write_nexus(path: Path) -> None:
    """An NXentry whose default plot is an image with axes, a spectrum, and a big image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        nx_root(f, default="entry")
        entry = nx_entry(f, default="map", fields={"title": "Fe K map"})
        yx = {"y": np.linspace(-1.0, 1.0, 48), "x": np.linspace(-2.0, 2.0, 64)}
        nx_data(entry, "map", "image", image_values(), axes=yx)
        energy = np.linspace(1.0, 20.0, 400)
        counts = 5.0 + 100.0 * np.exp(-((energy - 6.4) ** 2) / 0.02)
        axis, units = {"energy": energy}, {"energy": "keV"}
        nx_data(entry, "spectrum", "counts", counts, axis, units, scalar_axes=True)
        big = entry.create_dataset("big", data=big_values(), chunks=(512, BIG_COLS))
        # The same image as an NXdata with axes: the axes must be binned like the image.
        yx = {"y": np.linspace(0.0, 419.9, BIG_ROWS), "x": np.arange(BIG_COLS, dtype="f8")}
        nx_data(entry, "bigmap", "data", big, axes=yx)  # "data": a hard link to the same dataset


@pytest.fixture
def viewer_world(sessions, settings):  # type: ignore[no-untyped-def]
    with sessions() as db:
        world = make_world(db)
        make_proposal(db, world, NUMBER, ProposalState.data_collected)
        db.commit()
    write_nexus(settings.data_root / NUMBER / FILE)
    return settings.data_root / NUMBER


def canvas_pixels(page) -> np.ndarray:  # type: ignore[no-untyped-def]
    canvas = page.locator("[data-testid=h5web] canvas").first
    canvas.wait_for(state="visible")
    page.wait_for_timeout(500)  # let WebGL draw the fetched values
    shot = canvas.screenshot()
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=np.int16)


def assert_drawn(pixels: np.ndarray) -> None:
    """A plot, not a blank canvas: many distinct colours."""
    colours = {tuple(p) for p in pixels.reshape(-1, 3)[:: max(1, pixels.size // 30000)]}
    assert len(colours) > 20, f"canvas looks blank ({len(colours)} colours)"


def assert_peak_at(pixels: np.ndarray, fraction: float) -> None:
    """A drawn curve whose highest point is at ``fraction`` of its horizontal extent.

    The curve is the coloured pixels (grid and axes are grey); the spectrum's baseline runs
    over the whole energy range, so its extent is the axis range.
    """
    coloured = (pixels.max(axis=2) - pixels.min(axis=2)) > 40
    rows, cols = np.nonzero(coloured)
    assert rows.size > 100, "no curve drawn"
    peak_col = cols[rows == rows.min()].mean()
    where = (peak_col - cols.min()) / (cols.max() - cols.min())
    assert abs(where - fraction) < 0.03, (where, fraction)


def open_export_menu(page) -> None:  # type: ignore[no-untyped-def]
    """H5Web moves toolbar controls that do not fit into its "More controls" menu."""
    export = page.get_by_role("button", name="Export")
    if not export.is_visible():
        page.get_by_role("button", name="More controls").click()
    export.click()


def toggle_flip_y(page) -> None:  # type: ignore[no-untyped-def]
    """H5Web's heatmap "Flip Y" toggle, from the "More controls" menu if it is there."""
    flip = page.get_by_role("button", name="Flip Y")
    if flip.count() == 0:
        page.get_by_role("button", name="More controls").click()
    flip.click()
    page.keyboard.press("Escape")


def shoot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    folder = os.environ.get("BEAMDESK_SCREENSHOTS")
    if folder:
        page.screenshot(path=os.path.join(folder, name), full_page=True)


def test_member_views_nexus_default_plot_tree_and_datasets(  # type: ignore[no-untyped-def]
    page, live_server, viewer_world, built_viewer, tmp_path: Path
) -> None:
    base = live_server.url
    csp_errors: list[str] = []
    page.on(
        "console",
        lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.on("pageerror", lambda e: csp_errors.append(f"page error: {e}"))
    sign_in(page, base, "participant")

    # The proposal page links each HDF5 file to the viewer (after cataloguing);
    # here the file browser of the viewer lists it.
    page.goto(f"{base}/proposals/{NUMBER}/viewer")
    page.get_by_test_id("no-file").wait_for()
    browser_pane = page.get_by_test_id("file-browser")
    browser_pane.get_by_role("button", name="raw/").click()
    browser_pane.get_by_role("button", name="scan_0001.nxs").click()

    # The explorer shows the file's tree, and the root opens on the NeXus default plot.
    tree = page.locator("[role=treeitem]")
    page.locator("[role=treeitem][data-path='/entry']").wait_for()
    assert tree.first.get_attribute("data-path") == "/"
    page.get_by_role("tab", name="NX Heatmap").wait_for()
    assert_drawn(canvas_pixels(page))
    assert page.url.endswith(f"file={FILE.replace('/', '%2F')}")
    shoot(page, "viewer-default-plot.png")

    # Dataset in the tree: a heatmap of the image itself.
    page.locator("[role=treeitem][data-path='/entry']").click()
    page.locator("[role=treeitem][data-path='/entry/map']").click()
    page.locator("[role=treeitem][data-path='/entry/map/image']").click()
    page.get_by_role("tab", name="Heatmap").wait_for()
    assert_drawn(canvas_pixels(page))
    assert "path=%2Fentry%2Fmap%2Fimage" in page.url  # deep link follows the selection

    # The export menu downloads the real values from the server.
    open_export_menu(page)
    with page.expect_download() as info:
        page.get_by_text("Export to NPY").click()
    download = info.value
    assert download.suggested_filename.endswith(".npy")
    saved = tmp_path / "image.npy"
    download.save_as(saved)
    np.testing.assert_array_equal(np.load(saved), image_values())

    # Our bar: the image as PNG (server-rendered, one pixel per value) and an HDF5 subset
    # that keeps the NeXus structure around the dataset.
    with page.expect_download() as info:
        page.get_by_test_id("download-png").click()
    png = tmp_path / "image.png"
    info.value.save_as(png)
    assert Image.open(png).info["BeamDesk:data-box"] == "0,0,64,48"
    values = image_values()
    colours = matplotlib.colormaps["viridis"](
        (values - values.min()) / (values.max() - values.min()), bytes=True
    )
    shown = np.asarray(Image.open(png).convert("RGBA"))
    # As H5Web draws it: row 0 at the bottom, then a colour bar to the right.
    np.testing.assert_array_equal(shown[:48, :64], colours[::-1])
    assert shown.shape[1] > 64 + 16
    # H5Web's "Flip Y" puts row 0 at the top: so does the PNG, clicked after the toggle.
    toggle_flip_y(page)
    with page.expect_download() as info:
        page.get_by_test_id("download-png").click()
    assert "flip_y=true" in info.value.url
    info.value.save_as(png)
    np.testing.assert_array_equal(np.asarray(Image.open(png).convert("RGBA"))[:48, :64], colours)
    toggle_flip_y(page)
    with page.expect_download() as info:
        page.get_by_test_id("download-subset").click()
    subset = tmp_path / "subset.h5"
    info.value.save_as(subset)
    with h5py.File(subset, "r") as f:
        np.testing.assert_array_equal(f["entry/map/image"][()], image_values())
        assert f["entry/map"].attrs["NX_class"] == "NXdata"

    # The 1-D NXdata: a line plot with its energy axis.
    page.locator("[role=treeitem][data-path='/entry/spectrum']").click()
    page.get_by_role("tab", name="NX Line").wait_for()
    assert_peak_at(canvas_pixels(page), (6.4 - 1.0) / (20.0 - 1.0))
    assert page.get_by_text("energy").first.is_visible()

    assert not csp_errors, csp_errors


def test_big_image_is_binned_on_the_server(  # type: ignore[no-untyped-def]
    page, live_server, viewer_world, built_viewer
) -> None:
    base = live_server.url
    data_requests: list[str] = []
    page.on("request", lambda r: data_requests.append(r.url) if "/h5/data" in r.url else None)
    sign_in(page, base, "participant")
    page.goto(f"{base}/proposals/{NUMBER}/viewer?file={FILE}&path=/entry/big")
    page.get_by_role("tab", name="Heatmap").wait_for()
    assert_drawn(canvas_pixels(page))
    note = page.get_by_test_id("binned-note")
    assert "4200×96 → 1400×96" in note.text_content()
    assert any("downsample=1400x96" in u for u in data_requests), data_requests

    # The matrix shows bin means of rows 3k..3k+2, computed here with numpy.
    page.get_by_role("tab", name="Matrix").click()
    cells = page.locator("[role=gridcell]")
    cells.first.wait_for()
    texts = cells.all_text_contents()
    values = [float(t) for t in texts if t.strip()]
    expected = big_values().astype("f8").reshape(1400, 3, BIG_COLS).mean(axis=1)
    assert values[:5] == pytest.approx(expected[0, :5].tolist(), rel=1e-3)
    assert values[0] == pytest.approx(5.0 / 3.0, rel=1e-3)


def test_nexus_axes_of_a_binned_image_keep_their_range(  # type: ignore[no-untyped-def]
    page, live_server, viewer_world, built_viewer
) -> None:
    base = live_server.url
    sign_in(page, base, "participant")
    page.goto(f"{base}/proposals/{NUMBER}/viewer?file={FILE}&path=/entry/bigmap")
    page.get_by_role("tab", name="NX Heatmap").wait_for()
    assert_drawn(canvas_pixels(page))
    assert page.get_by_text("Expected array").count() == 0
    left_axis = "[data-testid=h5web] .visx-axis-left .visx-axis-tick text"
    ticks = [float(t.replace("−", "-")) for t in page.locator(left_axis).all_text_contents()]
    # y runs from 0 to 419.9: binned axis values end near 419.8, not at 139.9 (the first
    # 1400 values) as they would if the axis were merely cut to the image's length.
    assert 350 <= max(ticks) <= 450, ticks


def test_outsider_gets_404_for_the_page_and_the_data(  # type: ignore[no-untyped-def]
    page, live_server, viewer_world, built_viewer
) -> None:
    base = live_server.url
    sign_in(page, base, "outsider")
    response = page.goto(f"{base}/proposals/{NUMBER}/viewer?file={FILE}")
    assert response is not None and response.status == 404
    assert page.locator("#beamdesk-viewer").count() == 0
    api = page.request.get(f"{base}/api/proposals/{NUMBER}/h5/meta?file={FILE}&path=/")
    assert api.status == 404
    listing = page.request.get(f"{base}/api/proposals/{NUMBER}/browse?path=raw")
    assert listing.status == 404


# --- Frame player, 1-D overlay, NeXus line CSV -------------------------------------------

STACK_FILE = "raw/stack_0001.nxs"
FRAMES, ROWS, COLS = 8, 600, 800  # frames larger than the player's default 512 px: binned


def stack_values() -> np.ndarray:
    """Frame k: a bright disc whose centre moves right by 60 px per frame, on a ramp that
    rises by 500 per frame, so every frame differs in content and in mean."""
    y = np.arange(ROWS)[:, None]
    x = np.arange(COLS)[None, :]
    frames = []
    for k in range(FRAMES):
        disc = ((x - 150 - 60 * k) ** 2 + (y - 300) ** 2 < 90**2) * 30000
        frames.append(1000 + 500 * k + x * 10 + disc)
    return np.asarray(frames, dtype="u2")


def four_d_values() -> np.ndarray:
    """A 3×4 grid of 20×30 images, each a different constant plus a ramp."""
    a, b = np.meshgrid(np.arange(3), np.arange(4), indexing="ij")
    ramp = np.arange(20 * 30, dtype="f4").reshape(20, 30)
    return (100.0 * a[..., None, None] + 10.0 * b[..., None, None] + ramp).astype("f4")


def series_values() -> np.ndarray:
    return np.asarray([xanes()["mu"] * (1.0 + 0.1 * k) for k in range(4)], dtype="f8")


def xanes() -> dict[str, np.ndarray]:
    energy = np.linspace(7100.0, 7200.0, 201)
    edge = 1.0 / (1.0 + np.exp(-(energy - 7125.0) / 2.0))
    return {
        "energy": energy,
        "mu": (0.1 + edge).astype("f4"),
        "mu_errors": (0.01 + 0.001 * edge).astype("f4"),
        "i0": 1e5 + 10.0 * np.arange(201.0),
        "it": 5e4 * np.exp(-(0.1 + edge)),
        "if": (2e4 * edge + 1e4).astype("f4"),
    }


def write_stack_file(path: Path) -> None:
    with h5py.File(path, "w") as f:
        entry = nx_entry(f)
        stack = stack_values()
        nx_data(entry, "data", "data", stack, signal_options={"chunks": (1, ROWS, COLS)})
        entry["scan4d"] = four_d_values()
        x = xanes()
        line = nx_data(
            entry,
            "xanes",
            "mu",
            x["mu"],
            axes={"energy": x["energy"]},
            units={"energy": "eV"},
            auxiliary_signals={"i0": x["i0"]},
            errors=x["mu_errors"],
            scalar_axes=True,
        )
        line["it"] = x["it"]  # raw intensities, named in no attribute
        line["if"] = x["if"]
        # Four spectra in one 2-D signal, shown by H5Web as "NX Line" with a slider.
        axes = {".": None, "energy": x["energy"]}
        errors = np.sqrt(np.abs(series_values()))
        series = nx_data(entry, "series", "mu", series_values(), axes, errors=errors)
        series["mu"].attrs["interpretation"] = "spectrum"


@pytest.fixture
def stack_world(viewer_world: Path) -> Path:
    write_stack_file(viewer_world / STACK_FILE)
    return viewer_world


def binned_means(frame: np.ndarray, fy: int, fx: int) -> np.ndarray:
    rows, cols = frame.shape
    return frame.astype("f8").reshape(rows // fy, fy, cols // fx, fx).mean(axis=(1, 3))


def test_stack_player_plays_binned_frames(  # type: ignore[no-untyped-def]
    page, live_server, stack_world, built_viewer, tmp_path: Path
) -> None:
    base = live_server.url
    data_requests: list[str] = []
    page.on("request", lambda r: data_requests.append(r.url) if "/h5/data" in r.url else None)
    sign_in(page, base, "participant")
    page.goto(f"{base}/proposals/{NUMBER}/viewer?file={STACK_FILE}&path=/entry/data/data")
    page.locator("[role=treeitem][data-path='/entry/data/data']").wait_for()
    page.get_by_test_id("mode-frames").click()

    index = page.get_by_test_id("frame-index")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=frame-index]')?.dataset.frame === '0'"
    )
    stats = page.get_by_test_id("frame-stats")
    # 600×800 frames with the default size (≤ 512 px): 2×2 bin means from the server.
    assert stats.get_attribute("data-rows") == "300" and stats.get_attribute("data-cols") == "400"
    expected = binned_means(stack_values()[0], 2, 2)
    assert float(stats.get_attribute("data-mean")) == pytest.approx(expected.mean(), rel=1e-9)
    assert float(stats.get_attribute("data-max")) == pytest.approx(expected.max(), rel=1e-9)
    assert any(
        "selection=0%2C%3A%2C%3A" in u and "downsample=300x400" not in u and "downsample=" in u
        for u in data_requests
    ), data_requests
    first = canvas_pixels_in(page, "stack-player")
    shoot(page, "viewer-frames.png")
    assert_drawn(first)

    # Play: the frame index advances, the next frames are fetched ahead, the canvas changes.
    page.get_by_test_id("speed").select_option("10")
    page.get_by_test_id("play").click()
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=frame-index]')?.dataset.frame) >= 3"
    )
    page.get_by_test_id("play").click()  # pause
    page.wait_for_timeout(300)
    frame = int(index.get_attribute("data-frame") or "-1")
    assert 3 <= frame < FRAMES
    assert index.get_attribute("data-selection") == f"{frame},:,:"
    expected = binned_means(stack_values()[frame], 2, 2)
    assert float(stats.get_attribute("data-mean")) == pytest.approx(expected.mean(), rel=1e-9)
    ahead = (frame + 1) % FRAMES  # fetched ahead (looping after the last frame)
    assert any(f"selection={ahead}%2C" in u for u in data_requests)
    later = canvas_pixels_in(page, "stack-player")
    assert np.abs(later - first).mean() > 1.0, "the canvas did not change"
    # The frame is in the address: a copied link opens the same frame.
    # (written 0.4 s after the state rests)
    page.wait_for_function(f"() => location.search.includes('view=frames&frame={frame}&')")

    # Slider to the last frame; a reload from the link comes back to it.
    page.get_by_test_id("frame-slider").fill(str(FRAMES - 1))
    page.wait_for_function(
        f"() => document.querySelector('[data-testid=frame-index]')?.dataset.frame"
        f" === '{FRAMES - 1}'"
    )
    page.wait_for_function(f"() => location.search.includes('frame={FRAMES - 1}')")
    page.goto(page.url)
    page.wait_for_function(
        f"() => document.querySelector('[data-testid=frame-index]')?.dataset.frame"
        f" === '{FRAMES - 1}'"
    )
    expected = binned_means(stack_values()[FRAMES - 1], 2, 2)
    assert float(page.get_by_test_id("frame-stats").get_attribute("data-mean")) == pytest.approx(
        expected.mean(), rel=1e-9
    )

    # The frame on screen, at full resolution, as NPY from the server.
    with page.expect_download() as info:
        page.get_by_test_id("frame-npy").click()
    saved = tmp_path / "frame.npy"
    info.value.save_as(saved)
    np.testing.assert_array_equal(np.load(saved), stack_values()[FRAMES - 1])

    # Full resolution: the frame comes unbinned in its own type.
    page.get_by_test_id("frame-size").select_option("0")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=frame-stats]')?.dataset.rows === '600'"
    )
    full = stack_values()[FRAMES - 1].astype("f8")
    assert float(page.get_by_test_id("frame-stats").get_attribute("data-mean")) == pytest.approx(
        full.mean(), rel=1e-9
    )


def test_stack_player_slices_n_d_datasets(  # type: ignore[no-untyped-def]
    page, live_server, stack_world, built_viewer
) -> None:
    base = live_server.url
    sign_in(page, base, "participant")
    # Play along axis 1, starting at its frame 2 (from the link), with axis 0 fixed at 1.
    page.goto(
        f"{base}/proposals/{NUMBER}/viewer?file={STACK_FILE}&path=/entry/scan4d"
        "&view=frames&axis=1&frame=2"
    )
    index = page.get_by_test_id("frame-index")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=frame-index]')?.dataset.frame === '2'"
    )
    assert index.get_attribute("data-selection") == "0,2,:,:"
    page.get_by_label("index along axis 0").fill("1")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=frame-index]')?.dataset.selection === '1,2,:,:'"
    )
    stats = page.get_by_test_id("frame-stats")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=frame-stats]')?.dataset.rows === '20'"
    )
    assert float(stats.get_attribute("data-mean")) == pytest.approx(
        float(four_d_values()[1, 2].astype("f8").mean()), rel=1e-9
    )
    assert page.get_by_test_id("play-axis").input_value() == "1"
    page.wait_for_function("() => location.search.includes('fix=1%2C0')")
    assert_drawn(canvas_pixels_in(page, "stack-player"))

    # Back to H5Web: it was kept (hidden) and draws again.
    page.get_by_test_id("mode-h5web").click()
    page.get_by_role("tab", name="Heatmap").wait_for()
    assert_drawn(canvas_pixels(page))
    page.wait_for_function("() => !location.search.includes('view=')")


def canvas_pixels_in(page, testid: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    canvas = page.get_by_test_id(testid).locator("canvas").first
    canvas.wait_for(state="visible")
    page.wait_for_timeout(500)  # let WebGL draw the fetched values
    shot = canvas.screenshot()
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=np.int16)


def has_colour(pixels: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 40) -> bool:
    distance = np.abs(pixels - np.asarray(rgb, dtype=np.int16)).sum(axis=2)
    return int((distance < tolerance).sum()) > 20


def test_overlay_plots_several_curves_and_exports_csv(  # type: ignore[no-untyped-def]
    page, live_server, stack_world, built_viewer, tmp_path: Path
) -> None:
    base = live_server.url
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    sign_in(page, base, "participant")
    page.goto(f"{base}/proposals/{NUMBER}/viewer?file={STACK_FILE}")
    page.get_by_test_id("mode-overlay").click()
    overlay = page.get_by_test_id("overlay")
    overlay.get_by_label("plot /entry/xanes/i0", exact=True).check()
    overlay.get_by_label("plot /entry/xanes/it", exact=True).check()
    overlay.get_by_label("plot /entry/xanes/if", exact=True).check()
    overlay.get_by_label("x axis: /entry/xanes/energy", exact=True).check()
    # A dataset of another length cannot join.
    assert overlay.get_by_label("plot /entry/data/data", exact=True).count() == 0  # 3-D
    legend = page.get_by_test_id("overlay-legend").locator("li")
    legend.nth(2).wait_for()
    assert legend.count() == 3
    pixels = canvas_pixels_in(page, "overlay")
    shoot(page, "viewer-overlay.png")
    # Three curves in LineVis' colours: darkblue, then the auxiliaries orangered, forestgreen.
    for rgb in ((0, 0, 139), (255, 69, 0), (34, 139, 34)):
        assert has_colour(pixels, rgb), rgb
    page.wait_for_function(
        "() => location.search.includes('view=overlay&x=%2Fentry%2Fxanes%2Fenergy&y=')"
    )

    with page.expect_download() as info:
        page.get_by_test_id("overlay-csv").click()
    assert info.value.suggested_filename == "stack_0001_overlay.csv"
    saved = tmp_path / "overlay.csv"
    info.value.save_as(saved)
    header = saved.read_text().splitlines()[0].split(",")
    assert header == [
        "/entry/xanes/energy",
        "/entry/xanes/i0",
        "/entry/xanes/it",
        "/entry/xanes/if",
    ]
    table = np.loadtxt(saved, delimiter=",", skiprows=1)
    with h5py.File(stack_world / STACK_FILE, "r") as f:
        for k, name in enumerate(("energy", "i0", "it", "if")):
            ref = f[f"entry/xanes/{name}"][()]
            np.testing.assert_array_equal(table[:, k].astype(ref.dtype), ref)

    # The same overlay from the link alone.
    page.goto(page.url)
    page.get_by_test_id("overlay-legend").locator("li").nth(2).wait_for()
    assert page.get_by_test_id("overlay-legend").locator("li").count() == 3
    assert not problems, problems


def test_nexus_line_csv_link_has_axis_errors_and_auxiliaries(  # type: ignore[no-untyped-def]
    page, live_server, stack_world, built_viewer, tmp_path: Path
) -> None:
    base = live_server.url
    sign_in(page, base, "participant")
    page.goto(f"{base}/proposals/{NUMBER}/viewer?file={STACK_FILE}&path=/entry/xanes")
    page.get_by_role("tab", name="NX Line").wait_for()
    link = page.get_by_test_id("download-line")
    with page.expect_download() as info:
        link.click()
    saved = tmp_path / "line.csv"
    info.value.save_as(saved)
    lines = saved.read_text().splitlines()
    assert lines[1].split(",") == ["energy (eV)", "mu", "mu_errors", "i0"]
    table = np.loadtxt(saved, delimiter=",", skiprows=2)
    with h5py.File(stack_world / STACK_FILE, "r") as f:
        for k, name in enumerate(("energy", "mu", "mu_errors", "i0")):
            ref = f[f"entry/xanes/{name}"][()]
            np.testing.assert_array_equal(table[:, k].astype(ref.dtype), ref)
    # An N-D signal as "NX Line": the link follows H5Web's slicing slider.
    page.locator("[role=treeitem][data-path='/entry/series']").click()
    page.get_by_role("tab", name="NX Line").wait_for()
    link = page.get_by_test_id("download-line")
    link.wait_for()
    assert link.text_content() == "Line CSV [0,:]"
    page.locator("[role=slider][aria-labelledby='h5w-slider-0-label']").focus()
    page.keyboard.press("End")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=download-line]')?.textContent"
        " !== 'Line CSV [0,:]'"
    )
    selection = (link.text_content() or "").removeprefix("Line CSV [").removesuffix("]")
    row = int(selection.split(",")[0])
    assert row > 0 and selection == f"{row},:"
    with page.expect_download() as info:
        link.click()
    info.value.save_as(saved)
    assert saved.read_text().splitlines()[1].split(",") == ["energy", "mu", "mu_errors"]
    table = np.loadtxt(saved, delimiter=",", skiprows=2)
    np.testing.assert_array_equal(table[:, 0], xanes()["energy"])
    np.testing.assert_array_equal(table[:, 1], series_values()[row])
    np.testing.assert_array_equal(table[:, 2], np.sqrt(series_values()[row]))
    # An image (NX Heatmap) is no line: no link.
    page.get_by_role("tab", name="NX Heatmap").click()
    page.wait_for_timeout(300)
    assert page.get_by_test_id("download-line").count() == 0

    # A dataset is no NXdata group: no line link.
    page.locator("[role=treeitem][data-path='/entry/xanes/mu']").click()
    page.get_by_role("tab", name="Line").wait_for()
    assert page.get_by_test_id("download-line").count() == 0


@pytest.mark.slow
def test_stack_player_on_the_demo_tomography_stack(  # type: ignore[no-untyped-def]
    page, live_server, viewer_world, built_viewer
) -> None:
    """`beamdesk demo`'s 520×1024×1024 uint16 stack (1.1 GB, Blosc): frames arrive binned
    to 512×512 and play; the shown frame's mean equals numpy's 2×2 bin means."""
    from datetime import UTC, datetime

    from beamdesk.demo.files import write_projection_stack

    target = viewer_world / "raw" / "tomo" / "projections.nxs"
    write_projection_stack(target, start=datetime(2026, 1, 1, tzinfo=UTC))  # as the demo
    base = live_server.url
    sign_in(page, base, "participant")
    page.goto(
        f"{base}/proposals/{NUMBER}/viewer?file=raw/tomo/projections.nxs"
        "&path=/entry/data&view=frames&frame=100&fps=20"
    )
    index = "document.querySelector('[data-testid=frame-index]')?.dataset.frame"
    page.wait_for_function(f"() => {index} === '100'")
    page.get_by_test_id("play").click()
    started = page.evaluate("performance.now()")
    page.wait_for_function(f"() => Number({index}) >= 120", timeout=60_000)
    elapsed = (page.evaluate("performance.now()") - started) / 1000.0
    page.get_by_test_id("play").click()
    page.wait_for_timeout(300)
    frame = int(page.get_by_test_id("frame-index").get_attribute("data-frame") or "-1")
    fetches = page.evaluate("""performance.getEntriesByType('resource')
        .filter((e) => e.name.includes('/h5/data')).map((e) => e.duration)""")
    print(
        f"demo stack: 20 frames played in {elapsed:.2f} s ({20 / elapsed:.1f} fps); "
        f"{len(fetches)} frame fetches, median {sorted(fetches)[len(fetches) // 2]:.0f} ms"
    )
    stats = page.get_by_test_id("frame-stats")
    assert stats.get_attribute("data-rows") == "512"
    with h5py.File(target, "r") as f:
        expected = binned_means(f["entry/data/data"][frame], 2, 2)
    assert float(stats.get_attribute("data-mean")) == pytest.approx(expected.mean(), rel=1e-9)
