"""The XRF workbench in Debian chromium against a live server with a job runner.

A user opens a synthetic XRF map (known element areas, tests/workbench_world.py), fits its
sum spectrum, sees the fit and the results, runs the map fit as a job and watches it reach
100 %, then opens the Fe map, a ROI map and the RGB correlator. Someone without access gets
404 for the page and for starting a job. Needs the built front end (`make frontend`): the
``built_workbench`` fixture fails, rather than skips, when it is missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from beamdesk.settings import Settings
from beamdesk.web.frontend import entry_assets
from tests.conftest import LiveServer
from tests.factories import PASSWORD
from tests.workbench_world import MAP_FILE, MAP_PATH, NUMBER, WorkbenchWorld, build

pytestmark = pytest.mark.browser


@pytest.fixture
def built_workbench() -> None:
    if entry_assets("workbench.html") is None:
        pytest.fail("The workbench front end is not built: run 'make frontend'")


@pytest.fixture
def wb_settings(settings: Settings) -> Settings:
    """Two thread workers: quick to start (as tests/jobs/conftest.py)."""
    return replace(settings, dask_workers=2, extra={"dask_processes": "0"})


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


def sign_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"{base}/proposals")


def watch_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("favicon.ico") else None)
    return errors


def test_fit_map_job_maps_and_rgb(page: Any, built_workbench: None, wb_server: LiveServer,
                                  wb_world: WorkbenchWorld) -> None:
    base = wb_server.url
    errors = watch_errors(page)
    sign_in(page, base, "pi")
    # the proposal page links the workbench
    page.goto(f"{base}/proposals/{NUMBER}")
    page.click("[data-testid=workbench-link]")
    page.wait_for_url(re.compile(r".*/workbench$"))
    page.goto(f"{base}/proposals/{NUMBER}/workbench?file={MAP_FILE}&path={MAP_PATH}")
    # the proposal's configuration is loaded by itself (config/fit.cfg)
    page.wait_for_selector("[data-testid=config-status]:has-text('Loaded config/fit.cfg')")
    assert "Fe K" in page.inner_text("[data-testid=chosen-groups]")

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
    if fe_x is not None:
        page.mouse.move(*fe_x)
        tip = page.locator("[data-testid=nearby-lines]")
        tip.wait_for(timeout=10_000)
        assert "Fe K" in tip.inner_text()

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
    assert not errors, errors


def plot_x_for_energy(page: Any, energy: float) -> tuple[float, float] | None:
    """Screen point over ``energy`` on the spectrum plot, from the axis' tick labels."""
    box = page.locator("[data-testid=spectrum-plot] canvas").first.bounding_box()
    ticks = page.locator("[data-testid=spectrum-plot] svg text").all()
    points = []
    for t in ticks:
        try:
            value = float(t.inner_text())
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
        data = body if url.endswith("jobs") else {
            "source": {"file": MAP_FILE, "path": MAP_PATH}, "config_file": "config/fit.cfg"}
        r = page.request.post(base + url, data=data, headers={"x-csrf-token": csrf})
        assert r.status == 404, (url, r.status, r.text())
