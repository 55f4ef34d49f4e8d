"""Local sign-in and sign-out, session cookies, CSRF, redirects and rate limits.

Revocation, password changes, throttling without lock-out and the hub ticket's browser
binding are attacked in ``tests/security/test_sessions.py``."""

from __future__ import annotations

import base64
import json
import re

import httpx
import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner
from sqlalchemy import select

from beamdesk.portal.auth import create_user
from beamdesk.portal.models import AuditEvent, Beamline, GlobalRole
from beamdesk.web.app import create_app
from beamdesk.web.ratelimit import SlidingWindowLimiter
from tests.conftest import PASSWORD

COOKIE = "beamdesk_session"


def csrf_of(client: TestClient, path: str = "/login") -> str:
    """The CSRF token a page embeds in its forms (the same one the session holds)."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert match, f"no CSRF field on {path}"
    return match.group(1)


def sign_in(
    client: TestClient, username: str, password: str = PASSWORD, next_url: str = ""
) -> httpx.Response:
    token = csrf_of(client)
    data = {"username": username, "password": password, "csrf_token": token, "next": next_url}
    return client.post("/login", data=data, follow_redirects=False)


@pytest.fixture
def people(sessions):  # type: ignore[no-untyped-def]
    with sessions() as db:
        xrf = Beamline(name="XRF")
        db.add(xrf)
        alice = create_user(
            db,
            "alice",
            GlobalRole.user,
            password=PASSWORD,
            email="alice@example.org",
            full_name="Alice Liddell",
        )
        bob = create_user(db, "bob", GlobalRole.scientist, password=PASSWORD)
        bob.beamlines.append(xrf)
        db.commit()
        return {"alice": alice.id, "bob": bob.id}


def test_sign_in_and_out(client, people) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/login")
    assert page.status_code == 200 and 'action="/login"' in page.text
    assert "Sign in with" not in page.text  # no single sign-on configured
    r = sign_in(client, "alice")
    assert r.status_code == 303 and r.headers["location"] == "/proposals"
    who = client.get("/api/me").json()
    assert who == {
        "id": people["alice"],
        "username": "alice",
        "full_name": "Alice Liddell",
        "email": "alice@example.org",
        "role": "user",
        "beamlines": [],
    }
    # Signed in, the sign-in page sends people on.
    assert (
        client.get("/login?next=/tokens", follow_redirects=False).headers["location"] == "/tokens"
    )
    token = csrf_of(client, "/tokens")
    r = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert client.get("/api/me").status_code == 401


def test_me_lists_a_scientists_beamlines(client, people) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, "bob")
    who = client.get("/api/me").json()
    assert who["role"] == "scientist" and who["beamlines"] == ["XRF"]


def test_wrong_password_and_unknown_user(client, people, sessions) -> None:  # type: ignore[no-untyped-def]
    for name, password in [("alice", "not the password"), ("nobody", PASSWORD)]:
        r = sign_in(client, name, password)
        assert r.status_code == 400 and "Wrong username or password." in r.text
        assert client.get("/api/me").status_code == 401
    with sessions() as db:
        failed = db.scalars(select(AuditEvent.target).where(AuditEvent.action == "login_failed"))
        assert sorted(failed) == ["alice", "nobody"]  # committed although the sign-in failed


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Each Set-Cookie header of a response, by cookie name."""
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


def test_session_cookie_flags(settings, client, people) -> None:  # type: ignore[no-untyped-def]
    cookies = set_cookies(sign_in(client, "alice"))
    cookie = cookies[COOKIE]
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower() and "secure" not in cookie.lower()
    assert f"Max-Age={settings.auth.session_max_age}" in cookie
    # The note that this browser signed in (it spares it the sign-in slow-down): also
    # HttpOnly and SameSite, sent only to the sign-in form.
    device = cookies["beamdesk_signin"].lower()
    assert "httponly" in device and "samesite=lax" in device and "path=/login" in device
    assert "alice" not in device  # the names are not listed in the clear
    with TestClient(
        create_app(settings.changed(auth={"cookie_secure": True})), base_url="https://testserver"
    ) as secure:
        for cookie in set_cookies(sign_in(secure, "alice")).values():
            assert "; secure" in cookie.lower() and "httponly" in cookie.lower()


def forge_cookie(data: dict[str, object], secret: str) -> str:
    """A session cookie as Starlette makes it: base64(JSON), signed by itsdangerous."""
    payload = base64.b64encode(json.dumps(data).encode())
    return TimestampSigner(secret).sign(payload).decode()


