"""Viewer options in chromium: the dark colour scheme, H5Web's Surface view, and a link that
opens H5Web with its sidebar closed.

Colours are read from the browser (computed styles) and from screenshots, not from our CSS.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import h5py
import matplotlib
import numpy as np
import pytest
from PIL import Image

from tests.browser import sign_in
from tests.test_viewer_browser import (
    FILE,
    NUMBER,
    assert_drawn,
    built_viewer,
    canvas_pixels,
    shoot,
    viewer_world,
)

__all__ = ["built_viewer", "viewer_world"]  # fixtures used by the tests below
pytestmark = pytest.mark.browser
IMAGE = "/entry/map/image"  # 48×64 float32


def rgb_of(css: str) -> tuple[int, int, int]:
    """'rgb(r, g, b)' or 'rgba(r, g, b, a)' as computed by the browser."""
    match = re.match(r"rgba?\((\d+), (\d+), (\d+)", css)
    assert match, css
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def luminance(rgb: tuple[int, int, int]) -> float:
    """Relative luminance 0 (black) … 1 (white), sRGB weights (no gamma: ordering only)."""
    r, g, b = rgb
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255.0


def background(page, selector: str) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    return rgb_of(page.eval_on_selector(selector, "el => getComputedStyle(el).backgroundColor"))


def shot_of(page, selector: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    png = page.locator(selector).first.screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)


@pytest.fixture
def dark_page(browser) -> Iterator[object]:  # type: ignore[no-untyped-def]
    context = browser.new_context(
        color_scheme="dark", accept_downloads=True, viewport={"width": 1400, "height": 900}
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def drawn_canvas(page) -> np.ndarray:  # type: ignore[no-untyped-def]
    """H5Web's canvas once it shows a plot (values arrive after the canvas appears)."""
    for _ in range(20):
        pixels = canvas_pixels(page)
        colours = {tuple(p) for p in pixels.reshape(-1, 3)[:: max(1, pixels.size // 30000)]}
        if len(colours) > 20:
            return pixels
    assert_drawn(pixels)
    return pixels


def open_image(page, base: str, extra: str = "") -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/proposals/{NUMBER}/viewer?file={FILE}&path={IMAGE}{extra}")
    page.get_by_role("tab", name="Heatmap").wait_for()


def test_dark_colour_scheme_darkens_h5web_and_our_page(  # type: ignore[no-untyped-def]
    page, dark_page, live_server, viewer_world, built_viewer
) -> None:
    base = live_server.url
    seen: dict[str, dict[str, object]] = {}
    for scheme, pg in (("light", page), ("dark", dark_page)):
        problems: list[str] = []
        pg.on("pageerror", lambda e, p=problems: p.append(f"page error: {e}"))
        sign_in(pg, base, "participant")
        open_image(pg, base)
        drawn_canvas(pg)
        assert pg.evaluate("matchMedia('(prefers-color-scheme: dark)').matches") == (
            scheme == "dark"
        )
        # H5Web's root element: dark mode allowed (no disableDarkMode), and its filter.
        root = "[data-testid=h5web] [data-allow-dark-mode]"
        assert pg.locator(root).count() == 1, "H5Web's dark mode is disabled"
        sidebar = pg.locator("[data-testid=h5web] [role=treeitem]").first
        sidebar.wait_for()
        seen[scheme] = {
            "filter": pg.eval_on_selector(root, "el => getComputedStyle(el).filter"),
            "bar": background(pg, "[data-testid=viewer-bar]"),
            "page": background(pg, "html"),
            "files": background(pg, "[data-testid=file-browser]"),
            # What is on screen: H5Web's explorer (tree) and our bar, as pixels.
            "tree_pixels": shot_of(pg, "[data-testid=h5web] [role=tree]").mean(),
            "bar_pixels": shot_of(pg, "[data-testid=viewer-bar]").mean(),
        }
        shoot(pg, f"viewer-{scheme}.png")
        assert not problems, problems

    light, dark = seen["light"], seen["dark"]
    assert "invert" not in str(light["filter"])
    assert "invert" in str(dark["filter"]), dark["filter"]
    for part in ("bar", "page", "files"):
        assert luminance(light[part]) > 0.8, (part, light[part])  # type: ignore[arg-type]
        assert luminance(dark[part]) < 0.25, (part, dark[part])  # type: ignore[arg-type]
    # H5Web's explorer and our bar are dark on screen (0 = black, 255 = white).
    assert light["tree_pixels"] > 200 and dark["tree_pixels"] < 80, (
        light["tree_pixels"],
        dark["tree_pixels"],
    )
    assert light["bar_pixels"] > 200 and dark["bar_pixels"] < 80


def height_map() -> np.ndarray:
    """A 32×40 surface of heights of order one (H5Web's Surface takes values as heights in
    pixel units, with a fixed camera: see docs/viewer.md)."""
    y, x = np.mgrid[0:32, 0:40]
    return (4.0 * np.sin(x / 6.0) * np.cos(y / 5.0)).astype("f4")


def test_surface_view_is_offered_and_draws_a_2d_dataset(  # type: ignore[no-untyped-def]
    page, live_server, viewer_world, built_viewer
) -> None:
    with h5py.File(viewer_world / FILE, "a") as f:
        f["entry/height"] = height_map()
    base = live_server.url
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    sign_in(page, base, "participant")
    page.goto(f"{base}/proposals/{NUMBER}/viewer?file={FILE}&path=/entry/height")
    # Offered next to the heatmap, which stays the view 2-D data opens in.
    surface_tab = page.get_by_role("tab", name="Surface")
    surface_tab.wait_for()
    assert page.get_by_role("tab", name="Heatmap").get_attribute("aria-selected") == "true"
    heatmap = drawn_canvas(page)
    surface_tab.click()
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid=h5web] [role=tab]')].some(
             (t) => t.textContent === 'Surface' && t.getAttribute('aria-selected') === 'true')"""
    )
    page.locator("[data-testid=h5web] figure[data-keep-canvas-colors] canvas").wait_for()
    surface = drawn_canvas(page)
    shoot(page, "viewer-surface.png")
    # Drawn: most of the canvas is not its white background, and the colours are viridis
    # colours of the data's range (matplotlib's map, not the viewer's code).
    flat = surface.reshape(-1, 3)[::7]
    drawn = np.abs(flat - 255).sum(axis=1) > 30
    assert drawn.mean() > 0.3, f"surface nearly blank ({drawn.mean():.3f})"
    lut = matplotlib.colormaps["viridis"](np.linspace(0.0, 1.0, 256), bytes=True)[:, :3]
    distance = np.abs(flat[drawn][:, None, :] - lut[None, :, :].astype(np.int16)).sum(axis=2)
    assert (distance.min(axis=1) < 30).mean() > 0.9, "surface colours are not viridis"
    assert surface.shape != heatmap.shape or np.abs(surface - heatmap).mean() > 5, (
        "still the heatmap"
    )

    # A 1-D dataset is not offered as a surface.
    page.goto(f"{base}/proposals/{NUMBER}/viewer?file={FILE}&path=/entry/spectrum/counts")
    page.get_by_role("tab", name="Line").wait_for()
    assert page.get_by_role("tab", name="Surface").count() == 0
    assert not problems, problems


def test_link_with_the_sidebar_closed(  # type: ignore[no-untyped-def]
    browser, live_server, viewer_world, built_viewer
) -> None:
    base = live_server.url
    context = browser.new_context(
        permissions=["clipboard-read", "clipboard-write"], viewport={"width": 1400, "height": 900}
    )
    try:
        page = context.new_page()
        page.set_default_timeout(20_000)
        sign_in(page, base, "participant")
        open_image(page, base)
        page.locator("[data-testid=h5web] [role=treeitem]").first.wait_for()
        with_sidebar = page.locator("[data-testid=h5web] canvas").first.bounding_box()

        page.get_by_test_id("copy-sidebar-link").click()
        link = page.get_by_test_id("sidebar-link").input_value()
        assert "sidebar=closed" in link
        assert "file=raw%2Fscan_0001.nxs" in link and "path=%2Fentry%2Fmap%2Fimage" in link
        page.get_by_role("status").filter(has_text="copied").wait_for()
        assert page.evaluate("navigator.clipboard.readText()") == link

        page.goto(link)
        page.get_by_role("tab", name="Heatmap").wait_for()
        # The tree is hidden, the plot shown over the whole width.
        assert page.locator("[data-testid=h5web] [data-sidebar-collapsed]").count() == 1
        assert page.locator("[data-testid=h5web] [role=treeitem]").first.is_hidden()
        drawn_canvas(page)
        without_sidebar = page.locator("[data-testid=h5web] canvas").first.bounding_box()
        assert with_sidebar and without_sidebar
        assert without_sidebar["width"] > with_sidebar["width"] + 150
        shoot(page, "viewer-no-sidebar.png")
        # Still the viewer of the same object: the parameter stays while browsing.
        assert "path=%2Fentry%2Fmap%2Fimage" in page.url and "sidebar=closed" in page.url
        # H5Web's own toggle opens the sidebar again.
        page.get_by_role("button", name="Toggle sidebar").click()
        page.locator("[data-testid=h5web] [role=treeitem]").first.wait_for(state="visible")
    finally:
        context.close()
