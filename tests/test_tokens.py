"""Personal API tokens: shown once, stored hashed, usable, expiring, revocable, own only."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from beamdesk.db import make_engine, make_sessionmaker, utcnow
from beamdesk.portal.auth import create_api_token, create_user, user_from_token
from beamdesk.portal.models import ApiToken, GlobalRole, User
from beamdesk.settings import Settings
from beamdesk.web.app import create_app
from beamdesk.web.ratelimit import SlidingWindowLimiter
from tests.conftest import PASSWORD
from tests.test_auth import csrf_of, sign_in

TOKEN_RE = re.compile(r"bd_[A-Za-z0-9_-]{43}")


@pytest.fixture
def site(any_settings: Settings) -> Iterator[TestClient]:
    """The app on SQLite and on PostgreSQL, with alice and bob."""
    app = create_app(any_settings)
    with app.state.sessionmaker() as db:
        create_user(db, "alice", GlobalRole.user, password=PASSWORD)
        create_user(db, "bob", GlobalRole.user, password=PASSWORD)
        db.commit()
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


def db_of(client: TestClient) -> Session:
    return client.app.state.sessionmaker()


def api_create(client: TestClient, **body: object):  # type: ignore[no-untyped-def]
    headers = {"X-CSRF-Token": csrf_of(client, "/tokens")}
    return client.post("/api/tokens", json=body, headers=headers)


def test_token_is_shown_once_and_stored_only_hashed(site) -> None:  # type: ignore[no-untyped-def]
    sign_in(site, "alice")
    r = site.post(
        "/tokens",
        data={"name": "notebook", "expires_days": "30", "csrf_token": csrf_of(site, "/tokens")},
    )
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    tokens = TOKEN_RE.findall(r.text)
    assert len(set(tokens)) == 1
    token = tokens[0]
    assert 'src="/static/tokens.js"' in r.text and "<script>" not in r.text
    # Shown once: the list page has its prefix but not the secret.
    listing = site.get("/tokens").text
    assert token not in listing and token[:10] in listing and "active" in listing

    with db_of(site) as db:
        row = db.scalar(select(ApiToken))
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert row.prefix == token[:10]
        assert row.expires_at - row.created_at == timedelta(days=30)
        # No column of any row of the tables involved holds the secret.
        for table in ("api_tokens", "audit_events", "users"):
            for values in db.execute(text(f"SELECT * FROM {table}")):
                assert not any(token in str(v) for v in values), table

    r = site.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["username"] == "alice"


def test_api_create_list_and_revoke(site) -> None:  # type: ignore[no-untyped-def]
    sign_in(site, "alice")
    r = api_create(site, name="cron job", expires_days=7)
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    made = r.json()
    assert set(made) == {"id", "token", "prefix", "expires_at"} and TOKEN_RE.fullmatch(
        made["token"]
    )
    expires = datetime.fromisoformat(made["expires_at"])
    assert abs(expires - (utcnow() + timedelta(days=7))) < timedelta(minutes=1)
    bearer = {"Authorization": f"Bearer {made['token']}"}

    listed = site.get("/api/tokens", headers=bearer).json()
    assert [t["name"] for t in listed] == ["cron job"] and listed[0]["state"] == "active"
    assert made["token"] not in site.get("/api/tokens").text
    assert listed[0]["last_used_at"] is not None  # this very call used it

    # Revoking needs no CSRF token with Bearer auth; afterwards the token is dead.
    assert site.delete(f"/api/tokens/{made['id']}", headers=bearer).status_code == 204
    r = site.get("/api/me", headers=bearer)
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem")
    assert site.get("/api/tokens").json()[0]["state"] == "revoked"


def test_creation_rules(site) -> None:  # type: ignore[no-untyped-def]
    assert site.post("/api/tokens", json={"name": "x"}).status_code in (401, 403)
    sign_in(site, "alice")
    assert site.post("/api/tokens", json={"name": "x"}).status_code == 403  # no CSRF header
    for days in (0, 366, -1):
        assert api_create(site, name="x", expires_days=days).status_code == 422
    assert api_create(site, name="", expires_days=5).status_code == 422
    for days in ("0", "366", "never"):
        r = site.post(
            "/tokens",
            data={"name": "x", "expires_days": days, "csrf_token": csrf_of(site, "/tokens")},
        )
        assert r.status_code == 400 and "1 to 365 days" in r.text and not TOKEN_RE.search(r.text)
    # A token cannot mint tokens: a leaked one must not outlive its revocation.
    token = api_create(site, name="first").json()["token"]
    r = site.post(
        "/api/tokens", json={"name": "child"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 403
    with db_of(site) as db:
        assert [t.name for t in db.scalars(select(ApiToken))] == ["first"]


def test_expiry(any_settings: Settings) -> None:
    engine = make_engine(any_settings.database_url)
    with make_sessionmaker(engine)() as db:
        user = create_user(db, "carol", GlobalRole.user)
        start = utcnow()
        new = create_api_token(db, user, name="short", expires_days=1, now=start)
        assert user_from_token(db, new.token, now=start + timedelta(hours=23)) is user
        assert user_from_token(db, new.token, now=start + timedelta(days=1)) is None
        assert user_from_token(db, new.token[:-1] + "x", now=start) is None
        user.is_active = False
        assert user_from_token(db, new.token, now=start) is None
    engine.dispose()


def test_cannot_revoke_another_users_token(site) -> None:  # type: ignore[no-untyped-def]
    with db_of(site) as db:
        bob = db.scalar(select(User).where(User.username == "bob"))
        bobs = create_api_token(db, bob, name="bob's")
        db.commit()
        bobs_id = bobs.row.id
    sign_in(site, "alice")
    headers = {"X-CSRF-Token": csrf_of(site, "/tokens")}
    assert site.delete(f"/api/tokens/{bobs_id}", headers=headers).status_code == 404
    r = site.post(f"/tokens/{bobs_id}/revoke", data={"csrf_token": headers["X-CSRF-Token"]})
    assert r.status_code == 404
    assert site.delete("/api/tokens/999999", headers=headers).status_code == 404
    assert site.get("/api/tokens").json() == []  # bob's token is not listed for alice
    r = site.get("/api/me", headers={"Authorization": f"Bearer {bobs.token}"})
    assert r.json()["username"] == "bob"


def test_revoke_from_the_page(site) -> None:  # type: ignore[no-untyped-def]
    sign_in(site, "alice")
    made = api_create(site, name="old laptop").json()
    token = csrf_of(site, "/tokens")
    assert site.post(f"/tokens/{made['id']}/revoke").status_code == 403  # CSRF
    r = site.post(
        f"/tokens/{made['id']}/revoke", data={"csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/tokens"
    page = site.get("/tokens").text
    assert "The token is revoked." in page and "revoked" in page
    assert (
        site.get("/api/me", headers={"Authorization": f"Bearer {made['token']}"}).status_code == 401
    )


def test_anonymous_is_sent_to_sign_in(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/tokens", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/tokens"
    assert client.get("/api/tokens").status_code == 401
    assert client.get("/api/me").status_code == 401


def test_token_creation_rate_limit(app, client) -> None:  # type: ignore[no-untyped-def]
    with app.state.sessionmaker() as db:
        create_user(db, "alice", GlobalRole.user, password=PASSWORD)
        db.commit()
    sign_in(client, "alice")
    app.state.rate_limiter = SlidingWindowLimiter(limit=3, window=60)
    codes = [api_create(client, name=f"t{i}").status_code for i in range(4)]
    assert codes == [201, 201, 201, 429]
    r = client.post("/tokens", data={"name": "x", "csrf_token": csrf_of(client, "/tokens")})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 59


@pytest.mark.browser
def test_tokens_page_in_a_browser(app, live_server, page) -> None:  # type: ignore[no-untyped-def]
    """Create, copy (script from /static under the CSP) and revoke, in chromium."""
    with app.state.sessionmaker() as db:
        create_user(db, "alice", GlobalRole.user, password=PASSWORD)
        db.commit()
    base = live_server.url
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    problems: list[str] = []
    page.on(
        "console",
        lambda m: (
            problems.append(m.text)
            if m.type == "error" and "Failed to load resource" not in m.text
            else None
        ),
    )  # reported below, with URL
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on(
        "response",
        lambda r: (
            problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    page.goto(f"{base}/tokens")  # anonymous: via the sign-in page and back
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"{base}/tokens")
    page.fill("#name", "laptop")
    page.fill("#expires_days", "14")
    page.click("[data-testid=token-form] button[type=submit]")
    token = page.text_content("[data-testid=token-value]").strip()
    assert TOKEN_RE.fullmatch(token)
    page.click("[data-copy-target=new-token-value]")
    page.wait_for_selector("text=Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == token
    page.goto(f"{base}/tokens")
    assert token not in page.content()
    page.click("[data-testid^=revoke-]")
    assert page.text_content("[data-testid=token-state]") == "revoked"
    assert problems == []
