"""Error pages (404 of an unknown address, of a proposal one may not see) keep the page
header of every other page: a signed-in user sees their name and "Sign out", not "Sign in"."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from beamdesk.portal.auth import create_user
from beamdesk.portal.models import GlobalRole, ProposalState
from tests.conftest import PASSWORD
from tests.factories import make_proposal, make_world
from tests.test_auth import csrf_of, sign_in

WHOAMI = re.compile(r'<span class="username" data-testid="whoami">([^<]*)</span>')
SIGN_IN = '<a href="/login">Sign in</a>'


@pytest.fixture
def client(app, sessions):  # type: ignore[no-untyped-def]
    with sessions() as db:
        world = make_world(db, tokens=True)
        make_proposal(db, world, "20260001", ProposalState.scheduled)
        create_user(
            db,
            "grace",
            GlobalRole.user,
            password=PASSWORD,
            email="grace@example.org",
            full_name="Grace Hopper",
        )
        db.commit()
    with TestClient(app) as client:
        yield client


def header_of(html: str) -> str:
    """The page's top bar (navigation, who is signed in), without the title."""
    return html.split('<header class="topbar">', 1)[1].split("</header>", 1)[0]


def assert_plain_404(r) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    for leak in ("Traceback", 'File "', "sqlalchemy", "Exception", "beamdesk/"):
        assert leak not in r.text, leak
    assert "<h1>Not found</h1>" in r.text


def test_signed_in_404_shows_the_name_and_sign_out(client) -> None:  # type: ignore[no-untyped-def]
    assert sign_in(client, "grace").status_code == 303
    ordinary = header_of(client.get("/proposals").text)  # what every other page shows

    for url in ("/no/such/page", "/proposals/20260001", "/proposals/99999999/viewer"):
        r = client.get(url, follow_redirects=False)
        assert_plain_404(r)
        head = header_of(r.text)
        assert WHOAMI.findall(head) == ["Grace Hopper (user)"], url
        assert SIGN_IN not in head, url
        assert 'action="/logout"' in head and "Sign out" in head, url
        # The same navigation as on an ordinary page (the CSRF token is the session's).
        assert head == ordinary, url

    # Its "Sign out" works: the form carries the session's CSRF token.
    r = client.get("/no/such/page")
    token = re.search(r'name="csrf_token" value="([^"]+)"', header_of(r.text))
    assert token and token.group(1) == csrf_of(client, "/proposals")
    r = client.post("/logout", data={"csrf_token": token.group(1)}, follow_redirects=False)
    assert r.status_code == 303
    r = client.get("/no/such/page")
    assert_plain_404(r)
    assert SIGN_IN in header_of(r.text) and not WHOAMI.search(r.text)


def test_signed_out_404_shows_sign_in(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/no/such/page")
    assert_plain_404(r)
    head = header_of(r.text)
    assert SIGN_IN in head and not WHOAMI.search(head) and "Sign out" not in head


def test_404_of_a_proposal_one_may_not_see(client, sessions) -> None:  # type: ignore[no-untyped-def]
    # An outsider (signed in with the form) gets 404 for a proposal not theirs, named.
    assert sign_in(client, "outsider").status_code == 303
    for url in ("/proposals/20260001", "/proposals/20260001/viewer?file=raw/a.nxs"):
        r = client.get(url, follow_redirects=False)
        assert_plain_404(r)
        assert WHOAMI.findall(header_of(r.text)) == ["outsider (user)"], url
    # The same answer as for a proposal that does not exist: nothing tells them apart.
    body = client.get("/proposals/20260001").text.split("</header>", 1)[1]
    other = client.get("/proposals/99999999").text.split("</header>", 1)[1]
    assert body.replace("20260001", "N") == other.replace("99999999", "N")


def test_404_with_an_api_token_and_after_revocation(client, app) -> None:  # type: ignore[no-untyped-def]
    # Pages asked for with a token show that token's user, like other pages.
    with app.state.sessionmaker() as db:
        from beamdesk.portal.auth import create_api_token
        from beamdesk.portal.models import User

        pi = db.query(User).filter_by(username="pi").one()
        token = create_api_token(db, pi, name="t").token
        db.commit()
    r = client.get("/no/such/page", headers={"Authorization": f"Bearer {token}"})
    assert_plain_404(r)
    assert WHOAMI.findall(header_of(r.text)) == ["pi (user)"]
    # An unknown token is no one (and no stack trace).
    r = client.get("/no/such/page", headers={"Authorization": "Bearer bd_nonsense"})
    assert_plain_404(r)
    assert SIGN_IN in header_of(r.text)

    # A session ended elsewhere (account disabled) is anonymous on the 404 too.
    assert sign_in(client, "grace").status_code == 303
    assert WHOAMI.search(client.get("/no/such/page").text)
    with app.state.sessionmaker() as db:
        grace = db.query(User).filter_by(username="grace").one()
        grace.is_active = False
        db.commit()
    r = client.get("/no/such/page")
    assert_plain_404(r)
    assert SIGN_IN in header_of(r.text) and not WHOAMI.search(r.text)
