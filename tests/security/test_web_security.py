"""Web security: CSRF on every state change, cookie flags, security headers, no open
redirect, odd Unicode, rate limits, and the audit log the user office reads."""

from __future__ import annotations

import re
import shutil
from urllib.parse import quote, urlsplit

import pytest
from fastapi.testclient import TestClient

from beamdesk.web.ratelimit import SlidingWindowLimiter
from tests.conftest import PASSWORD
from tests.security.conftest import SESSION_COOKIE, Facility, problem, sign_in
from tests.security.expectations import VARIANTS
from tests.security.test_endpoint_matrix import (
    build_request,
    endpoints,
    fill_path,
    path_values,
)
from tests.security.world import H5_FILE, TEXT_FILE

CHANGES = {"POST", "PUT", "PATCH", "DELETE"}
PUBLISHED = VARIANTS[-1]
DRAFT = VARIANTS[0]


# ------------------------------------------------------------------ CSRF
@pytest.mark.parametrize("token", ["missing", "wrong"])
def test_every_state_change_needs_the_csrf_token(facility: Facility, token: str) -> None:
    """Cookie-authenticated POST/PUT/PATCH/DELETE without the session's token: 403."""
    changes = [e for e in endpoints(facility.app) if e.method in CHANGES]
    assert len(changes) > 20
    unprotected = []
    for endpoint in changes:
        for persona in ("office", "anonymous"):
            facility.use(persona)
            req = build_request(endpoint)
            url = fill_path(endpoint.path, path_values(facility, persona, PUBLISHED))
            headers = {"X-CSRF-Token": "forged-" + "x" * 40} if token == "wrong" else {}
            data = dict(req.data or {})
            if token == "wrong" and req.data is not None:
                data["csrf_token"] = "forged"
            r = facility.client.request(
                endpoint.method,
                url,
                params=req.params,
                json=req.json,
                data=data or None,
                headers=headers,
            )
            if r.status_code < 400:
                facility.restore()
            if r.status_code != 403 or "CSRF" not in r.text:
                unprotected.append(
                    f"{endpoint.method} {endpoint.path} as {persona}: {r.status_code}"
                )
    assert not unprotected, "state changes without a CSRF check: " + ", ".join(unprotected)


def test_bearer_calls_need_no_csrf_but_cookies_cannot_pose_as_bearer(facility: Facility) -> None:
    facility.client.cookies.clear()
    r = facility.client.post(
        f"/api/proposals/{DRAFT.number}/transitions/submit", headers=facility.bearer("pi")
    )
    assert r.status_code == 200, r.text
    facility.restore()
    facility.use("pi")
    r = facility.client.post(
        f"/api/proposals/{DRAFT.number}/transitions/submit",
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert r.status_code == 401  # a bogus Bearer header is no way round the CSRF check


# ------------------------------------------------------------------ cookies
def _set_cookie(response) -> str:  # type: ignore[no-untyped-def]
    values = [
        v
        for k, v in response.headers.multi_items()
        if k == "set-cookie" and v.startswith(SESSION_COOKIE)
    ]
    assert values, "no session cookie set"
    return values[-1].lower()


@pytest.mark.parametrize("secure", [False, True])
def test_session_cookie_flags(facility: Facility, secure: bool) -> None:
    from beamdesk.web.app import create_app

    db_copy = facility.settings.var_dir / f"cookies-{secure}.db"
    shutil.copyfile(facility.snapshot, db_copy)  # an app of its own, on its own database
    app = create_app(
        facility.settings.changed(
            auth={"cookie_secure": secure}, database_url=f"sqlite:///{db_copy}"
        )
    )
    base = "https://testserver" if secure else "http://testserver"
    with TestClient(app, base_url=base, follow_redirects=False) as client:
        page = client.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        r = client.post("/login", data={"username": "pi", "password": PASSWORD, "csrf_token": csrf})
        assert r.status_code == 303
        cookie = _set_cookie(r)
        if secure:
            assert "strict-transport-security" in r.headers
    app.state.engine.dispose()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert ("; secure" in cookie) == secure


# ------------------------------------------------------------------ headers
HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}