def test_tampered_or_forged_cookie_is_anonymous(settings, client, people) -> None:  # type: ignore[no-untyped-def]
    # The reference encoder with the right key is accepted: the checks below are meaningful.
    client.cookies.set(
        COOKIE, forge_cookie({"uid": people["alice"], "gen": 0}, settings.secret_key)
    )
    assert client.get("/api/me").json()["username"] == "alice"
    client.cookies.set(COOKIE, forge_cookie({"uid": people["bob"], "gen": 0}, "not-the-secret"))
    assert client.get("/api/me").status_code == 401

    client.cookies.clear()
    sign_in(client, "alice")
    value = client.cookies[COOKIE]
    _, _, rest = value.partition(".")
    swapped = base64.b64encode(json.dumps({"uid": people["bob"], "gen": 0}).encode()).decode()
    client.cookies.set(COOKIE, f"{swapped}.{rest}")  # bob's id under alice's signature
    assert client.get("/api/me").status_code == 401
    client.cookies.set(COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert client.get("/api/me").status_code == 401


def test_sign_in_rotates_the_session(client, people) -> None:  # type: ignore[no-untyped-def]
    before = csrf_of(client)
    sign_in(client, "alice")
    after = csrf_of(client, "/tokens")
    assert after != before
    # The pre-sign-in token (which an attacker could have planted) no longer works.
    r = client.post("/logout", data={"csrf_token": before}, follow_redirects=False)
    assert r.status_code == 403
    assert client.get("/api/me").status_code == 200


def test_csrf_is_required(client, people) -> None:  # type: ignore[no-untyped-def]
    token = csrf_of(client)
    form = {"username": "alice", "password": PASSWORD}
    r = client.post("/login", data=form, follow_redirects=False)
    assert r.status_code == 403 and "did not come from this site" in r.text
    r = client.post("/login", data={**form, "csrf_token": token[:-1] + "x"}, follow_redirects=False)
    assert r.status_code == 403
    assert client.get("/api/me").status_code == 401
    r = client.post("/login", data={**form, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert client.post("/logout", follow_redirects=False).status_code == 403
    assert client.get("/api/me").status_code == 200


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "https://evil.example",
        "/\\evil",
        "\\\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "evil.example/x",
        "///evil.example",
    ],
)
def test_no_open_redirect(client, people, target: str) -> None:  # type: ignore[no-untyped-def]
    r = sign_in(client, "alice", next_url=target)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_next_on_this_site_is_honoured(client, people) -> None:  # type: ignore[no-untyped-def]
    r = sign_in(client, "alice", next_url="/proposals/20260001?tab=data")
    assert r.headers["location"] == "/proposals/20260001?tab=data"


def test_single_sign_on_is_off_unless_configured(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/login/oidc", follow_redirects=False).status_code == 404
    assert client.get("/login/oidc/callback?code=x&state=y").status_code == 404


def test_sign_in_rate_limit_per_address(client, people) -> None:  # type: ignore[no-untyped-def]
    token = csrf_of(client)
    # A new name each time: one name from one address has a lower limit of its own.
    forms = [
        {"username": f"nobody{i}", "password": "guess guess", "csrf_token": token}
        for i in range(22)
    ]
    codes = [client.post("/login", data=form).status_code for form in forms[:21]]
    assert codes[:20] == [400] * 20 and codes[20] == 429
    r = client.post("/login", data=forms[21])
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
    assert "Too many attempts" in r.text
    # Another address is not affected.
    with TestClient(client.app, client=("192.0.2.7", 50000)) as elsewhere:
        assert sign_in(elsewhere, "alice").status_code == 303


def test_sliding_window_limiter() -> None:
    now = [1000.0]
    limiter = SlidingWindowLimiter(limit=3, window=60, clock=lambda: now[0])
    assert [limiter.hit("a") for _ in range(3)] == [0, 0, 0]
    now[0] += 20
    assert limiter.hit("a") == pytest.approx(40)  # the first hit leaves the window at +60
    assert limiter.hit("b") == 0
    now[0] += 40
    # All three hits have left the window, and the refused one was never counted.
    assert [limiter.hit("a") for _ in range(3)] == [0, 0, 0]
    now[0] += 10
    assert limiter.hit("a") == pytest.approx(50)
