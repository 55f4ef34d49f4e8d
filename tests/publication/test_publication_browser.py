"""An anonymous visitor finds a released collection in the public catalogue, opens its
landing page, downloads a file and copies the BibTeX (real chromium, live server)."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from beamdesk.portal.minting import DraftOnly
from tests.publication.conftest import Facility, auth

pytestmark = pytest.mark.browser


def test_anonymous_visitor_finds_downloads_and_cites(
    pinned_app, live_server, page, facility: Facility
) -> None:  # type: ignore[no-untyped-def]
    base = live_server.url
    pinned_app.state.minter = DraftOnly("10.80123")
    with httpx.Client(base_url=base, headers=auth(facility, "pi")) as api:
        ids = [i for k, i in facility.dataset_ids.items() if k.startswith("20260001/")]
        made = api.post(
            "/api/proposals/20260001/collections",
            json={
                "title": "Trace copper in bronze age tools",
                "abstract": "XRF maps.",
                "keywords": ["archaeometry"],
                "dataset_ids": ids,
            },
        )
        assert made.status_code == 201, made.text
        cid = made.json()["id"]
        assert api.post(f"/api/collections/{cid}/publish").status_code == 200
        # A draft collection on the embargoed proposal must not be listed.
        api.post("/api/proposals/20260002/collections", json={"title": "Secret draft"})

    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.goto(f"{base}/catalogue")
    table = page.locator("[data-testid=catalogue-collections]")
    assert "Secret draft" not in table.inner_text()
    table.get_by_role("link", name="Trace copper in bronze age tools").click()
    page.wait_for_url(f"{base}/collections/{cid}")
    assert page.text_content("[data-testid=collection-title]") == "Trace copper in bronze age tools"
    assert "Chadwick" in page.text_content("[data-testid=creators]")
    assert "10.80123/elettra.20260001." in page.text_content("[data-testid=doi]")
    ld = json.loads(page.text_content("#schema-org"))
    assert ld["@type"] == "Dataset" and ld["name"] == "Trace copper in bronze age tools"

    with page.expect_download() as info:
        page.get_by_role("link", name="raw/scan_0002.nxs").click()
    download = info.value
    assert download.suggested_filename == "scan_0002.nxs"
    saved = download.path()
    assert saved is not None
    with open(saved, "rb") as fh:
        assert fh.read() == facility.files["20260001/raw/scan_0002.nxs"].read_bytes()

    page.click("[data-testid=copy-bibtex]")
    page.wait_for_function(
        "document.querySelector('[data-testid=copy-status]').textContent.length > 0"
    )
    assert page.text_content("[data-testid=copy-status]") == "Copied."
    clipboard = page.evaluate("navigator.clipboard.readText()")
    assert clipboard == page.text_content("[data-testid=bibtex]")
    assert re.match(r"@misc\{Chadwick2026_\d+,", clipboard)
    assert f"doi = {{10.80123/elettra.20260001.{cid}}}" in clipboard
