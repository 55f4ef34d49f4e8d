"""OpenID Connect sign-in through the real app (live uvicorn) against a real test provider."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from beamdesk.portal.auth import create_user
from beamdesk.portal.models import GlobalRole, User
from beamdesk.portal.oidc import sanitise_username
from beamdesk.settings import Settings
from tests.conftest import PASSWORD, make_settings
from tests.oidc_provider import OidcProvider


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    with OidcProvider() as idp:
        yield idp


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str, provider: OidcProvider) -> Settings:
    return make_settings(
        tmp_path,
        sqlite_url,
        oidc={
            "issuer": provider.url,
            "client_id": provider.client_id,
            "client_secret": provider.client_secret,
            "name": "Test IdP",
        },
    )


@pytest.fixture
def base(app, live_server) -> str:  # type: ignore[no-untyped-def]
    # The callback URL comes from base_url, known only once the server has its port.
    app.state.settings = app.state.settings.changed(base_url=live_server.url)
    return live_server.url


@pytest.fixture
def browser_client() -> Iterator[httpx.Client]:
    with httpx.Client(follow_redirects=False, timeout=10) as http:
        yield http


def to_provider(http: httpx.Client, base: str, next_url: str = "") -> str:
    """Start sign-in at BeamDesk; return the provider's answer: our callback URL."""
    start = f"{base}/login/oidc" + (f"?{urlencode({'next': next_url})}" if next_url else "")
    r = http.get(start)
    assert r.status_code == 302, r.text
    r = http.get(r.headers["location"])
    assert r.status_code == 302, r.text
    callback = r.headers["location"]
    assert callback.startswith(f"{base}/login/oidc/callback?")
    return callback


def sso_sign_in(http: httpx.Client, base: str, next_url: str = "") -> httpx.Response:
    return http.get(to_provider(http, base, next_url))


def me(http: httpx.Client, base: str) -> httpx.Response:
    return http.get(f"{base}/api/me")


def count_users(sessions) -> int:  # type: ignore[no-untyped-def]
    with sessions() as db:
        return db.scalar(select(func.count()).select_from(User))


def test_authorize_request_has_state_nonce_and_pkce(base, browser_client, provider) -> None:  # type: ignore[no-untyped-def]
    r = browser_client.get(f"{base}/login/oidc")
    assert r.status_code == 302
    url = urlsplit(r.headers["location"])
    assert f"{url.scheme}://{url.netloc}" == provider.url
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert q["client_id"] == "beamdesk" and q["response_type"] == "code"
    assert q["redirect_uri"] == f"{base}/login/oidc/callback"
    assert set(q["scope"].split()) >= {"openid", "email", "profile"}
    assert len(q["state"]) >= 20 and len(q["nonce"]) >= 20
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43


def test_first_sign_in_creates_user_and_second_finds_it(
    base,
    browser_client,
    provider,
    sessions,
) -> None:  # type: ignore[no-untyped-def]
    r = sso_sign_in(browser_client, base)
    assert r.status_code == 303 and r.headers["location"] == "/proposals"
    who = me(browser_client, base).json()
    assert who["username"] == "jdoe" and who["email"] == "jdoe@example.org"
    assert who["full_name"] == "Jane Doe" and who["role"] == "user"
    # The client authenticated itself and sent the PKCE verifier.
    sent = provider.token_requests[-1]
    assert sent["grant_type"] == "authorization_code" and len(sent["code_verifier"]) >= 43
    with sessions() as db:
        user = db.scalar(select(User).where(User.username == "jdoe"))
        assert (user.oidc_issuer, user.oidc_subject) == (provider.url, "f3c1a2b4-0001")
        assert user.password_hash == ""
        first_id = user.id
    users = count_users(sessions)

    # Second sign-in, fresh browser; the provider now reports a new name and username.
    provider.user.update(name="Jane Q. Doe", preferred_username="jane")
    with httpx.Client(follow_redirects=False, timeout=10) as other:
        assert sso_sign_in(other, base).status_code == 303
        who = me(other, base).json()
    assert who["id"] == first_id and who["username"] == "jdoe"
    assert who["full_name"] == "Jane Q. Doe"
    assert count_users(sessions) == users


