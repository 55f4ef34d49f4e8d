"""The viewer's 1-D overlay across files of a proposal, with log axes, in chromium.

Three Fe K-edge XANES scans as `beamdesk demo` writes them (raw/xanes/fe_k_xanes_00{1,2,3}.nxs):
μ of each file against its own energy axis, compared with h5py's values read back from the
CSV export; log axes, links that reopen the same overlay, and links of the one-file overlay.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest

from beamdesk.demo.files import write_xanes_scan
from tests.browser import sign_in
from tests.test_viewer_browser import (
    NUMBER,
    built_viewer,
    canvas_pixels_in,
    has_colour,
    shoot,
    viewer_world,
)

__all__ = ["built_viewer", "viewer_world"]  # fixtures used by the tests below
pytestmark = pytest.mark.browser
SCANS = [f"raw/xanes/fe_k_xanes_{k:03d}.nxs" for k in (1, 2, 3)]
COLOURS = [(0, 0, 139), (255, 69, 0), (34, 139, 34)]  # darkblue, orangered, forestgreen


@pytest.fixture
def xanes_world(viewer_world: Path) -> Path:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for k, name in enumerate(SCANS):
        write_xanes_scan(
            viewer_world / name, start=start + timedelta(hours=k), seed=80 + k, sample=f"band {k}"
        )
    return viewer_world


def reference(world: Path, name: str, path: str) -> np.ndarray:
    with h5py.File(world / name, "r") as f:
        return np.asarray(f[path][()])


def add_curve(overlay, name: str, x: str, y: str) -> None:  # type: ignore[no-untyped-def]
    """List another file's datasets through the overlay's file chooser, then tick x and y."""
    if overlay.get_by_test_id("overlay-list-file").inner_text() != name:
        overlay.get_by_test_id("overlay-other-file").click()
        overlay.get_by_label(f"list {name}", exact=True).click()
        overlay.get_by_test_id("overlay-list-file").filter(has_text=name).wait_for()
    overlay.get_by_label(f"x axis: {x}", exact=True).check()
    overlay.get_by_label(f"plot {y}", exact=True).check()


def test_overlay_of_three_xanes_files_with_log_y(  # type: ignore[no-untyped-def]
    page, live_server, xanes_world, built_viewer, tmp_path: Path
) -> None:
    base = live_server.url
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    sign_in(page, base, "participant")
    page.goto(f"{base}/proposals/{NUMBER}/viewer?file={SCANS[0]}")
    page.get_by_test_id("mode-overlay").click()
    overlay = page.get_by_test_id("overlay")
    for name in SCANS:
        add_curve(overlay, name, "/entry/data/energy", "/entry/data/mu")

    legend = page.get_by_test_id("overlay-legend").locator("li")
    legend.nth(2).wait_for()
    assert legend.count() == 3
    assert [legend.nth(k).get_attribute("data-file") for k in range(3)] == SCANS
    assert [legend.nth(k).inner_text().strip() for k in range(3)] == [
        f"fe_k_xanes_00{k} /entry/data/mu" for k in (1, 2, 3)
    ]
    linear = canvas_pixels_in(page, "overlay")
    shoot(page, "viewer-overlay-files.png")
    for rgb in COLOURS:
        assert has_colour(linear, rgb), rgb

    # The CSV: the scans share their energy grid, so one x column and one μ per file,
    # each equal to h5py's values of that file.
    with page.expect_download() as info:
        page.get_by_test_id("overlay-csv").click()
    assert info.value.suggested_filename == "fe_k_xanes_001_overlay.csv"
    saved = tmp_path / "overlay.csv"
    info.value.save_as(saved)
    header = saved.read_text().splitlines()[0].split(",")
    assert header == ["/entry/data/energy"] + [f"{name}:/entry/data/mu" for name in SCANS]
    table = np.loadtxt(saved, delimiter=",", skiprows=1)
    energy = reference(xanes_world, SCANS[0], "entry/data/energy")
    np.testing.assert_array_equal(table[:, 0], energy)
    mus = [reference(xanes_world, name, "entry/data/mu") for name in SCANS]
    for k, mu in enumerate(mus):
        np.testing.assert_array_equal(table[:, k + 1], mu)
    # Three different scans (independent noise), not one curve three times.
    assert np.abs(mus[0] - mus[1]).max() > 1e-3 and np.abs(mus[1] - mus[2]).max() > 1e-3

    # Log y: the axis scale changes and the plot is redrawn; μ is positive, nothing masked.
    page.get_by_test_id("overlay-log-y").check()
    figure = page.get_by_test_id("overlay-figure")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=overlay-figure]')?.dataset.scaleY === 'log'"
    )
    assert figure.get_attribute("data-scale-x") == "linear"
    logged = canvas_pixels_in(page, "overlay")
    for rgb in COLOURS:
        assert has_colour(logged, rgb), rgb
    assert np.abs(logged - linear).mean() > 0.5, "the plot did not change with log y"
    assert page.get_by_test_id("overlay-log-note").count() == 0

    # The link reopens the same three curves on a log y axis.
    page.wait_for_function("() => location.search.includes('log=y')")
    assert "fe_k_xanes_002.nxs%3A%3A%2Fentry%2Fdata%2Fmu" in page.url
    page.goto(page.url)
    page.get_by_test_id("overlay-legend").locator("li").nth(2).wait_for()
    assert page.get_by_test_id("overlay-legend").locator("li").count() == 3
    assert page.get_by_test_id("overlay-log-y").is_checked()
    assert page.get_by_test_id("overlay-figure").get_attribute("data-scale-y") == "log"
    assert not problems, problems


def test_overlay_links_of_one_file_and_log_masking(  # type: ignore[no-untyped-def]
    page, live_server, xanes_world, built_viewer, tmp_path: Path
) -> None:
    base = live_server.url
    sign_in(page, base, "participant")
    # A link written before overlays took several files: entries are the open file's.
    page.goto(
        f"{base}/proposals/{NUMBER}/viewer?file={SCANS[1]}&view=overlay"
        "&x=/entry/data/energy&y=/entry/data/I0&y=/entry/data/It"
    )
    legend = page.get_by_test_id("overlay-legend").locator("li")
    legend.nth(1).wait_for()
    assert [legend.nth(k).get_attribute("data-file") for k in range(2)] == [SCANS[1]] * 2
    with page.expect_download() as info:
        page.get_by_test_id("overlay-csv").click()
    saved = tmp_path / "one-file.csv"
    info.value.save_as(saved)
    assert saved.read_text().splitlines()[0] == "/entry/data/energy,/entry/data/I0,/entry/data/It"
    table = np.loadtxt(saved, delimiter=",", skiprows=1)
    for k, name in enumerate(("energy", "I0", "It")):
        np.testing.assert_array_equal(
            table[:, k], reference(xanes_world, SCANS[1], f"entry/data/{name}")
        )

    # Against the index, a log x axis cannot show index 0: it is masked and said.
    page.goto(
        f"{base}/proposals/{NUMBER}/viewer?file={SCANS[1]}&view=overlay&y=/entry/data/mu&log=x"
    )
    note = page.get_by_test_id("overlay-log-note")
    note.wait_for()
    assert "1 x ≤ 0 of /entry/data/mu" in note.inner_text()
    assert page.get_by_test_id("overlay-figure").get_attribute("data-scale-x") == "log"
    assert has_colour(canvas_pixels_in(page, "overlay"), COLOURS[0])
