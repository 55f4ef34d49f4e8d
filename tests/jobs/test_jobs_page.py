"""The proposal's jobs page in Debian chromium: submit a map fit, watch it reach 100 %."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import sign_in
from tests.conftest import LiveServer
from tests.jobs.conftest import DS, NUMBER, JobsWorld


@pytest.fixture
def jobs_server(jobs_app: Any, jobs_world: JobsWorld) -> Iterator[LiveServer]:
    with LiveServer(jobs_app) as server:
        yield server


@pytest.mark.browser
def test_member_runs_a_job_and_sees_it_finish(page: Any, jobs_server: LiveServer) -> None:
    base = jobs_server.url
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "response",
        lambda r: (
            errors.append(r.url) if r.status >= 400 and not r.url.endswith("favicon.ico") else None
        ),
    )
    sign_in(page, base, "pi")
    page.goto(f"{base}/proposals/{NUMBER}/jobs")
    page.fill("#input", f"raw/map.h5::{DS}")
    page.fill("#config_file", "raw/fit.cfg")
    page.click("[data-testid=job-form] button[type=submit]")
    page.wait_for_url(f"{base}/proposals/{NUMBER}/jobs")
    row = page.locator("tr[data-job-id]").first
    # the page updates itself (static jobs.js polling the API) until the job is done
    page.wait_for_selector('tr[data-job-id][data-state="done"]', timeout=60_000)
    assert row.locator('[data-field="percent"]').inner_text() == "100 %"
    assert row.locator('[data-field="outputs"] a').inner_text().endswith("-map_xrf.nxs")
    assert not errors, errors


@pytest.mark.browser
def test_outsider_gets_404_page(page: Any, jobs_server: LiveServer) -> None:
    sign_in(page, jobs_server.url, "outsider")
    response = page.goto(f"{jobs_server.url}/proposals/{NUMBER}/jobs")
    assert response is not None and response.status == 404
    assert page.locator("[data-testid=job-form]").count() == 0
