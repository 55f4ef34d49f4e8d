"""NeXus plots as a scientist expects them, in a real browser (Debian chromium).

* An NX Line whose ``@auxiliary_signals`` are of another scale (monitor counts next to μ)
  shows μ over the whole y axis; auxiliary signals of the signal's scale are still drawn.
* The frame player labels its image axes with the NeXus axis values and units, and the
  played axis with the value of each frame (the rotation angle of a tomography stack).

Expected numbers come from the files, read with h5py.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np
import pytest

from beamdesk.demo.files import write_xanes_scan
from tests.browser import sign_in
from tests.nexus import nx_data, nx_entry
from tests.test_viewer_browser import NUMBER, built_viewer, viewer_world

__all__ = ["built_viewer", "viewer_world"]  # fixtures used by the tests below

pytestmark = pytest.mark.browser
START = datetime(2026, 1, 1, tzinfo=UTC)
FRAMES, ROWS, COLS = 12, 30, 40
ANGLES = np.linspace(0.0, 180.0, FRAMES, endpoint=False)  # 15° steps
Y_MM = 0.5 + 0.01 * np.arange(ROWS)  # 10 µm pixels
X_MM = -2.0 + 0.02 * np.arange(COLS)  # 20 µm pixels

# Ticks of an axis of the plot on screen: (pixel position along the axis, value).
TICKS = """(type) => [...document.querySelectorAll(
    `[data-testid=h5web] svg[data-type=${type}] .visx-axis-tick, `
    + `[data-testid=stack-player] svg[data-type=${type}] .visx-axis-tick`)].map((g) => {
      const line = g.querySelector('line');
      const at = type === 'ordinate' ? line.getAttribute('y1') : line.getAttribute('x1');
      const text = g.querySelector('text').textContent.replace('\u2212', '-');
      const svg = g.closest('svg').getBoundingClientRect();
      return [Number(at), Number(text), type === 'ordinate' ? svg.height : svg.width];
    })"""


def axis_domain(page, axis: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """The value range an axis of the plot spans, from its ticks' positions and labels."""
    ticks = page.evaluate(TICKS, axis)
    assert len(ticks) >= 2, ticks
    at = np.array([t[0] for t in ticks])
    value = np.array([t[1] for t in ticks])
    slope, offset = np.polyfit(at, value, 1)
    ends = sorted((offset, offset + slope * ticks[0][2]))
    return ends[0], ends[1]


def write_files(root: Path) -> tuple[Path, Path]:
    """The demo's XANES scan, and the same scan as a beamline writes it with its monitors
    (and a reference spectrum) as auxiliary signals of μ."""
    demo = root / "raw" / "xanes" / "fe_demo.nxs"
    demo.parent.mkdir(parents=True, exist_ok=True)
    write_xanes_scan(demo, start=START, seed=2, sample="goethite")
    beamline = root / "raw" / "xanes" / "fe_beamline.nxs"
    shutil.copy(demo, beamline)
    with h5py.File(beamline, "r+") as f:
        data = f["entry/data"]
        data["mu_ref"] = 0.9 * data["mu"][()] + 0.05  # a reference of μ's scale
        data.attrs["auxiliary_signals"] = ["I0", "It", "mu_ref"]
    return demo, beamline


def signal_names(page) -> list[str]:  # type: ignore[no-untyped-def]
    """The curves H5Web's "Signals" menu offers."""
    page.get_by_role("button", name="Signals").click()
    labels = page.locator("[role=menu] label, [role=dialog] label, label:has(input)")
    names = [t.strip().split(" (")[0] for t in labels.all_text_contents()]  # no units
    page.keyboard.press("Escape")
    return names


