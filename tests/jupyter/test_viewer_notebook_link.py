"""The viewer's "Open in a notebook" sends the slice on screen (H5Web's slicing slider),
in a real browser against a live server, on the demo's projection stack."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from beamdesk.demo.files import StackShape, write_projection_stack
from beamdesk.portal.models import ProposalState
from beamdesk.web.frontend import entry_assets
from tests.factories import PASSWORD, make_proposal, make_world

pytestmark = pytest.mark.browser
NUMBER = "20260041"
FILE = "raw/tomo_stack.nxs"
FRAMES = 6


@pytest.fixture
def stack(sessions, settings) -> Path:  # type: ignore[no-untyped-def]
    if entry_assets("viewer.html") is None:
        pytest.fail("The viewer front end is not built: run 'make frontend'")
    with sessions() as db:
        world = make_world(db)
        make_proposal(db, world, NUMBER, ProposalState.data_collected)
        db.commit()
    path = settings.data_root / NUMBER / FILE
    write_projection_stack(
        path, start=datetime(2026, 3, 2, tzinfo=UTC), shape=StackShape(FRAMES, 40, 48)
    )
    return path


def test_open_in_a_notebook_sends_the_frame_on_screen(page, live_server, stack) -> None:  # type: ignore[no-untyped-def]
    base = live_server.url
    page.goto(f"{base}/login")
    page.fill("input[name=username]", "pi")
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"{base}/proposals")
    sent: list[dict[str, list[str]]] = []
    answers: list[int] = []

    def record(request) -> None:  # type: ignore[no-untyped-def]
        if request.method == "POST" and request.url.endswith(f"/proposals/{NUMBER}/notebook"):
            sent.append(parse_qs(request.post_data or "", keep_blank_values=True))

    page.on("request", record)
    page.on(
        "response",
        lambda r: answers.append(r.status) if r.url.endswith("/notebook") else None,
    )
    page.goto(f"{base}/proposals/{NUMBER}/viewer?file={FILE}&path=/entry/data/data")
    slider = page.locator("[role=slider][aria-labelledby='h5w-slider-0-label']")
    slider.wait_for()
    slider.focus()
    page.keyboard.press("End")  # the last projection
    page.wait_for_function(
        "() => document.querySelector(\"[aria-labelledby='h5w-slider-0-label']\")"
        f"?.getAttribute('aria-valuenow') === '{FRAMES - 1}'"
    )
    page.get_by_test_id("viewer-notebook").locator("button").click()
    page.wait_for_load_state()
    assert len(sent) == 1, sent
    form = sent[0]
    assert form["file"] == [FILE] and form["path"] == ["/entry/data/data"]
    assert form["selection"] == [str(FRAMES - 1)]
    # The portal accepted all of it (a 422 would be a bad selection); only the hub is
    # missing in this test.
    assert answers == [503], answers

    # The NXdata group: H5Web shows (and slices) its signal, and so does the notebook.
    page.goto(f"{base}/proposals/{NUMBER}/viewer?file={FILE}&path=/entry/data")
    slider.wait_for()
    slider.focus()
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "() => document.querySelector(\"[aria-labelledby='h5w-slider-0-label']\")"
        "?.getAttribute('aria-valuenow') === '1'"
    )
    page.get_by_test_id("viewer-notebook").locator("button").click()
    page.wait_for_load_state()
    assert sent[1]["path"] == ["/entry/data"] and sent[1]["selection"] == ["1"], sent
    assert answers == [503, 503], answers

    # The frame player on screen: H5Web's hidden slider is not what one looks at.
    page.goto(f"{base}/proposals/{NUMBER}/viewer?file={FILE}&path=/entry/data/data")
    slider.wait_for()
    page.get_by_test_id("mode-frames").click()
    page.get_by_test_id("viewer-notebook").locator("button").click()
    page.wait_for_load_state()
    assert len(sent) == 3 and sent[2]["selection"] == [""], sent
