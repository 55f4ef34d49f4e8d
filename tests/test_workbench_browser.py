"""The XRF workbench in Debian chromium against a live server with a job runner.

A user opens a synthetic XRF map (known element areas, tests/workbench_world.py), fits its
sum spectrum, sees the fit and the results, runs the map fit as a job and watches it reach
100 %, then opens the Fe map, a ROI map and the RGB correlator. Someone without access gets
404 for the page and for starting a job. Needs the built front end (`make frontend`): the
``built_workbench`` fixture fails, rather than skips, when it is missing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from beamdesk.settings import Settings
from beamdesk.web.frontend import entry_assets
from tests.browser import sign_in, watch_errors
from tests.conftest import LiveServer
from tests.workbench_world import MAP_FILE, MAP_PATH, NUMBER, WorkbenchWorld, build

pytestmark = pytest.mark.browser


@pytest.fixture
def built_workbench() -> None:
    if entry_assets("workbench.html") is None:
        pytest.fail("The workbench front end is not built: run 'make frontend'")


@pytest.fixture
def wb_settings(settings: Settings) -> Settings:
    """Two thread workers: quick to start (as tests/jobs/conftest.py)."""
    return settings.changed(jobs={"dask_workers": 2, "dask_processes": False})


@pytest.fixture
def wb_world(wb_settings: Settings, sessions: sessionmaker[Session]) -> WorkbenchWorld:
    return build(wb_settings, sessions)


@pytest.fixture
def wb_server(wb_settings: Settings, wb_world: WorkbenchWorld) -> Iterator[LiveServer]:
    from beamdesk.web.app import create_app

    application = create_app(wb_settings, run_jobs=True)  # the app runs the job runner
    with LiveServer(application) as server:
        yield server
    application.state.engine.dispose()


def test_fit_map_job_maps_and_rgb(
    page: Any, built_workbench: None, wb_server: LiveServer, wb_world: WorkbenchWorld
) -> None:
    base = wb_server.url
    errors = watch_errors(page)
    sign_in(page, base, "pi")
    # the proposal page links the workbench, and its file list links XRF files to it
    page.goto(f"{base}/proposals/{NUMBER}")
    assert (
        page.locator("[data-testid=workbench-link]").get_attribute("href")
        == f"/proposals/{NUMBER}/workbench"
    )
    page.click(f"[data-testid='workbench-{MAP_FILE}']")
    page.wait_for_url(re.compile(r".*/workbench\?file=raw(/|%2F)xrf(/|%2F)map\.nxs$"))
    # opened with a file only: the map's dataset is found
    expect_value(page, "[data-testid=source-path]", MAP_PATH)
    # the proposal's configuration is loaded by itself (config/fit.cfg)
    page.wait_for_selector(
        "[data-testid=config-status]:has-text('Loaded config/fit.cfg')", timeout=40_000
    )
    assert "Fe K" in page.inner_text("[data-testid=chosen-groups]")
    # the periodic table: add Sr K, then take it away again (it is not in the sample)
    page.click("[data-testid=periodic-table] [data-element=Sr]")
    page.check("[data-group='Sr K']")
    assert "Sr K" in page.inner_text("[data-testid=chosen-groups]")
    page.uncheck("[data-group='Sr K']")
    assert "Sr" not in page.inner_text("[data-testid=chosen-groups]")

    page.click("[data-testid=fit-button]")
    table = page.locator("[data-testid=results-table]")
    table.wait_for(timeout=60_000)
    fe_row = table.locator("tr[data-group='Fe K']")
    area = float(fe_row.locator("td").nth(1).inner_text())
    assert area == pytest.approx(float(wb_world.truth["Fe"].sum()), rel=0.02)
    # the fit is drawn: H5Web's WebGL canvas and its SVG axes, and the residuals below
    plot = page.locator("[data-testid=spectrum-plot]")
    assert plot.locator("canvas").count() >= 1
    assert plot.locator("svg").count() >= 1
    assert page.locator("[data-testid=residual-plot] canvas").count() >= 1
    # hovering the Fe Kα peak names it
    fe_x = plot_x_for_energy(page, 6.40)
    assert fe_x is not None
    page.mouse.move(*fe_x)
    tip = page.locator("[data-testid=nearby-lines]")
    tip.wait_for(timeout=10_000)
    assert "Fe K" in tip.inner_text()

    # exports of the fit: CSV (a row per fitted channel, 60…1000), JSON, PNG
    with page.expect_download() as dl:
        page.click("[data-testid=export-fit-csv]")
    lines = Path(dl.value.path()).read_text().splitlines()
    assert lines[0].startswith('"channel","energy_keV","data","fit"') and len(lines) == 1 + 941
    with page.expect_download() as dl:
        page.click("[data-testid=export-fit-json]")
    exported = json.loads(Path(dl.value.path()).read_text())
    assert exported["groups"]["Fe K"]["area"] == pytest.approx(area, rel=1e-5)
    with page.expect_download() as dl:
        page.click("[data-testid=export-fit-png]")
    assert Path(dl.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # calibration from two clicked peaks: Fe Kα and Zn Kα (intensity-weighted Kα1/Kα2
    # energies from xraylib: 6.3996 and 8.6313 keV); the synthetic detector has
    # E = −0.010 keV + 0.020 keV × channel
    for k, (energy, known) in enumerate(((6.40, 6.3996), (8.63, 8.6313))):
        point = plot_x_for_energy(page, energy)
        assert point is not None
        page.mouse.move(*point)
        page.locator("[data-testid=nearby-lines]").wait_for()
        page.mouse.click(*point)
        page.fill(f"[data-testid=cal-energy-{k}]", str(known))
    apply = page.locator("[data-testid=cal-apply]")
    gain = float(re.search(r"\+ ([\d.]+) eV", apply.inner_text()).group(1))  # type: ignore
    assert gain == pytest.approx(20.0, rel=0.015)
    assert page.locator("[data-testid=calibration-line] canvas").count() >= 1

    # an energy window drawn with Shift + drag on the spectrum gives a ROI map
    a, b = plot_x_for_energy(page, 6.25), plot_x_for_energy(page, 6.55)
    assert a is not None and b is not None
    page.keyboard.down("Shift")
    page.mouse.move(*a)
    page.mouse.down()
    page.mouse.move(*b, steps=8)
    page.mouse.up()
    page.keyboard.up("Shift")
    caption = page.locator("[data-testid=roi-map] figcaption")
    caption.wait_for(timeout=20_000)
    low, high = (float(v) for v in re.findall(r"\d+\.\d+", caption.inner_text()))
    assert low == pytest.approx(6.25, abs=0.1) and high == pytest.approx(6.55, abs=0.1)

    # save the configuration as PyMca .cfg into config/
    page.fill("[data-testid=config-name]", "workbench_fit.cfg")
    page.click("[data-testid=config-save]")
    page.wait_for_selector("[data-testid=config-status]:has-text('Saved config/workbench_fit.cfg')")
    saved = (wb_world.folder / "config" / "workbench_fit.cfg").read_text()
    assert "[peaks]" in saved and "Fe = K" in saved

    # the map fit as a job, followed live until 100 %
    page.click("[data-testid=run-map-fit]")
    page.wait_for_selector("[data-testid=job-state][data-state=done]", timeout=90_000)
    assert page.inner_text("[data-testid=job-percent]") == "100 %"
    fe_map = page.locator("[data-testid=map-Fe_K]")
    fe_map.wait_for(timeout=30_000)
    assert fe_map.locator("canvas").count() >= 1
    tiff = fe_map.locator("[data-testid=export-Fe_K-tiff]").get_attribute("href")
    assert tiff is not None and "format=tiff" in tiff
    response = page.request.get(base + tiff)
    assert response.status == 200 and response.body()[:2] in (b"II", b"MM")

    # ROI map from an energy window
    page.fill("[data-testid=roi-min]", "6.2")
    page.fill("[data-testid=roi-max]", "6.6")
    page.click("[data-testid=roi-button]")
    page.locator("[data-testid=roi-map] canvas").first.wait_for(timeout=20_000)

    # the RGB correlator: image, scatter plot, and a selection that lights up pixels
    rgb = page.locator("[data-testid=rgb-correlator]")
    rgb.locator("[data-testid=rgb-image]").wait_for(timeout=20_000)
    assert rgb.locator("[data-testid=scatter-plot] canvas").count() >= 1
    assert page.locator("[data-testid=rgb-red]").input_value() == "Fe K"
    fe_min = float(wb_world.truth["Fe"].min())
    page.fill("[data-testid=sel-x-min]", str(fe_min + 40 * 12 - 1))  # the right quarter
    selected = page.locator("[data-testid=selected-count]")
    selected.wait_for()
    count = int(selected.inner_text().split()[0])
    # fitted Fe areas scatter by ~1 % around 1500 + 40·column: about 4 of 16 columns
    assert 3 * 12 <= count <= 5 * 12, count
    assert int(rgb.locator("[data-testid=rgb-image]").get_attribute("data-selected")) == count
    # the selected (Fe-rich, right-hand) pixels stand out on the image; the others are dimmed
    left, right = page.evaluate("""() => {
        const c = document.querySelector('[data-testid=rgb-image]');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const mean = (c0, c1) => { let s = 0, n = 0;
            for (let r = 0; r < c.height; r++) for (let x = c0; x < c1; x++) {
                const i = 4 * (r * c.width + x); s += d[i] + d[i + 1] + d[i + 2]; n++; }
            return s / n; };
        return [mean(0, 8), mean(c.width - 2, c.width)]; }""")
    assert right > 3 * left, (left, right)
    # another pair for the scatter plot
    page.select_option("[data-testid=scatter-y]", "Zn K")
    rgb.get_by_text("Zn K vs Fe K").wait_for()
    # Shift + drag a box over the right part of the scatter plot: those pixels are selected
    page.click("text=clear")
    box = rgb.locator("[data-testid=scatter-plot] canvas").first.bounding_box()
    assert box is not None
    page.keyboard.down("Shift")
    page.mouse.move(box["x"] + 0.6 * box["width"], box["y"] + 0.02 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.99 * box["width"], box["y"] + 0.98 * box["height"], steps=10)
    page.mouse.up()
    page.keyboard.up("Shift")
    count = int(page.locator("[data-testid=selected-count]").inner_text().split()[0])
    assert 0 < count < 12 * 16, count
    assert int(rgb.locator("[data-testid=rgb-image]").get_attribute("data-selected")) == count
    assert not errors, errors


def expect_value(page: Any, selector: str, value: str) -> None:
    page.wait_for_function(
        "([s, v]) => document.querySelector(s)?.value === v", arg=[selector, value]
    )


def plot_x_for_energy(page: Any, energy: float) -> tuple[float, float] | None:
    """Screen point over ``energy`` on the spectrum plot, from the axis' tick labels."""
    box = page.locator("[data-testid=spectrum-plot] canvas").first.bounding_box()
    ticks = page.locator("[data-testid=spectrum-plot] svg text").all()
    points = []
    for t in ticks:
        try:
            value = float((t.text_content() or "").replace("\u2212", "-"))
        except ValueError:
            continue
        b = t.bounding_box()
        if b and b["y"] > box["y"] + box["height"] - 5:  # below the canvas: x-axis ticks
            points.append((value, b["x"] + b["width"] / 2))
    if len(points) < 2 or box is None:
        return None
    (v0, x0), (v1, x1) = points[0], points[-1]
    x = x0 + (energy - v0) * (x1 - x0) / (v1 - v0)
    return x, box["y"] + box["height"] / 2


def test_outsider_gets_404(page: Any, built_workbench: None, wb_server: LiveServer) -> None:
    base = wb_server.url
    sign_in(page, base, "outsider")
    response = page.goto(f"{base}/proposals/{NUMBER}/workbench?file={MAP_FILE}")
    assert response is not None and response.status == 404
    assert page.locator("[data-testid=workbench-root]").count() == 0
    page.goto(f"{base}/proposals")
    csrf = page.locator("input[name=csrf_token]").first.input_value()
    body = {"kind": "xrf_map", "input": f"{MAP_FILE}::{MAP_PATH}", "config_file": "config/fit.cfg"}
    for url in (f"/api/proposals/{NUMBER}/jobs", f"/api/proposals/{NUMBER}/xrf/fit"):
        data = (
            body
            if url.endswith("jobs")
            else {"source": {"file": MAP_FILE, "path": MAP_PATH}, "config_file": "config/fit.cfg"}
        )
        r = page.request.post(base + url, data=data, headers={"x-csrf-token": csrf})
        assert r.status == 404, (url, r.status, r.text())