def open_line(page, base: str, file: str, path: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/proposals/{NUMBER}/viewer?file={file}&path={path}")
    page.get_by_role("tab", name="NX Line").wait_for()
    page.locator("[data-testid=h5web] svg[data-type=ordinate] .visx-axis-tick").first.wait_for()
    page.wait_for_timeout(500)  # the curves' values arrive after the axes


def assert_domain(got: tuple[float, float], lo: float, hi: float) -> None:
    """H5Web's line y axis: the data range (with error bars) and 5 % of it either side."""
    span = hi - lo
    expected = (lo - 0.05 * span, hi + 0.05 * span)
    # The ticks are read off the screen: 1 % of the span for rounding.
    assert got == pytest.approx(expected, abs=0.01 * span), (got, expected)


def assert_image_axes(page, x: tuple[float, float], y: tuple[float, float]) -> None:  # type: ignore[no-untyped-def]
    """With equal aspect, one image axis spans the image exactly; the other is centred on
    it and covers it (the plot is wider or taller than the image)."""
    exact = 0
    for axis, (lo, hi) in (("abscissa", x), ("ordinate", y)):
        got = axis_domain(page, axis)
        print(f"{axis}: {got[0]:.4f}..{got[1]:.4f}, image {lo:.4f}..{hi:.4f}")
        tol = 0.01 * (hi - lo)
        assert (got[0] + got[1]) / 2 == pytest.approx((lo + hi) / 2, abs=tol)
        assert got[0] <= lo + tol and got[1] >= hi - tol
        exact += got == pytest.approx((lo, hi), abs=tol)
    assert exact >= 1


def test_nx_line_keeps_the_signal_readable_next_to_monitor_counts(  # type: ignore[no-untyped-def]
    page, live_server, viewer_world, built_viewer
) -> None:
    demo, _ = write_files(viewer_world)
    with h5py.File(demo, "r") as f:
        mu = f["entry/data/mu"][()]
        mu_errors = f["entry/data/mu_errors"][()]
        i0, it = f["entry/intensities/I0"][()], f["entry/intensities/It"][()]
    base = live_server.url
    sign_in(page, base, "participant")

    # A beamline's layout: I0 (~2e5 counts) is left out of the line, μ spans the y axis,
    # the reference spectrum of μ's scale is still drawn.
    open_line(page, base, "raw/xanes/fe_beamline.nxs", "/entry/data")
    y = axis_domain(page, "ordinate")
    lo, hi = float((mu - mu_errors).min()), float((mu + mu_errors).max())
    print(f"beamline XANES: y axis {y[0]:.4f}..{y[1]:.4f}, μ±σ {lo:.4f}..{hi:.4f}")
    assert_domain(y, lo, hi)
    names = signal_names(page)
    assert "mu_ref" in names and "I0" not in names and "It" not in names, names

    # The demo's own file: μ without auxiliaries; I0 and It (counts) together.
    open_line(page, base, "raw/xanes/fe_demo.nxs", "/entry/data")
    assert_domain(axis_domain(page, "ordinate"), lo, hi)
    open_line(page, base, "raw/xanes/fe_demo.nxs", "/entry/intensities")
    y = axis_domain(page, "ordinate")
    print(f"demo I0/It: y axis {y[0]:.0f}..{y[1]:.0f}, data {it.min():.0f}..{i0.max():.0f}")
    assert_domain(y, float(min(i0.min(), it.min())), float(max(i0.max(), it.max())))
    assert {"I0", "It"} <= set(signal_names(page))


def stack_values() -> np.ndarray:
    k = np.arange(FRAMES)[:, None, None]
    r = np.arange(ROWS)[None, :, None]
    c = np.arange(COLS)[None, None, :]
    return (100 * k + r + 2 * c).astype("u2")


def write_tomo(path: Path) -> None:
    """A small projection stack as NXtomo writes it: angle in degrees, pixels in mm."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        entry = nx_entry(f)
        data = nx_data(
            entry,
            "data",
            "data",
            stack_values(),
            axes={"rotation_angle": ANGLES, "y": Y_MM, "x": X_MM},
            units={"rotation_angle": "degree", "y": "mm", "x": "mm"},
            rotation_angle_indices=0,
            y_indices=1,
            x_indices=2,
        )
        data["x"].attrs["long_name"] = "sample x (mm)"
        entry["plain"] = stack_values()  # no NXdata: pixel indices


def test_frame_player_shows_nexus_axes_and_the_angle_of_each_frame(  # type: ignore[no-untyped-def]
    page, live_server, viewer_world, built_viewer
) -> None:
    write_tomo(viewer_world / "raw" / "tomo.nxs")
    base = live_server.url
    sign_in(page, base, "participant")
    page.goto(f"{base}/proposals/{NUMBER}/viewer?file=raw/tomo.nxs&path=/entry/data&view=frames")
    value = page.get_by_test_id("frame-axis-value")
    value.wait_for()
    page.get_by_test_id("frame-slider").fill("7")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=frame-index]')?.dataset.frame === '7'"
    )
    with h5py.File(viewer_world / "raw" / "tomo.nxs", "r") as f:
        angle = float(f["entry/data/rotation_angle"][7])
        x, y = f["entry/data/x"][()], f["entry/data/y"][()]
    text = page.get_by_test_id("frame-index").text_content() or ""
    print(f"frame label: {text!r}")
    assert text == f"Frame 7 / {FRAMES - 1} · rotation_angle = {angle:.1f}°"
    assert float(value.get_attribute("data-value") or "nan") == angle
    # Image axes: pixel edges in mm, half a pixel beyond the first and last centres.
    player = page.get_by_test_id("stack-player")
    player.locator("svg[data-type=abscissa] .visx-axis-tick").first.wait_for()
    dx, dy = x[1] - x[0], y[1] - y[0]
    assert_image_axes(page, (x[0] - dx / 2, x[-1] + dx / 2), (y[0] - dy / 2, y[-1] + dy / 2))
    assert player.get_by_text("sample x (mm)").count() == 1
    assert player.get_by_text("y (mm)").count() == 1

    # No NeXus axes: pixel indices, no axis value.
    page.goto(f"{base}/proposals/{NUMBER}/viewer?file=raw/tomo.nxs&path=/entry/plain&view=frames")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=frame-index]')?.dataset.frame === '0'"
    )
    assert page.get_by_test_id("frame-axis-value").count() == 0
    page.get_by_test_id("stack-player").locator(
        "svg[data-type=abscissa] .visx-axis-tick"
    ).first.wait_for()
    assert_image_axes(page, (0, COLS), (0, ROWS))