def test_next_is_kept_but_only_on_this_site(base, browser_client) -> None:  # type: ignore[no-untyped-def]
    r = sso_sign_in(browser_client, base, "/tokens")
    assert r.headers["location"] == "/tokens"
    with httpx.Client(follow_redirects=False, timeout=10) as other:
        r = sso_sign_in(other, base, "//evil.example/x")
        assert r.headers["location"] == "/"


def assert_refused(r: httpx.Response) -> None:
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/html")
    assert "Sign-in refused" in r.text and "Traceback" not in r.text


def test_bad_or_replayed_state_is_refused(base, browser_client, sessions) -> None:  # type: ignore[no-untyped-def]
    callback = to_provider(browser_client, base)
    forged = callback.replace("state=", "state=forged")
    assert_refused(browser_client.get(forged))
    assert me(browser_client, base).status_code == 401

    # A callback finished in another browser (login CSRF) has no matching state there.
    callback = to_provider(browser_client, base)
    with httpx.Client(follow_redirects=False, timeout=10) as victim:
        assert_refused(victim.get(callback))
        assert me(victim, base).status_code == 401
    # The genuine browser still can, once; replaying the same callback is refused.
    assert browser_client.get(callback).status_code == 303
    assert me(browser_client, base).status_code == 200
    assert_refused(browser_client.get(callback))


@pytest.mark.parametrize(
    "spoil",
    [
        {"nonce": "not-the-nonce-we-sent"},
        {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
        {"aud": "some-other-client"},
        {"aud": "some-other-client", "azp": "beamdesk"},
        {"aud": ["some-other-client", "and-another"]},
        {"iss": "https://idp.evil.example"},
        "foreign key",
    ],
    ids=[
        "wrong-nonce",
        "expired",
        "wrong-audience",
        "wrong-audience-azp",
        "audience-list",
        "wrong-issuer",
        "bad-signature",
    ],
)
def test_bad_id_token_is_refused(
    base,
    browser_client,
    provider,
    sessions,
    spoil,
) -> None:  # type: ignore[no-untyped-def]
    if spoil == "foreign key":
        provider.sign_with_foreign_key = True
    else:
        provider.id_token_overrides = spoil
    users = count_users(sessions)
    assert_refused(sso_sign_in(browser_client, base))
    assert me(browser_client, base).status_code == 401
    assert count_users(sessions) == users


def test_local_account_with_same_email_is_not_taken_over(
    base,
    browser_client,
    sessions,
) -> None:  # type: ignore[no-untyped-def]
    with sessions() as db:
        local = create_user(
            db, "jdoe", GlobalRole.scientist, password=PASSWORD, email="jdoe@example.org"
        )
        db.commit()
        local_id = local.id
    assert sso_sign_in(browser_client, base).status_code == 303
    who = me(browser_client, base).json()
    assert who["id"] != local_id and who["username"] == "jdoe-2" and who["role"] == "user"
    with sessions() as db:
        local = db.get(User, local_id)
        assert local.oidc_subject == "" and local.role == GlobalRole.scientist
    # And an SSO-only account cannot be entered with a password at all.
    with httpx.Client(follow_redirects=False, timeout=10) as other:
        page = other.get(f"{base}/login")
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        r = other.post(
            f"{base}/login",
            data={"username": "jdoe-2", "password": "any password at all", "csrf_token": token},
        )
        assert r.status_code == 400 and "Wrong username or password" in r.text
        assert me(other, base).status_code == 401


def test_login_page_offers_the_provider(base, browser_client) -> None:  # type: ignore[no-untyped-def]
    r = browser_client.get(f"{base}/login?next=/tokens")
    assert "Sign in with Test IdP" in r.text and 'href="/login/oidc?next=/tokens"' in r.text


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        ("jdoe", "jdoe"),
        ("José Müller", "jose_muller"),
        ("a/../b", "a_.._b"),
        ("../", "user"),
        ("x" * 200, "x" * 56),
    ],
)
def test_sanitise_username(wanted: str, expected: str) -> None:
    assert sanitise_username(wanted) == expected


@pytest.mark.browser
def test_single_sign_on_in_a_browser(base, page) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/tokens")  # anonymous: sent to sign in, and back here afterwards
    page.click("text=Sign in with Test IdP")
    page.wait_for_url(f"{base}/tokens")
    assert "Jane Doe" in page.text_content("[data-testid=whoami]")
