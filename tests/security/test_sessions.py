"""Sessions and sign-in, attacked: revocation, password changes, throttling without
lock-out or enumeration, hub sign-in links bound to the browser, and the migration that
brings it all (SQLite and PostgreSQL where the database matters).

Every check compares with facts made outside the code under test: rows read with plain
SELECTs, passwords and files the test wrote, bytes of answers, wall-clock time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

import beamdesk.models  # noqa: F401  (every table on Base.metadata)
from beamdesk.db import Base, make_engine, make_sessionmaker
from beamdesk.jupyter.signin import (
    HubTicket,
    TicketRefused,
    check_ticket,
    redeem_ticket,
)
from beamdesk.migrate import downgrade, upgrade
from beamdesk.portal.auth import create_api_token, hash_password
from beamdesk.portal.models import ProposalState, User
from beamdesk.settings import Settings
from beamdesk.web.ratelimit import SignInThrottle
from tests.conftest import PASSWORD, _fresh_postgres_database, _postgres_url, make_settings
from tests.factories import make_proposal, make_world

COOKIE = "beamdesk_session"
NUMBER = "20260301"
NOTE = "raw/notes.txt"
NOTE_TEXT = b"beamline notes of 20260301\n"
NEW_PASSWORD = "a brand new passphrase"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# ------------------------------------------------------------------ the world
@dataclass
class Place:
    settings: Settings
    app: FastAPI
    sessions: sessionmaker[Session]
    tokens: dict[str, str]
    ids: dict[str, int]

    def browser(self, ip: str = "10.0.0.1") -> TestClient:
        """A browser of its own (own cookies) at its own address."""
        return TestClient(self.app, client=(ip, 40000), follow_redirects=False)

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.sessions() as db:
            return db.execute(text(sql), params).scalar()


def make_place(settings: Settings, **overrides: Any) -> Iterator[Place]:
    from beamdesk.web.app import create_app

    settings = settings.changed(auth=overrides)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as db:
        world = make_world(db, tokens=True)
        make_proposal(db, world, NUMBER, ProposalState.data_collected)
        db.commit()
        ids = {name: u.id for name, u in world.users.items()}
        tokens = dict(world.tokens)
    note = settings.data_root / NUMBER / NOTE
    note.parent.mkdir(parents=True, exist_ok=True)
    note.write_bytes(NOTE_TEXT)
    app = create_app(settings)
    with TestClient(app):  # lifespan: the app's reader pool is closed at the end
        yield Place(settings, app, sessions, tokens, ids)
    app.state.engine.dispose()
    engine.dispose()


@pytest.fixture
def place(any_settings: Settings) -> Iterator[Place]:
    """On SQLite and PostgreSQL: revocation is a matter of rows."""
    yield from make_place(any_settings)


@pytest.fixture
def lite(settings: Settings) -> Iterator[Place]:
    """SQLite only (the throttle keeps no rows), with a short slow-down cap so attacks
    run in seconds."""
    yield from make_place(settings, login_max_delay=0.5)


@pytest.fixture
def slowed(settings: Settings) -> Iterator[Place]:
    """A slow-down that is easy to see: 2 s from the 5th failure of a name on."""
    yield from make_place(settings, login_max_delay=2.0, max_failed_logins=2)


@pytest.fixture
def unslowed(settings: Settings) -> Iterator[Place]:
    """No slow-down at all: what remains is the cost of checking a password."""
    yield from make_place(settings, max_failed_logins=1000)


def bare(place: Place) -> TestClient:
    """A client with no cookies (and no lifespan of its own)."""
    return TestClient(place.app, follow_redirects=False)


def csrf_of(browser: TestClient, path: str = "/login") -> str:
    page = browser.get(path)
    if page.status_code == 303:  # /login sends a signed-in browser on
        page = browser.get("/tokens")
    match = CSRF.search(page.text)
    assert match, f"no CSRF field on {path}"
    return match.group(1)


def sign_in(browser: TestClient, username: str, password: str = PASSWORD) -> httpx.Response:
    data = {"username": username, "password": password, "csrf_token": csrf_of(browser)}
    return browser.post("/login", data=data)


def signed_in(place: Place, username: str, ip: str = "10.0.0.1") -> tuple[TestClient, str]:
    """A browser signed in as ``username``, and its CSRF token."""
    browser = place.browser(ip)
    assert sign_in(browser, username).status_code == 303
    return browser, csrf_of(browser, "/tokens")


def who(browser: TestClient, cookie: str | None = None) -> str | None:
    """Whom /api/me says the browser (or a bare request with ``cookie``) is; None: nobody."""
    if cookie is None:
        answer = browser.get("/api/me")
    else:
        other = TestClient(browser.app)
        other.cookies.set(COOKIE, cookie)
        answer = other.get("/api/me")
    if answer.status_code == 401:
        return None
    assert answer.status_code == 200, answer.text
    return answer.json()["username"]


def token_works(place: Place, token: str) -> bool:
    answer = bare(place).get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code in (200, 401), answer.text
    return answer.status_code == 200


def live_tokens(place: Place, username: str) -> int:
    """Tokens of ``username`` not marked revoked, by a plain SELECT."""
    return place.scalar(
        "SELECT count(*) FROM api_tokens t JOIN users u ON u.id = t.user_id "
        "WHERE u.username = :name AND t.revoked_at IS NULL",
        name=username,
    )


def no_internals(answer: httpx.Response) -> None:
    for leak in ("Traceback", "argon2", "sqlalchemy", 'File "'):
        assert leak not in answer.text, answer.text[:500]


# ------------------------------------------------------------------ the migration
@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return _fresh_postgres_database(_postgres_url())


def test_upgrade_from_0001_keeps_accounts_and_they_sign_in(empty_url: str, tmp_path: Path) -> None:
    """An installation at 0001 with an account and a pending hub ticket: after 0002 the
    account is at generation 0, its data intact, and it signs in; downgrading keeps it."""
    upgrade(empty_url, "0001")
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (username, email, full_name, orcid, affiliation, role, "
                "password_hash, oidc_issuer, oidc_subject, is_active, failed_logins, "
                "created_at) VALUES ('olduser', 'o@example.org', 'Old User', '', '', 'user', "
                ":hash, '', '', :yes, 0, CURRENT_TIMESTAMP)"
            ),
            {"hash": hash_password(PASSWORD), "yes": True},
        )
        uid = conn.execute(text("SELECT id FROM users WHERE username = 'olduser'")).scalar()
        conn.execute(
            text(
                "INSERT INTO hub_tickets (user_id, nonce_hash, next_path, created_at, "
                "expires_at) VALUES (:uid, :h, '/hub/', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"uid": uid, "h": "0" * 64},
        )
    upgrade(empty_url)
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT username, email, full_name, session_generation FROM users")
        ).one()
        assert tuple(row) == ("olduser", "o@example.org", "Old User", 0)
        ticket = conn.execute(text("SELECT user_id, browser_hash, hub_hash FROM hub_tickets"))
        assert tuple(ticket.one()) == (uid, None, None)
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0002"
        # The schema the migrations make is the one the models describe.
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []

    from beamdesk.web.app import create_app

    app = create_app(make_settings(tmp_path, empty_url))
    with TestClient(app, follow_redirects=False) as browser:
        assert sign_in(browser, "olduser").status_code == 303
        assert who(browser) == "olduser"
    app.state.engine.dispose()

    downgrade(empty_url, "0001")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT username FROM users")).scalar() == "olduser"
        columns = conn.execute(text("SELECT * FROM users")).keys()
        assert "session_generation" not in columns
    engine.dispose()


def test_a_session_cookie_from_before_generations_is_no_session(place: Place) -> None:
    """Cookies made before 0002 hold only the user id: they are refused (sign in again),
    so a copy of one made before the upgrade is not a way around sign-out."""
    from itsdangerous import TimestampSigner

    payload = base64.b64encode(json.dumps({"uid": place.ids["pi"]}).encode())
    old = TimestampSigner(place.settings.secret_key).sign(payload).decode()
    with_generation = base64.b64encode(json.dumps({"uid": place.ids["pi"], "gen": 0}).encode())
    current = TimestampSigner(place.settings.secret_key).sign(with_generation).decode()
    browser = place.browser()
    assert who(browser, current) == "pi"  # the reference encoding is right: the check means it
    assert who(browser, old) is None


# ------------------------------------------------------------------ revocation
def test_a_copied_cookie_dies_with_sign_out(place: Place) -> None:
    browser, csrf = signed_in(place, "pi")
    stolen = browser.cookies[COOKIE]
    other, _ = signed_in(place, "pi", "10.0.0.9")  # the same person in another browser
    assert who(browser, stolen) == "pi"
    assert browser.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert who(browser) is None
    assert who(browser, stolen) is None  # the copy is replayed: anonymous
    assert who(other) is None  # sign-out is everywhere
    thief = place.browser("10.0.0.66")
    thief.cookies.set(COOKIE, stolen)
    page = thief.get(f"/proposals/{NUMBER}")
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert (
        place.scalar("SELECT session_generation FROM users WHERE id = :i", i=place.ids["pi"]) == 1
    )
    # Signing in again works, and only the new session counts.
    fresh, _ = signed_in(place, "pi")
    assert who(fresh) == "pi" and who(browser, stolen) is None


def test_password_change_ends_other_sessions_and_every_token(place: Place) -> None:
    browser, csrf = signed_in(place, "participant")
    elsewhere, _ = signed_in(place, "participant", "10.0.0.7")
    copy = elsewhere.cookies[COOKIE]
    token = place.tokens["participant"]
    assert token_works(place, token) and live_tokens(place, "participant") == 1

    answer = browser.post(
        "/api/me/password",
        json={"current": PASSWORD, "new": NEW_PASSWORD},
        headers={"X-CSRF-Token": csrf},
    )
    assert answer.status_code == 204, answer.text
    assert who(browser) == "participant"  # the browser that changed it goes on
    assert who(elsewhere) is None and who(browser, copy) is None
    assert not token_works(place, token) and live_tokens(place, "participant") == 0
    assert sign_in(place.browser("10.0.0.3"), "participant").status_code == 400
    assert sign_in(place.browser("10.0.0.4"), "participant", NEW_PASSWORD).status_code == 303
    # The same session's CSRF token still works (the session was not swapped under it).
    assert browser.post("/logout", data={"csrf_token": csrf}).status_code == 303


def test_password_change_form_and_its_refusals(place: Place) -> None:
    browser, csrf = signed_in(place, "pi")
    page = browser.get("/account")
    assert page.status_code == 200 and 'action="/account/password"' in page.text
    assert page.headers["cache-control"] == "no-store"
    form = {"current": PASSWORD, "new": NEW_PASSWORD, "repeat": NEW_PASSWORD}
    assert browser.post("/account/password", data=form).status_code == 403  # no CSRF token
    wrong = browser.post(
        "/account/password", data={**form, "current": "not it at all", "csrf_token": csrf}
    )
    assert wrong.status_code == 400 and "The current password is wrong." in wrong.text
    short = browser.post(
        "/account/password", data={**form, "new": "short", "repeat": "short", "csrf_token": csrf}
    )
    assert short.status_code == 422 and "at least 10 characters" in short.text
    differ = browser.post(
        "/account/password", data={**form, "repeat": "something else", "csrf_token": csrf}
    )
    assert differ.status_code == 422
    for answer in (wrong, short, differ):
        no_internals(answer)
    # Nothing of that changed the password or ended the session.
    assert who(browser) == "pi" and token_works(place, place.tokens["pi"])
    done = browser.post("/account/password", data={**form, "csrf_token": csrf})
    assert done.status_code == 303 and done.headers["location"] == "/account"
    assert "Password changed" in browser.get("/account").text
    assert not token_works(place, place.tokens["pi"])
    assert sign_in(place.browser("10.0.0.5"), "pi", NEW_PASSWORD).status_code == 303

    api = browser.post(
        "/api/me/password",
        json={"current": "still not it", "new": NEW_PASSWORD},
        headers={"X-CSRF-Token": csrf},
    )
    assert api.status_code == 400 and api.headers["content-type"] == "application/problem+json"
    assert api.json()["detail"] == "The current password is wrong."
    weak = browser.post(
        "/api/me/password",
        json={"current": NEW_PASSWORD, "new": "x"},
        headers={"X-CSRF-Token": csrf},
    )
    assert weak.status_code == 422 and weak.json()["title"] == "Invalid input"
    # A token is no way to change a password (it would revoke itself, and take the account).
    script = bare(place)
    bearer = {"Authorization": f"Bearer {place.tokens['office']}"}
    body = {"current": PASSWORD, "new": NEW_PASSWORD}
    assert script.post("/api/me/password", json=body, headers=bearer).status_code == 403
    assert script.post("/api/me/password", json=body).status_code in (401, 403)


def test_office_sets_a_password_and_disables_an_account(place: Place) -> None:
    office, office_csrf = signed_in(place, "office")
    victim, _ = signed_in(place, "participant", "10.0.0.8")
    h = {"X-CSRF-Token": office_csrf}

    answer = office.post(
        "/api/users/participant/password", json={"password": NEW_PASSWORD}, headers=h
    )
    assert answer.status_code == 204
    assert who(victim) is None and not token_works(place, place.tokens["participant"])
    assert sign_in(place.browser("10.0.0.10"), "participant", NEW_PASSWORD).status_code == 303

    again, _ = signed_in(place, "scientist", "10.0.0.11")
    with place.sessions() as db:  # a token made before the account is disabled
        user = db.get(User, place.ids["scientist"])
        late_token = create_api_token(db, user, name="late").token
        db.commit()
    assert token_works(place, late_token)
    answer = office.post("/api/users/scientist/disable", headers=h)
    assert answer.status_code == 200 and answer.json()["active"] is False
    assert who(again) is None and not token_works(place, late_token)
    assert live_tokens(place, "scientist") == 0  # marked revoked, not only refused
    ended = "SELECT count(*) FROM audit_events WHERE action = 'notebook_ended' AND target = :n"
    assert place.scalar(ended, n="scientist") == 1  # and their notebook server is stopped
    same_browser = place.browser("10.0.0.12")  # one CSRF token in both pages
    refused = sign_in(same_browser, "scientist")
    unknown = sign_in(same_browser, "scientisx")
    assert refused.status_code == unknown.status_code == 400
    assert refused.text.replace("scientist", "N") == unknown.text.replace("scientisx", "N")
    # Enabled again: signs in; the tokens revoked at the disabling stay dead.
    assert office.post("/api/users/scientist/enable", headers=h).json()["active"] is True
    assert sign_in(place.browser("10.0.0.14"), "scientist").status_code == 303
    assert not token_works(place, late_token)
    # The office cannot lock itself out; an unknown account is a 404 problem.
    assert office.post("/api/users/office/disable", headers=h).status_code == 409
    assert office.post("/api/users/nobody/disable", headers=h).status_code == 404
    weak = office.post("/api/users/participant/password", json={"password": "short"}, headers=h)
    assert weak.status_code == 422
    no_internals(weak)

    # The page: a form per account, and its forms do the same.
    page = office.get("/office/accounts?q=partic")
    assert page.status_code == 200 and 'action="/office/accounts/participant/password"' in page.text
    assert "/office/accounts/reviewer/" not in page.text  # filtered
    done = office.post(
        "/office/accounts/reviewer/active", data={"active": "0", "csrf_token": office_csrf}
    )
    assert done.status_code == 303
    assert place.scalar("SELECT is_active FROM users WHERE username = 'reviewer'") in (False, 0)
    listing = office.get("/api/users", params={"q": "reviewer"}).json()
    assert [(a["username"], a["active"]) for a in listing["items"]] == [
        ("other_reviewer", True),
        ("reviewer", False),
    ]


def test_only_the_office_manages_accounts(place: Place) -> None:
    for i, persona in enumerate(["pi", "scientist", "reviewer", "outsider"]):
        browser, csrf = signed_in(place, persona, f"10.0.2.{i + 1}")
        h = {"X-CSRF-Token": csrf}
        for method, url, body in [
            ("POST", "/api/users/participant/password", {"password": NEW_PASSWORD}),
            ("POST", "/api/users/participant/disable", None),
            ("GET", "/api/users", None),
        ]:
            answer = browser.request(method, url, json=body, headers=h)
            assert answer.status_code == 404, (persona, url, answer.status_code)
        assert browser.get("/office/accounts").status_code == 404
        form = {"password": NEW_PASSWORD, "csrf_token": csrf}
        assert browser.post("/office/accounts/participant/password", data=form).status_code == 404
        off = {"active": "0", "csrf_token": csrf}
        assert browser.post("/office/accounts/participant/active", data=off).status_code == 404
    anonymous = bare(place)
    assert anonymous.get("/api/users").status_code == 401
    assert anonymous.get("/office/accounts").headers["location"].startswith("/login")
    # Nothing happened to the account.
    assert sign_in(place.browser("10.0.1.1"), "participant").status_code == 303
    assert token_works(place, place.tokens["participant"])
    # A user office token may disable (incident scripts) but not set passwords.
    bearer = {"Authorization": f"Bearer {place.tokens['office']}"}
    answer = bare(place).post(
        "/api/users/participant/password", json={"password": NEW_PASSWORD}, headers=bearer
    )
    assert answer.status_code == 403
    assert sign_in(place.browser("10.0.1.2"), "participant").status_code == 303


def test_a_removed_member_loses_the_data_at_once(place: Place) -> None:
    """Access is decided at each request: a session and a token that read the proposal's
    data lose it the moment the PI removes their owner, with no new sign-in."""
    member, _ = signed_in(place, "participant")
    bearer = {"Authorization": f"Bearer {place.tokens['participant']}"}
    urls = [f"/api/proposals/{NUMBER}", f"/api/proposals/{NUMBER}/files/{NOTE}"]
    script = bare(place)
    for url in urls:
        assert member.get(url).status_code == 200
        assert script.get(url, headers=bearer).status_code == 200
    assert member.get(urls[1]).content == NOTE_TEXT
    pi = {"Authorization": f"Bearer {place.tokens['pi']}"}
    removed = script.delete(f"/api/proposals/{NUMBER}/members/participant", headers=pi)
    assert removed.status_code == 200
    for url in urls:
        assert member.get(url).status_code == 404
        answer = script.get(url, headers=bearer)
        assert answer.status_code == 404 and NOTE_TEXT not in answer.content
    # Still signed in, still a token: only the proposal is gone for them.
    assert who(member) == "participant" and token_works(place, place.tokens["participant"])


# ------------------------------------------------------------------ throttling
def timed_sign_in(browser: TestClient, username: str, password: str) -> tuple[int, float]:
    data = {"username": username, "password": password, "csrf_token": csrf_of(browser)}
    start = time.monotonic()
    answer = browser.post("/login", data=data)
    return answer.status_code, time.monotonic() - start


def test_hammering_an_account_never_locks_its_owner_out(lite: Place) -> None:
    cap = lite.settings.auth.login_max_delay
    limit = lite.settings.auth.login_failures_per_client
    attacker = lite.browser("203.0.113.5")
    codes = [timed_sign_in(attacker, "pi", f"guess number {i}")[0] for i in range(limit + 2)]
    # That address is refused for that name once it failed often enough …
    assert codes == [400] * limit + [429, 429]
    # … even with the right password (this is the address that guessed) …
    assert timed_sign_in(attacker, "pi", PASSWORD)[0] == 429
    # … but only for that name.
    assert timed_sign_in(attacker, "participant", "a wrong one")[0] == 400
    # The owner, from a fresh browser elsewhere: in, within the slow-down's cap.
    code, took = timed_sign_in(lite.browser("198.51.100.7"), "pi", PASSWORD)
    assert code == 303
    assert cap * 0.9 <= took <= cap + 3.0, took  # slowed (a fresh client), not locked
    # Lock-out is gone: nothing is refused to a fresh client however many failures pile up.
    assert lite.app.state.sign_in_throttle.account_failures("pi", 900) == limit


def test_owner_gets_in_while_many_addresses_hammer(lite: Place) -> None:
    """A botnet: each address guesses a few times, all at once, while the owner signs in."""
    cap = lite.settings.auth.login_max_delay
    stop = threading.Event()
    guesses: list[int] = []

    def hammer(worker: int) -> None:
        n = 0
        while not stop.is_set():
            ip = f"10.{worker}.{n // 200}.{n % 200 + 1}"
            guesses.append(timed_sign_in(lite.browser(ip), "pi", f"guess {worker}-{n}")[0])
            n += 1

    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 60
        while len(guesses) < 12 and time.monotonic() < deadline:
            time.sleep(0.1)
        owner = [timed_sign_in(lite.browser(f"192.0.2.{i}"), "pi", PASSWORD) for i in (1, 2, 3)]
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert len(guesses) >= 12 and set(guesses) == {400}, guesses
    for code, took in owner:
        assert code == 303 and took <= cap + 4.0, owner


def test_a_browser_that_signed_in_before_is_not_slowed(slowed: Place) -> None:
    known, csrf = signed_in(slowed, "pi", "192.0.2.50")
    assert known.post("/logout", data={"csrf_token": csrf}).status_code == 303
    for i in range(6):  # the attacker, from many addresses
        assert timed_sign_in(slowed.browser(f"203.0.113.{i + 1}"), "pi", "wrong!")[0] == 400
    code, proven = timed_sign_in(known, "pi", PASSWORD)  # back, with its note
    fresh_code, fresh = timed_sign_in(slowed.browser("192.0.2.51"), "pi", PASSWORD)
    assert code == fresh_code == 303
    assert fresh >= 1.8, fresh  # the cap, 2 s: a fresh browser is slowed
    assert proven < 1.5, proven  # the known one is not (argon2 alone)
    # A forged note proves nothing.
    forged = slowed.browser("192.0.2.52")
    forged.cookies.set("beamdesk_signin", known.cookies["beamdesk_signin"][:-3] + "abc")
    code, took = timed_sign_in(forged, "pi", PASSWORD)
    assert code == 303 and took >= 1.8, took


def normalised(answer: httpx.Response, name: str) -> tuple[int, bytes, list[str]]:
    """Status, body with the typed name replaced (the form shows it back), header names
    and the values that do not vary by time (Set-Cookie values are signed timestamps; the
    request id is new for every request)."""

    def value(key: str, v: str) -> str:
        if key == "set-cookie":
            return re.sub(r"=[^;]*", "=…", v, count=1)
        return "…" if key in ("date", "content-length", "x-request-id") else v

    headers = sorted(f"{k}: {value(k, v)}" for k, v in answer.headers.multi_items())
    echo = f'value="{name}"'.encode()
    return answer.status_code, answer.content.replace(echo, b'value="<name>"'), headers


def test_wrong_password_and_unknown_name_answer_the_same(lite: Place) -> None:
    """Same status, bytes and headers for a real account and a made-up name of the same
    length, fresh and after many failures each (slowed alike), and at the address limit."""
    real, ghost = "outsider", "outsidex"
    # A stopped clock: Retry-After counts from each name's own failures, which would
    # otherwise differ by the milliseconds between them.
    lite.app.state.sign_in_throttle = SignInThrottle(clock=lambda: 1000.0)
    for i in range(7):  # both names well into the slow-down, from other addresses
        for name in (real, ghost):
            assert timed_sign_in(lite.browser(f"203.0.113.{i + 1}"), name, "nope")[0] == 400
    browser = lite.browser("198.51.100.20")
    pairs = []
    csrf = csrf_of(browser)
    for _ in range(lite.settings.auth.login_failures_per_client + 1):
        a, b = (
            browser.post("/login", data={"username": n, "password": "w", "csrf_token": csrf})
            for n in (real, ghost)
        )
        pairs.append((a, b))
    assert pairs[0][0].status_code == 400 and pairs[-1][0].status_code == 429
    for a, b in pairs:
        assert a.content != b.content or a.status_code == 429  # the name is shown back …
        assert normalised(a, real) == normalised(b, ghost)  # … and that is the only difference
        no_internals(a)
    throttle = lite.app.state.sign_in_throttle
    assert throttle.account_failures(real, 900) == throttle.account_failures(ghost, 900) == 17


def test_no_timing_gap_between_real_and_unknown_names(unslowed: Place) -> None:
    """argon2 runs for unknown names too: the median times agree within noise, where
    skipping the verification would make unknown names ~20 times faster."""
    times: dict[str, list[float]] = {"pi": [], "qx": []}
    for i in range(9):
        for name in ("pi", "qx"):  # interleaved, each from its own address
            code, took = timed_sign_in(unslowed.browser(f"203.0.113.{i + 1}"), name, "nope")
            assert code == 400
            times[name].append(took)
    real, ghost = (statistics.median(times[n]) for n in ("pi", "qx"))
    assert 0.6 <= real / ghost <= 1.6, times


# ------------------------------------------------------------------ hub sign-in links
def ticket_from(page: httpx.Response) -> str:
    """The ticket in the hub link of the portal's "Opening JupyterLab" page."""
    match = re.search(r'href="([^"]*/hub/beamdesk-login\?[^"]+)"', page.text)
    assert match, page.text[:500]
    url = match.group(1).replace("&amp;", "&")
    return parse_qs(urlsplit(url).query)["ticket"][0]