@pytest.mark.parametrize("persona", ["anonymous", "pi"])
def test_security_headers_everywhere(facility: Facility, persona: str) -> None:
    facility.use(persona)
    n = PUBLISHED.number
    urls = [
        "/",
        "/login",
        "/catalogue",
        "/api/health",
        "/api/proposals",
        f"/proposals/{n}",
        f"/api/proposals/{n}/h5/meta?file={H5_FILE}",
        f"/api/proposals/{n}/files/{TEXT_FILE}",
        "/api/proposals/29990999",
        "/no-such-page",
        "/static/beamdesk.css",
        f"/proposals/{n}/viewer",
        "/api/docs",
    ]
    for url in urls:
        r = facility.client.get(url)
        for name, value in HEADERS.items():
            assert r.headers.get(name) == value, (url, name, r.headers.get(name))
        csp = r.headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, (url, csp)
        assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0], (url, csp)
        if url.startswith("/api/") and r.status_code >= 400:
            problem(r)


def test_token_responses_are_not_cached(facility: Facility) -> None:
    csrf = facility.use("pi")
    r = facility.client.post("/api/tokens", json={"name": "ci"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201
    assert r.headers["cache-control"] == "no-store"
    facility.restore()


# ------------------------------------------------------------------ redirects
EVIL = [
    "//evil.example",
    "https://evil.example/",
    "/\\evil.example",
    "/\t/evil.example",
    "\\\\evil.example",
    "http:evil.example",
    " //evil.example",
    "javascript:alert(1)",
    "/%09/evil.example",
    "//evil.example/%2e%2e",
    "https:/evil.example",
    "/\u3002/evil.example",
    "\x00//evil.example",
    "///evil.example",
]


def _stays_here(location: str) -> bool:
    parts = urlsplit(location)
    return (
        location.startswith("/")
        and not location.startswith(("//", "/\\"))
        and not parts.scheme
        and not parts.netloc
        and not any(ord(c) < 32 for c in location)
    )


@pytest.mark.parametrize("target", EVIL)
def test_no_open_redirect_after_sign_in(facility: Facility, target: str) -> None:
    client = facility.client
    _cookie, csrf = sign_in(client, "anonymous")
    r = client.post(
        "/login",
        data={"username": "participant", "password": PASSWORD, "csrf_token": csrf, "next": target},
    )
    assert r.status_code == 303 and _stays_here(r.headers["location"]), r.headers["location"]
    # ...and when already signed in, GET /login?next= redirects at once
    r = client.get("/login", params={"next": target})
    assert r.status_code == 303 and _stays_here(r.headers["location"]), r.headers["location"]


def test_sign_in_keeps_a_local_next(facility: Facility) -> None:
    _cookie, csrf = sign_in(facility.client, "anonymous")
    r = facility.client.post(
        "/login",
        data={"username": "pi", "password": PASSWORD, "csrf_token": csrf, "next": "/catalogue?q=a"},
    )
    assert r.headers["location"] == "/catalogue?q=a"


# ------------------------------------------------------------------ odd Unicode
ODD = [
    "Fe\u202egnp.exe",
    "zero\u200bwidth",
    "e\u0301\u0301\u0301",
    "\U0001f52c sample",
    "<script>alert(1)</script>",
    "\ufeffbom",
    "a\u0000b",
    "x\u2028y",
    "\uff0e\uff0e/\uff0e\uff0e",
    "名前",
    "A" * 300,
]


@pytest.mark.parametrize("text", ODD)
def test_odd_unicode_in_names_is_stored_or_refused_never_500(facility: Facility, text: str) -> None:
    csrf = facility.use("pi")
    r = facility.client.post(
        "/api/proposals",
        headers={"X-CSRF-Token": csrf},
        json={"title": text, "abstract": text, "samples": [{"name": text, "formula": text}]},
    )
    assert r.status_code in (201, 422), (r.status_code, r.text[:200])
    if r.status_code == 201:
        number = r.json()["number"]
        page = facility.client.get(f"/proposals/{number}")
        assert page.status_code == 200
        assert "<script>alert(1)</script>" not in page.text  # escaped, never markup
    else:
        problem(r)
    r = facility.client.post(
        f"/api/proposals/{DRAFT.number}/members",
        headers={"X-CSRF-Token": csrf},
        json={"username": text},
    )
    assert r.status_code == 422, r.text  # no such user: refused, not a crash
    facility.restore()


@pytest.mark.parametrize(
    "name", ["caf\u00e9.h5", "cafe\u0301.h5", "\u202etxt.h5", "sp ace#?.txt", "\U0001f52c.txt"]
)
def test_odd_unicode_file_names_are_listed_and_served_or_404(facility: Facility, name: str) -> None:
    folder = facility.settings.data_root / PUBLISHED.number / "processed"
    path = folder / name
    path.write_bytes(b"odd name")
    try:
        facility.use("anonymous")  # released data: open to everyone
        listing = facility.client.get(
            f"/api/proposals/{PUBLISHED.number}/browse", params={"path": "processed"}
        )
        assert listing.status_code == 200
        r = facility.client.get(f"/api/proposals/{PUBLISHED.number}/files/processed/{quote(name)}")
        bidi = "\u202e" in name
        assert r.status_code == (404 if bidi else 200), (name, r.status_code)
        if not bidi:
            assert r.content == b"odd name"
    finally:
        path.unlink()


# ------------------------------------------------------------------ rate limits
@pytest.fixture
def real_limits(facility: Facility):  # type: ignore[no-untyped-def]
    saved = facility.app.state.rate_limiter
    facility.app.state.rate_limiter = SlidingWindowLimiter()  # the production default
    yield facility.app.state.rate_limiter
    facility.app.state.rate_limiter = saved


def test_sign_in_is_rate_limited(facility: Facility, real_limits: SlidingWindowLimiter) -> None:
    _cookie, csrf = sign_in(facility.client, "anonymous")
    codes = []
    for i in range(real_limits.limit + 2):
        r = facility.client.post(
            "/login", data={"username": f"guess{i}", "password": "x" * 12, "csrf_token": csrf}
        )
        codes.append(r.status_code)
    assert codes[: real_limits.limit] == [400] * real_limits.limit
    assert codes[-1] == 429 and int(r.headers["retry-after"]) >= 1
    facility.restore()


def test_token_creation_is_rate_limited(
    facility: Facility, real_limits: SlidingWindowLimiter
) -> None:
    csrf = facility.use("participant")
    codes = [
        facility.client.post(
            "/api/tokens", json={"name": f"t{i}"}, headers={"X-CSRF-Token": csrf}
        ).status_code
        for i in range(real_limits.limit + 1)
    ]
    assert codes[:-1] == [201] * real_limits.limit and codes[-1] == 429
    facility.restore()


# ------------------------------------------------------------------ audit log
def _audit_page(facility: Facility, action: str) -> str:
    facility.use("office")
    r = facility.client.get("/office/audit", params={"action": action})
    assert r.status_code == 200
    return r.text


def test_audit_log_records_what_the_office_must_see(facility: Facility) -> None:
    client = facility.client
    # sign-in (done by the fixture for every persona) and a failed one
    sign_in(client, "anonymous")
    # access denial: an outsider probing an embargoed proposal's data
    facility.use("outsider")
    hidden = VARIANTS[2].number
    assert (
        client.get(f"/api/proposals/{hidden}/h5/meta", params={"file": H5_FILE}).status_code == 404
    )
    # data download
    facility.use("participant")
    assert client.get(f"/api/proposals/{hidden}/files/{TEXT_FILE}").status_code == 200
    # lifecycle transition
    csrf = facility.use("pi")
    assert (
        client.post(
            f"/api/proposals/{DRAFT.number}/transitions/submit", headers={"X-CSRF-Token": csrf}
        ).status_code
        == 200
    )

    login = _audit_page(facility, "login")
    assert re.search(r"<td>pi</td><td>login</td>", login)
    denied = _audit_page(facility, "access_denied")
    assert re.search(
        rf"<td>outsider</td><td>access_denied</td>\s*<td>{hidden}</td>"
        rf"<td>read_data</td>",
        denied,
    ), denied[-2000:]
    download = _audit_page(facility, "data_download")
    assert f"<td>{hidden}/{TEXT_FILE}</td>" in download
    submitted = _audit_page(facility, "proposal_submit")
    assert "<td>pi</td><td>proposal_submit</td>" in submitted
    facility.restore()

    for persona in ("pi", "scientist", "reviewer"):
        facility.use(persona)
        assert client.get("/office/audit").status_code == 404
    facility.use("anonymous")
    r = client.get("/office/audit")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_denial_audit_keeps_nothing_else_of_the_request(facility: Facility) -> None:
    """A refused change is rolled back; only the denial is written."""
    csrf = facility.use("participant")
    r = facility.client.patch(
        f"/api/proposals/{VARIANTS[2].number}",
        headers={"X-CSRF-Token": csrf},
        json={"title": "hijacked"},
    )
    assert r.status_code == 403
    facility.use("office")
    assert "hijacked" not in facility.client.get(f"/api/proposals/{VARIANTS[2].number}").text
    facility.restore()
