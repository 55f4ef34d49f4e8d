"""Portal pages render for every persona and show only what each may see."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from beamdesk.db import utcnow
from beamdesk.portal.models import ProposalState
from tests.factories import make_proposal, make_world


@pytest.fixture
def site(app, sessions):  # type: ignore[no-untyped-def]
    with sessions() as db:
        world = make_world(db, tokens=True)
        make_proposal(db, world, "20260001", ProposalState.under_review)
        make_proposal(
            db, world, "20260002", ProposalState.closed, release_date=utcnow() - timedelta(days=1)
        )
        make_proposal(db, world, "20260003", ProposalState.draft)
        db.commit()
    with TestClient(app) as client:

        def get(persona: str | None, url: str):  # type: ignore[no-untyped-def]
            headers = {"Authorization": f"Bearer {world.tokens[persona]}"} if persona else {}
            return client.get(url, headers=headers, follow_redirects=False)

        yield get


def test_pages_render_for_each_persona(site) -> None:  # type: ignore[no-untyped-def]
    r = site("pi", "/proposals")
    assert r.status_code == 200
    assert all(n in r.text for n in ["20260001", "20260002", "20260003"])
    r = site("pi", "/proposals/20260001")
    assert r.status_code == 200 and "under review" in r.text
    assert "Zinc" not in r.text  # nothing leaks from other fixtures
    r = site("office", "/office")
    assert r.status_code == 200 and "20260001" in r.text and "20260003" not in r.text  # drafts
    r = site("reviewer", "/reviews")
    assert r.status_code == 200 and "20260001" in r.text
    r = site("reviewer", "/proposals/20260001")
    assert r.status_code == 200 and "review-form" in r.text
    # The outsider's list is empty, but the released proposal is in the public catalogue.
    assert "20260001" not in site("outsider", "/proposals").text
    assert site("outsider", "/proposals/20260001").status_code == 404
    r = site(None, "/catalogue")
    assert "20260002" in r.text and "20260001" not in r.text
    assert site(None, "/proposals/20260002").status_code == 200
    assert site(None, "/proposals/20260001").status_code == 303  # to the sign-in page
    assert site("outsider", "/office").status_code == 404
    assert site(None, "/").status_code == 200
    assert site("pi", "/proposals/new").status_code == 200


def test_error_pages_are_html_without_traces(site) -> None:  # type: ignore[no-untyped-def]
    r = site("pi", "/proposals/99999999")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "Traceback" not in r.text


def test_audit_log_is_for_the_user_office_only(site) -> None:  # type: ignore[no-untyped-def]
    site("pi", "/api/proposals/20260001/files/nothing-here")  # a download attempt
    r = site("office", "/office/audit")
    assert r.status_code == 200 and "token_created" in r.text
    assert site("pi", "/office/audit").status_code == 404
    assert site(None, "/office/audit").status_code == 303
