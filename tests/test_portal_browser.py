"""The portal in a real browser (Debian chromium via Playwright) against a live server."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from beamdesk.db import utcnow
from beamdesk.portal.models import Dataset, ProposalState
from tests.browser import sign_in
from tests.factories import make_proposal, make_world

pytestmark = pytest.mark.browser


@pytest.fixture
def world(sessions):  # type: ignore[no-untyped-def]
    with sessions() as db:
        w = make_world(db)
        db.commit()
        return w


def sign_out(page) -> None:  # type: ignore[no-untyped-def]
    page.click("text=Sign out")
    page.wait_for_load_state()


def test_pi_submits_and_user_office_schedules(page, live_server, world) -> None:  # type: ignore[no-untyped-def]
    base = live_server.url
    sign_in(page, base, "pi")
    page.click("[data-testid=new-proposal]")
    page.fill("#title", "Zinc uptake in plant roots")
    page.fill("#abstract", "XRF maps of Zn and Fe in Arabidopsis root sections.")
    page.select_option("#beamline", "XRF")
    page.fill("#shifts", "6")
    page.fill("#sample_name", "root section 1")
    page.fill("#sample_formula", "C6H10O5")
    page.fill("#sample_hazards", "none")
    page.check("input[name=safety_declared]")
    page.click("[data-testid=proposal-form] button[type=submit]")
    assert page.text_content("[data-testid=state]") == "draft"
    number = page.text_content("[data-testid=number]")
    page.click("[data-testid=do-submit]")
    assert page.text_content("[data-testid=state]") == "submitted"
    assert "submit" in page.text_content("[data-testid=history]")
    sign_out(page)

    sign_in(page, base, "office")
    page.goto(f"{base}/proposals/{number}")
    for action, state in [
        ("start_feasibility", "feasibility"),
        ("feasible", "under review"),
        ("accept", "accepted"),
    ]:
        page.click(f"[data-testid=do-{action}]")
        assert page.text_content("[data-testid=state]") == state
    start = utcnow() + timedelta(days=30)
    page.fill("#bt-start", start.strftime("%Y-%m-%dT08:00"))
    page.fill("#bt-end", (start + timedelta(days=2)).strftime("%Y-%m-%dT08:00"))
    page.click("[data-testid=beamtime-form] button[type=submit]")
    assert "XRF" in page.text_content("[data-testid=beamtimes]")
    page.click("[data-testid=do-schedule]")
    assert page.text_content("[data-testid=state]") == "scheduled"
    history = page.text_content("[data-testid=history]")
    assert "office" in history and "accepted → scheduled" in history
    # The release date is the end of the beamtime plus three years.
    expected = (start + timedelta(days=2)).replace(year=start.year + 3).strftime("%Y-%m-%d")
    assert page.text_content("[data-testid=release-date]").startswith(expected)
    if os.environ.get("BEAMDESK_SCREENSHOTS"):
        page.screenshot(
            path=os.path.join(os.environ["BEAMDESK_SCREENSHOTS"], "proposal.png"), full_page=True
        )


def test_member_sees_files_another_user_gets_404(
    page, live_server, world, sessions, settings
) -> None:  # type: ignore[no-untyped-def]
    number = "20269001"
    with sessions() as db:
        proposal = make_proposal(
            db,
            world,
            number,
            ProposalState.data_collected,
            release_date=utcnow() + timedelta(days=900),
        )
        folder = settings.data_root / number / "raw"
        folder.mkdir(parents=True)
        (folder / "scan_0001.dat").write_text("# energy counts\n7.1 10\n7.2 12\n")
        db.add(
            Dataset(
                proposal_id=proposal.id,
                path="raw/scan_0001.dat",
                size=31,
                mtime=utcnow(),
                title="energy scan",
            )
        )
        db.commit()
    base = live_server.url

    sign_in(page, base, "participant")
    page.goto(f"{base}/proposals/{number}")
    files = page.text_content("[data-testid=files]")
    assert "raw/scan_0001.dat" in files
    with page.expect_download() as download:
        page.click("text=raw/scan_0001.dat")
    assert Path(download.value.path()).read_text() == "# energy counts\n7.1 10\n7.2 12\n"
    sign_out(page)

    sign_in(page, base, "outsider")
    response = page.goto(f"{base}/proposals/{number}")
    assert response.status == 404
    assert "scan_0001" not in page.content()
    response = page.goto(f"{base}/api/proposals/{number}/files/raw/scan_0001.dat")
    assert response.status == 404
