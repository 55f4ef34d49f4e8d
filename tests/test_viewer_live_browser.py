"""Live data in a real browser (Debian chromium): a file written while the viewer is open.

A separate writer process (h5py with HDF5's default locking) appends frames to a file of
the proposal's raw folder, as a SWMR writer that keeps the file open or as a program that
opens, appends and closes it each time. Without reloading the page, Refresh shows the new
length, Follow reaches the last frame on its own, and the last frame drawn is the one h5py
reads from the file. A failed poll stops following with a visible message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.browser import sign_in
from tests.h5.test_h5_writer import h5py_frames
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
ROWS, COLS, BAND = 16, 40, 5
VIRIDIS_LOW, VIRIDIS_HIGH = (68, 1, 84), (253, 231, 37)

# Frame k: a slope k + r/1000 with a bright band of BAND columns that moves with k.
WRITER = textwrap.dedent(
    """
    import json, sys
    import h5py, numpy as np

    ROWS, COLS, BAND = map(int, sys.argv[1:4])

    def frame(k):
        values = k + np.arange(ROWS)[:, None] / 1000.0 + np.zeros((1, COLS))
        start = BAND * (k % (COLS // BAND))
        values[:, start:start + BAND] += 100.0
        return values

    f = None
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            op = cmd["op"]
            out = {}
            if op == "open":
                f = h5py.File(cmd["path"], cmd["mode"], **cmd.get("kw", {}))
            elif op == "create":
                f.create_dataset("entry/frames", shape=(0, ROWS, COLS),
                                 maxshape=(None, ROWS, COLS), dtype="f8",
                                 chunks=(1, ROWS, COLS))
            elif op == "swmr":
                f.swmr_mode = True
            elif op == "append":
                d = f["entry/frames"]
                n = d.shape[0]
                d.resize(n + cmd["count"], axis=0)
                for k in range(n, n + cmd["count"]):
                    d[k] = frame(k)
                out = {"shape": list(d.shape)}
            elif op == "flush":
                f["entry/frames"].flush() if f.swmr_mode else f.flush()
            elif op == "close":
                f.close()
            print(json.dumps({"ok": out}), flush=True)
        except Exception as exc:
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
    """
)


class Writer:
    """The acquisition program: its own process, HDF5's default file locking."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path, self.kind = path, kind
        env = {k: v for k, v in os.environ.items() if k != "HDF5_USE_FILE_LOCKING"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(ROWS), str(COLS), str(BAND)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.length = 0

    def __call__(self, op: str, **args: object) -> dict[str, object]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the writer process died during {op}"
        answer = json.loads(line)
        assert "error" not in answer, f"the writer's {op} failed: {answer['error']}"
        return answer["ok"]

    def start(self, count: int) -> None:
        if self.kind == "swmr":
            self("open", path=str(self.path), mode="w", kw={"libver": "latest"})
            self("create")
            self("swmr")
        else:
            self("open", path=str(self.path), mode="w")
            self("create")
            self("close")
        self.grow(count)

    def grow(self, count: int) -> None:
        """Append ``count`` frames; the file is complete on disk when this returns."""
        if self.kind == "append":
            self("open", path=str(self.path), mode="a")
        shape = self("append", count=count)["shape"]
        self("flush")
        if self.kind == "append":
            self("close")
        self.length += count
        assert shape == [self.length, ROWS, COLS]

    def stop(self) -> int:
        if self.kind == "swmr":
            self("close")
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(timeout=30)


@pytest.fixture
def writers() -> Iterator[list[Writer]]:
    started: list[Writer] = []
    yield started
    for w in started:
        if w.process.poll() is None:
            w.process.kill()
            w.process.wait(timeout=30)


FRAME = "document.querySelector('[data-testid=frame-index]')"
SLIDER_MAX = (
    "document.querySelector('[data-testid=h5web] [role=slider]"
    "[aria-labelledby=h5w-slider-0-label]')?.getAttribute('aria-valuemax')"
)


def wait_frame(page, k: int) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function(f"() => {FRAME}?.dataset.frame === '{k}'")


def band_fraction(pixels: np.ndarray) -> float:
    """Where the bright band is across the drawn image: its centre over the image width."""
    near = lambda rgb: np.abs(pixels - np.asarray(rgb, dtype=np.int16)).sum(axis=2) < 60  # noqa: E731
    low, high = near(VIRIDIS_LOW), near(VIRIDIS_HIGH)
    image_cols = np.nonzero((low | high).any(axis=0))[0]
    band_cols = np.nonzero(high.any(axis=0))[0]
    assert image_cols.size > 20 and band_cols.size > 0, "no frame drawn"
    left, width = image_cols.min(), image_cols.max() + 1 - image_cols.min()
    return float((band_cols.mean() + 0.5 - left) / width)


@pytest.mark.parametrize("kind", ["swmr", "append"])
def test_refresh_and_follow_a_file_being_written(  # type: ignore[no-untyped-def]
    page, live_server, viewer_world, built_viewer, writers, kind: str, tmp_path: Path
) -> None:
    file = f"raw/live_{kind}.h5"
    target = viewer_world / file
    writer = Writer(target, kind)
    writers.append(writer)
    writer.start(3)

    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/h5/meta" in r.url else None)
    base = live_server.url
    sign_in(page, base, "participant")
    page.goto(f"{base}/proposals/{NUMBER}/viewer?file={file}&path=/entry/frames")
    page.locator("[role=treeitem][data-path='/entry/frames']").wait_for()
    page.wait_for_function(f"() => {SLIDER_MAX} === '2'")  # H5Web's slider: frames 0–2
    page.evaluate("window.__sameDocument = true")  # gone if the page is ever reloaded

    # Refresh: H5Web reads the file again and shows its new length, on the same dataset.
    writer.grow(2)
    assert h5py_frames(target).shape == (5, ROWS, COLS)
    page.wait_for_timeout(300)
    assert page.evaluate(f"() => {SLIDER_MAX}") == "2"  # H5Web keeps what it read
    page.get_by_test_id("refresh").click()
    page.wait_for_function(f"() => {SLIDER_MAX} === '4'")
    assert page.get_by_test_id("viewer-path").inner_text() == "/entry/frames"
    page.locator("[role=treeitem][data-path='/entry/frames'][aria-selected=true]").wait_for()

    # The frame player reads the new length too.
    page.get_by_test_id("mode-frames").click()
    wait_frame(page, 0)
    assert page.get_by_test_id("frame-index").inner_text().startswith("Frame 0 / 4")

    # Follow: the last frame at once, then each new last frame on its own.
    page.get_by_test_id("follow").click()
    wait_frame(page, 4)
    page.wait_for_function("() => location.search.includes('follow=1')")
    status = page.get_by_test_id("live-status")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=live-status]')?.dataset.length === '5'"
    )
    assert status.get_attribute("data-changed") == ""
    for count in (1, 2):
        writer.grow(count)
        wait_frame(page, writer.length - 1)
    index = page.get_by_test_id("frame-index")
    assert index.inner_text().startswith("Frame 7 / 7")
    assert page.get_by_test_id("frame-slider").get_attribute("max") == "7"
    page.wait_for_function(
        "() => document.querySelector('[data-testid=live-status]')?.dataset.length === '8'"
    )
    assert status.get_attribute("data-shape") == f"8,{ROWS},{COLS}"
    assert status.get_attribute("data-changed") != ""

    # The last frame on screen is the one h5py reads from the file.
    frames = h5py_frames(target)
    assert frames.shape == (8, ROWS, COLS)
    last = frames[7]
    stats = page.get_by_test_id("frame-stats")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=frame-index]')?.dataset.selection === '7,:,:'"
    )
    assert float(stats.get_attribute("data-min")) == pytest.approx(last.min(), rel=1e-12)
    assert float(stats.get_attribute("data-max")) == pytest.approx(last.max(), rel=1e-12)
    assert float(stats.get_attribute("data-mean")) == pytest.approx(last.mean(), rel=1e-12)
    # The colour bar spans this frame's values (the range is taken again on each growth).
    bound = "document.querySelector('[data-testid=stack-player] [aria-label^=\"%s: \"]')"
    page.wait_for_function(
        f"() => Math.abs(Number({bound % 'Min'}?.textContent) - {last.min()}) < 0.01 * {last.min()}"
    )
    top = float(page.locator("[data-testid=stack-player] [aria-label^='Max: ']").inner_text())
    assert top == pytest.approx(last.max(), rel=0.01)
    pixels = canvas_pixels_in(page, "stack-player")
    shoot(page, f"viewer-live-{kind}.png")
    assert has_colour(pixels, VIRIDIS_LOW) and has_colour(pixels, VIRIDIS_HIGH)
    band = np.nonzero(last[0] > last.min() + 50.0)[0]
    expected = (band.mean() + 0.5) / COLS
    assert abs(band_fraction(pixels) - expected) < 0.04, (band_fraction(pixels), expected)
    with page.expect_download() as info:
        page.get_by_test_id("frame-npy").click()
    saved = tmp_path / "last.npy"
    info.value.save_as(saved)
    np.testing.assert_array_equal(np.load(saved), last)

    # Hidden tab: no polls; visible again: polling resumes.
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    page.wait_for_timeout(500)
    before = len(polls)
    page.wait_for_timeout(5000)
    assert len(polls) == before, "polled while the tab was hidden"
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', { configurable: true, get: () => false });
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    page.wait_for_timeout(1500)
    assert len(polls) > before, "polling did not resume when the tab was shown again"

    # The writer never failed to open or append, and ends cleanly.
    assert writer.stop() == 0
    assert page.evaluate("window.__sameDocument === true")  # never reloaded

    # A poll that fails (the file is gone) stops following, with the server's message.
    target.unlink()
    alert = page.get_by_test_id("live-error")
    alert.wait_for()
    assert "File not found" in alert.inner_text()
    assert page.get_by_test_id("follow").get_attribute("aria-pressed") == "false"
    page.wait_for_function("() => !location.search.includes('follow=1')")


def test_a_follow_link_reopens_following(  # type: ignore[no-untyped-def]
    page, live_server, viewer_world, built_viewer, writers
) -> None:
    file = "raw/live_link.h5"
    writer = Writer(viewer_world / file, "append")
    writers.append(writer)
    writer.start(4)
    base = live_server.url
    sign_in(page, base, "participant")
    page.goto(
        f"{base}/proposals/{NUMBER}/viewer?file={file}&path=/entry/frames"
        "&view=frames&frame=0&follow=1"
    )
    wait_frame(page, 3)  # the last frame, not the link's frame 0
    assert page.get_by_test_id("follow").get_attribute("aria-pressed") == "true"
    writer.grow(1)
    wait_frame(page, 4)
    last = h5py_frames(viewer_world / file)[4]
    page.wait_for_function(f"() => {FRAME}?.dataset.selection === '4,:,:'")
    stats = page.get_by_test_id("frame-stats")
    assert float(stats.get_attribute("data-mean")) == pytest.approx(last.mean(), rel=1e-12)
    assert writer.stop() == 0
