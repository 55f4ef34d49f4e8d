"""The full access matrix: personas × proposal states × embargo × actions.

The expected answers below are written from the rules of the design and of the portal
issue (not from beamdesk.portal.access): read them as the specification.

- Members (PI, participants, local contact) see their proposal in every state and read
  its data; only the PI edits the draft and manages members (the user office may too).
- An assigned reviewer sees the proposal but not its data, and reviews while under review.
- A beamline scientist sees the proposals of their beamline once submitted, with data.
- The user office sees and reads everything.
- Once the release date has passed, everyone (anonymous too) sees the proposal and reads
  its data.
- Jobs run only for members and staff, even on open data.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select

from beamdesk.db import make_engine, make_sessionmaker, utcnow
from beamdesk.portal import access
from beamdesk.portal.access import Action
from beamdesk.portal.models import Proposal, ProposalState
from tests.factories import make_proposal, make_world

S = ProposalState
PERSONAS = [
    "anonymous",
    "outsider",
    "pi",
    "participant",
    "local_contact",
    "reviewer",
    "other_reviewer",
    "scientist",
    "other_scientist",
    "office",
]
EMBARGO = ["none", "embargoed", "released"]
MEMBERS = {"pi", "participant", "local_contact"}


def expected(persona: str, state: S, embargo: str, action: str) -> bool:
    released = embargo == "released"
    has_date = embargo != "none"
    staff = persona == "scientist" and state != S.draft
    office = persona == "office"
    member = persona in MEMBERS
    pi = persona == "pi"
    if action == "view":
        return office or member or persona == "reviewer" or staff or released
    if action == "read_data":
        return office or member or staff or released
    if action == "edit":
        return pi and state == S.draft
    if action == "manage_members":
        return (pi or office) and state not in {S.closed, S.published}
    if action == "review":
        return persona == "reviewer" and state == S.under_review
    if action == "run_job":
        return office or member or staff
    if action == "release_early":
        return (pi or office) and has_date and not released
    if action == "extend":
        return (pi or office) and has_date and not released  # none extended yet
    if action.startswith("transition:"):
        name = action.split(":", 1)[1]
        table = {
            # transition: (from state, who may take it)
            "submit": (S.draft, {"pi"}),
            "withdraw": (S.submitted, {"pi"}),
            "start_feasibility": (S.submitted, {"scientist", "office"}),
            "feasible": (S.feasibility, {"scientist", "office"}),
            "not_feasible": (S.feasibility, {"scientist", "office"}),
            "accept": (S.under_review, {"office"}),
            "reject": (S.under_review, {"office"}),
            "schedule": (S.accepted, {"office"}),
            "collect": (S.scheduled, {"scientist", "office"}),
            "close": (S.data_collected, {"scientist", "office"}),
            "publish": (S.closed, {"office"}),  # proposals here have no DOI: see below
        }
        source, who = table[name]
        if name == "publish":
            return False
        return state == source and persona in who
    raise AssertionError(action)


TRANSITIONS = [
    "submit",
    "withdraw",
    "start_feasibility",
    "feasible",
    "not_feasible",
    "accept",
    "reject",
    "schedule",
    "collect",
    "close",
    "publish",
]
ACTIONS = {
    "view": Action.view_proposal,
    "read_data": Action.read_data,
    "edit": Action.edit_proposal,
    "manage_members": Action.manage_members,
    "review": Action.write_review,
    "run_job": Action.run_job,
    "release_early": Action.release_early,
    "extend": Action.extend_embargo,
}


@pytest.fixture
def matrix_world(tmp_path, database_url):  # type: ignore[no-untyped-def]
    """One proposal per (state, embargo), in a real database of each kind."""
    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    now = utcnow()
    dates = {
        "none": None,
        "embargoed": now + timedelta(days=400),
        "released": now - timedelta(days=1),
    }
    with factory() as db:
        world = make_world(db, tokens=True)
        numbers = {}
        for i, (state, embargo) in enumerate(itertools.product(S, EMBARGO)):
            number = f"2026{i:04d}"
            make_proposal(db, world, number, state, release_date=dates[embargo])
            numbers[(state, embargo)] = number
        db.commit()
        yield factory, world, numbers, now
    engine.dispose()


def test_rules_match_the_specification(matrix_world) -> None:  # type: ignore[no-untyped-def]
    factory, world, numbers, now = matrix_world
    mismatches = []
    with factory() as db:
        for (state, embargo), number in numbers.items():
            proposal = db.scalar(select(Proposal).where(Proposal.number == number))
            for persona in PERSONAS:
                user = world.users.get(persona)
                identity = access.identity_of(db.merge(user) if user else None)
                rel = access.relation(identity, proposal, now)
                for name, action in ACTIONS.items():
                    if access.may(rel, action) != expected(persona, state, embargo, name):
                        mismatches.append((persona, state.value, embargo, name))
                for t in TRANSITIONS:
                    got = access.may_transition(rel, t)
                    if got != expected(persona, state, embargo, f"transition:{t}"):
                        mismatches.append((persona, state.value, embargo, t))
    assert mismatches == []


def test_sql_filters_agree_with_the_rules(matrix_world) -> None:  # type: ignore[no-untyped-def]
    """Lists are filtered in SQL: they must show exactly what the rules allow."""
    factory, world, numbers, now = matrix_world
    with factory() as db:
        for persona in PERSONAS:
            user = world.users.get(persona)
            identity = access.identity_of(db.merge(user) if user else None)
            for clause, action in [
                (access.visible_proposals, "view"),
                (access.readable_proposals, "read_data"),
            ]:
                got = set(db.scalars(select(Proposal.number).where(clause(identity, now))))
                want = {
                    n
                    for (state, embargo), n in numbers.items()
                    if expected(persona, state, embargo, action)
                }
                assert got == want, (persona, action)


def test_http_answers_follow_the_rules(matrix_world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Through the API: a proposal one may not see, or data one may not read, is 404."""
    from fastapi.testclient import TestClient

    from beamdesk.web.app import create_app
    from tests.conftest import make_settings

    factory, world, numbers, _now = matrix_world
    settings = make_settings(tmp_path, str(factory.kw["bind"].url.render_as_string(False)))
    for number in numbers.values():
        folder = settings.data_root / number / "raw"
        folder.mkdir(parents=True)
        (folder / "scan.txt").write_text("1 2 3\n")
    app = create_app(settings)
    with TestClient(app) as client:
        for (state, embargo), number in numbers.items():
            for persona in PERSONAS:
                headers = (
                    {"Authorization": f"Bearer {world.tokens[persona]}"}
                    if persona != "anonymous"
                    else {}
                )
                r = client.get(f"/api/proposals/{number}", headers=headers)
                want = 200 if expected(persona, state, embargo, "view") else 404
                assert r.status_code == want, (persona, state, embargo, r.text)
                r = client.get(f"/api/proposals/{number}/files/raw/scan.txt", headers=headers)
                want = 200 if expected(persona, state, embargo, "read_data") else 404
                assert r.status_code == want, (persona, state, embargo, "file", r.text)
    app.state.engine.dispose()