def session_data(browser: TestClient) -> dict[str, Any]:
    """What the browser's (signed, not encrypted) session cookie holds."""
    payload = browser.cookies[COOKIE].split(".")[0]
    return json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))


def hub_secret() -> tuple[str, str]:
    """A hub-side binding secret and the hash the hub sends to the portal."""
    secret = secrets.token_urlsafe(32)
    return secret, hashlib.sha256(secret.encode()).hexdigest()


def test_a_hub_link_works_only_in_the_browser_that_asked(place: Place) -> None:
    attacker, _ = signed_in(place, "outsider")
    page = attacker.get("/jupyter", params={"next": "/hub/home"})
    assert page.status_code == 200
    ticket = ticket_from(page)
    # The row keeps a hash of the asking session's secret, never the secret.
    binding = session_data(attacker)["hub_binding"]
    stored = place.scalar("SELECT browser_hash FROM hub_tickets")
    assert stored == hashlib.sha256(binding.encode()).hexdigest() and binding not in ticket

    # The victim's browser is made to open the attacker's link: the hub sets its cookie
    # and sends it to the portal, which refuses, signed in or not.
    victim, _ = signed_in(place, "pi", "10.0.0.20")
    victim_secret, victim_hash = hub_secret()
    refused = victim.get("/jupyter/confirm", params={"ticket": ticket, "hub": victim_hash})
    assert refused.status_code == 400 and "another browser" in refused.text
    no_internals(refused)
    anonymous = place.browser("10.0.0.21").get(
        "/jupyter/confirm", params={"ticket": ticket, "hub": victim_hash}
    )
    assert anonymous.status_code == 401
    with place.sessions() as db, pytest.raises(TicketRefused, match="not confirmed"):
        redeem_ticket(db, place.settings.secret_key, ticket, hub_browser=victim_secret)
    assert place.scalar("SELECT hub_hash FROM hub_tickets") is None

    # The attacker's own round trip works, for the attacker's browser only.
    own_secret, own_hash = hub_secret()
    go = attacker.get("/jupyter/confirm", params={"ticket": ticket, "hub": own_hash})
    assert go.status_code == 303
    target = urlsplit(go.headers["location"])
    assert target.path == "/hub/beamdesk-signin" and parse_qs(target.query)["ticket"] == [ticket]
    # … so the attacker sends the victim that last link: the victim's hub cookie is not
    # the attacker's (or there is none), and the ticket is not consumed by trying.
    for other in (victim_secret, ""):
        with place.sessions() as db, pytest.raises(TicketRefused, match="another browser"):
            redeem_ticket(db, place.settings.secret_key, ticket, hub_browser=other)
    # A second confirmation for another hub cookie cannot re-bind it either.
    again = attacker.get("/jupyter/confirm", params={"ticket": ticket, "hub": victim_hash})
    assert again.status_code == 400
    with place.sessions() as db:
        got = redeem_ticket(db, place.settings.secret_key, ticket, hub_browser=own_secret)
        db.commit()
    assert (got.username, got.next_path) == ("outsider", "/hub/home")
    with place.sessions() as db, pytest.raises(TicketRefused, match="used already"):
        redeem_ticket(db, place.settings.secret_key, ticket, hub_browser=own_secret)
    events = place.scalar("SELECT count(*) FROM audit_events WHERE action = 'hub_ticket_refused'")
    assert events >= 2  # the victim's confirmation and the re-binding


def test_a_hub_link_dies_with_the_session_that_asked(place: Place) -> None:
    browser, csrf = signed_in(place, "pi")
    ticket = ticket_from(browser.get("/jupyter"))
    with place.sessions() as db:  # looking does not use it up, and it is bound
        pending = check_ticket(db, place.settings.secret_key, ticket)
        assert pending.bound and pending.user_id == place.ids["pi"]
    assert browser.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert sign_in(browser, "pi").status_code == 303  # same browser, a new session
    _, h = hub_secret()
    answer = browser.get("/jupyter/confirm", params={"ticket": ticket, "hub": h})
    assert answer.status_code == 400
    # A malformed hub hash is refused too, and bearer tokens never get a ticket.
    fresh = ticket_from(browser.get("/jupyter"))
    for bad in ("", "zz", "A" * 64):
        assert (
            browser.get("/jupyter/confirm", params={"ticket": fresh, "hub": bad}).status_code == 400
        )
    bearer = {"Authorization": f"Bearer {place.tokens['pi']}"}
    assert bare(place).get("/jupyter", headers=bearer).status_code == 403
    with place.sessions() as db:
        rows = db.query(HubTicket).all()
        assert all(r.browser_hash for r in rows) and len(rows) == 2  # every portal ticket is bound
