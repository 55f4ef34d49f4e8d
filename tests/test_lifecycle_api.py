"""A proposal's whole life through the REST API, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from beamdesk.db import make_engine, make_sessionmaker
from beamdesk.web.app import create_app
from tests.factories import make_world


@pytest.fixture
def api(any_settings):  # type: ignore[no-untyped-def]
    engine = make_engine(any_settings.database_url)
    with make_sessionmaker(engine)() as db:
        world = make_world(db, tokens=True)
        db.commit()
        tokens = dict(world.tokens)
    engine.dispose()
    app = create_app(any_settings)
    with TestClient(app) as client:

        def call(persona: str | None, method: str, url: str, **kw):  # type: ignore[no-untyped-def]
            headers = {"Authorization": f"Bearer {tokens[persona]}"} if persona else {}
            return client.request(method, url, headers=headers, **kw)

        yield call
    app.state.engine.dispose()


def test_whole_life_of_a_proposal(api) -> None:  # type: ignore[no-untyped-def]
    body = {
        "title": "Iron speciation in Roman glass",
        "abstract": "XRF maps of corroded tesserae.",
        "category": "new",
        "beamline": "XRF",
        "shifts_requested": 6,
        "samples": [
            {"name": "tessera A", "formula": "SiO2", "hazards": "none", "safety_declared": True}
        ],
    }
    r = api("pi", "POST", "/api/proposals", json=body)
    assert r.status_code == 201, r.text
    number = r.json()["number"]
    assert r.json()["state"] == "draft"
    assert "submit" in r.json()["transitions"]

    # Before submission the beamline does not see it; the outsider never does.
    assert api("scientist", "GET", f"/api/proposals/{number}").status_code == 404
    assert api("outsider", "GET", f"/api/proposals/{number}").status_code == 404

    def step(persona: str, action: str, expect: str) -> dict:
        r = api(
            persona,
            "POST",
            f"/api/proposals/{number}/transitions/{action}",
            json={"comment": f"{persona} {action}"},
        )
        assert r.status_code == 200, (action, r.text)
        assert r.json()["state"] == expect
        return r.json()

    # A participant cannot submit; the PI can.
    r = api(
        "pi",
        "POST",
        f"/api/proposals/{number}/members",
        json={"username": "participant", "role": "participant"},
    )
    assert r.status_code == 200, r.text
    r = api("participant", "POST", f"/api/proposals/{number}/transitions/submit")
    assert r.status_code == 403
    step("pi", "submit", "submitted")
    assert api("pi", "PATCH", f"/api/proposals/{number}", json={"title": "x"}).status_code == 403

    step("scientist", "start_feasibility", "feasibility")
    # The scientist of another beamline cannot judge feasibility (and cannot even see it).
    r = api("other_scientist", "POST", f"/api/proposals/{number}/transitions/feasible")
    assert r.status_code == 404
    step("scientist", "feasible", "under_review")

    r = api("office", "POST", f"/api/proposals/{number}/reviewers", json={"username": "reviewer"})
    assert r.status_code == 200, r.text
    r = api(
        "reviewer",
        "POST",
        f"/api/proposals/{number}/review",
        json={"score": 4, "comment": "Sound plan."},
    )
    assert r.status_code == 200, r.text
    # The reviewer sees the proposal but not its data.
    assert api("reviewer", "GET", f"/api/proposals/{number}").status_code == 200
    # Members do not see who reviewed or what they wrote.
    assert api("pi", "GET", f"/api/proposals/{number}").json()["reviews"] == []
    office_view = api("office", "GET", f"/api/proposals/{number}").json()
    assert office_view["reviews"][0]["score"] == 4

    step("office", "accept", "accepted")
    # Scheduling needs a beamtime first.
    r = api("office", "POST", f"/api/proposals/{number}/transitions/schedule")
    assert r.status_code == 422
    end = datetime(2026, 3, 4, 8, tzinfo=UTC)
    r = api(
        "office",
        "POST",
        f"/api/proposals/{number}/beamtimes",
        json={
            "beamline": "XRF",
            "start": (end - timedelta(days=2)).isoformat(),
            "end": end.isoformat(),
            "shifts": 6,
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["release_date"].startswith("2029-03-04")  # end + 3 years
    step("office", "schedule", "scheduled")
    step("scientist", "collect", "data_collected")

    # The PI extends the embargo once by two years; a second time is refused.
    r = api("pi", "POST", f"/api/proposals/{number}/embargo/extend")
    assert r.status_code == 200 and r.json()["release_date"].startswith("2031-03-04")
    assert api("pi", "POST", f"/api/proposals/{number}/embargo/extend").status_code == 403
    assert api(None, "GET", f"/api/proposals/{number}").status_code == 404

    step("office", "close", "closed")
    r = api("office", "POST", f"/api/proposals/{number}/transitions/publish")
    assert r.status_code == 409 and "DOI" in r.json()["detail"]
    assert (
        api(
            "office", "POST", f"/api/proposals/{number}/doi", json={"doi": "10.5072/bd.1"}
        ).status_code
        == 200
    )
    step("office", "publish", "published")

    # Releasing early opens the proposal to anonymous visitors at once.
    r = api("pi", "POST", f"/api/proposals/{number}/embargo/release")
    assert r.status_code == 200 and r.json()["released"] is True
    assert api(None, "GET", f"/api/proposals/{number}").status_code == 200

    history = api("pi", "GET", f"/api/proposals/{number}").json()["history"]
    actions = [h["action"] for h in history]
    assert actions == [
        "create",
        "submit",
        "start_feasibility",
        "feasible",
        "accept",
        "schedule",
        "collect",
        "extend_embargo",
        "close",
        "publish",
        "release_early",
    ]
    assert history[1] == {
        **history[1],
        "from_state": "draft",
        "to_state": "submitted",
        "actor": "pi",
        "comment": "pi submit",
    }


def test_bad_input_gives_clear_problems(api) -> None:  # type: ignore[no-untyped-def]
    r = api("pi", "POST", "/api/proposals", json={"title": ""})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem")
    r = api("pi", "POST", "/api/proposals", json={"title": "T", "beamline": "NOPE"})
    assert r.status_code == 422 and "NOPE" in r.json()["detail"]
    number = api("pi", "POST", "/api/proposals", json={"title": "T"}).json()["number"]
    r = api("pi", "POST", f"/api/proposals/{number}/transitions/submit")
    assert r.status_code == 422 and "abstract" in r.json()["detail"]
    r = api("pi", "POST", f"/api/proposals/{number}/transitions/fly")
    assert r.status_code == 422
    r = api("pi", "POST", f"/api/proposals/{number}/transitions/accept")
    assert r.status_code == 409
    assert api(None, "POST", "/api/proposals", json={"title": "T"}).status_code in {401, 403}
    assert "Traceback" not in r.text


def test_listing_shows_only_what_the_caller_may_see(api) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        api("pi", "POST", "/api/proposals", json={"title": f"P{i}"})
    mine = api("pi", "GET", "/api/proposals?limit=2").json()
    assert mine["total"] == 3 and len(mine["items"]) == 2
    assert api("outsider", "GET", "/api/proposals").json()["total"] == 0
    assert api(None, "GET", "/api/proposals").json()["total"] == 0
    assert api("office", "GET", "/api/proposals").json()["total"] == 3
