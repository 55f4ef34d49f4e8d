"""/api/docs (Swagger UI) and /api/redoc (ReDoc) in chromium, with every other host cut off.

Every request to anything but the live server is aborted and recorded, so the pages prove
they work offline; the site's CSP is in force, and any violation of it (console message or
``securitypolicyviolation`` event) or page error fails the test. What must be listed comes
from the app's OpenAPI description. Needs `make frontend` (it copies both bundles in); a
missing build fails rather than skips.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from beamdesk.portal.models import ApiToken, User
from beamdesk.web.routes.api_docs import DOCS_DIR, PAGES
from tests.browser import sign_in
from tests.factories import make_world

pytestmark = pytest.mark.browser
H5_META = "/api/proposals/{number}/h5/meta"

# Injected by the browser before any page script (not subject to the page's CSP).
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


@pytest.fixture
def built_docs() -> None:
    for _title, script, stylesheet in PAGES.values():
        for name in filter(None, (script, stylesheet)):
            if not (DOCS_DIR / name).is_file():
                pytest.fail(f"{DOCS_DIR / name} is missing: run 'make frontend'")


class Watch:
    """What a page asked of other hosts, and what went wrong in it."""

    def __init__(self, page: Any, base: str) -> None:
        self.origin = "{0.scheme}://{0.netloc}".format(urlsplit(base))
        self.outside: list[str] = []
        self.problems: list[str] = []
        page.add_init_script(WATCH_CSP)
        page.route("**/*", self.route)
        page.on("console", self.console)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page = page

    def route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")) or url.startswith(self.origin + "/"):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def console(self, message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or "Refused to" in text:
            self.problems.append(f"console: {text}")

    def check(self) -> None:
        violations = self.page.evaluate("window.__csp")
        assert not self.outside, f"requests left the server: {self.outside}"
        assert not violations, f"CSP violations: {violations}"
        assert not self.problems, self.problems


def operations(app: Any) -> list[tuple[str, str, str]]:
    """(METHOD, path, summary) of every operation in the app's OpenAPI description."""
    return [
        (method.upper(), path, op["summary"])
        for path, ops in app.openapi()["paths"].items()
        for method, op in ops.items()
    ]


def test_swagger_ui_lists_the_api_offline(  # type: ignore[no-untyped-def]
    page, live_server, app, built_docs
) -> None:
    base = live_server.url
    watch = Watch(page, base)
    expected = operations(app)
    page.goto(f"{base}/api/docs")

    blocks = page.locator(".opblock")
    meta = page.locator(f".opblock-get:has([data-path='{H5_META}'])")
    meta.wait_for()
    assert blocks.count() == len(expected)
    assert "Get Meta" in meta.locator(".opblock-summary-description").inner_text()
    shown = {
        (
            b.locator(".opblock-summary-method").inner_text().upper(),
            b.locator(".opblock-summary-path").get_attribute("data-path"),
        )
        for b in blocks.all()
    }
    assert shown == {(method, path) for method, path, _ in expected}
    text = page.locator("#api-docs").inner_text()
    for method, path, summary in expected:
        assert summary in text, (method, path, summary)

    # "Try it out" calls the API from the page (connect-src 'self').
    health = page.locator(".opblock-get:has([data-path='/api/health'])")
    health.locator(".opblock-summary-control").click()
    health.get_by_role("button", name="Try it out").click()
    with page.expect_response(f"{base}/api/health") as answer:
        health.get_by_role("button", name="Execute").click()
    assert answer.value.status == 200
    shown_status = health.locator(".live-responses-table tbody .response-col_status")
    shown_status.wait_for()
    assert shown_status.inner_text().strip() == "200"
    assert (
        '"status": "ok"' in health.locator(".live-responses-table .microlight").first.inner_text()
    )
    watch.check()


def test_redoc_lists_the_api_offline(  # type: ignore[no-untyped-def]
    page, live_server, app, built_docs
) -> None:
    base = live_server.url
    watch = Watch(page, base)
    expected = operations(app)
    page.goto(f"{base}/api/redoc")

    page.get_by_role("heading", name="Get Meta").first.wait_for()
    text = page.locator("#api-docs").inner_text()
    for method, path, summary in expected:
        assert summary in text, (method, path, summary)
    # The side menu has an entry for every operation (ids "tag/T/operation/OPERATION_ID").
    ids = page.locator("li[data-item-id]").evaluate_all("els => els.map(e => e.dataset.itemId)")
    listed = {i.split("/operation/")[1] for i in ids if "/operation/" in i}
    assert listed == {
        op["operationId"] for ops in app.openapi()["paths"].values() for op in ops.values()
    }
    watch.check()


def test_signed_in_user_reads_the_docs_and_tries_a_call(  # type: ignore[no-untyped-def]
    page, live_server, sessions, built_docs
) -> None:
    """Public pages, as FastAPI's were; a signed-in user's calls carry the session."""
    with sessions() as db:
        make_world(db)
        db.commit()
    base = live_server.url
    sign_in(page, base, "participant")
    watch = Watch(page, base)
    page.goto(f"{base}/api/docs")
    me = page.locator(".opblock-get:has([data-path='/api/me'])")
    me.locator(".opblock-summary-control").click()
    me.get_by_role("button", name="Try it out").click()
    with page.expect_response(f"{base}/api/me") as answer:
        me.get_by_role("button", name="Execute").click()
    assert answer.value.status == 200
    assert answer.value.json()["username"] == "participant"

    # A change from the page carries the session's CSRF token (the page's data- attribute).
    create = page.locator(".opblock-post:has([data-path='/api/tokens'])")
    create.locator(".opblock-summary-control").click()
    create.get_by_role("button", name="Try it out").click()
    create.locator("textarea.body-param__text").fill('{"name": "from the docs", "expires_days": 7}')
    with page.expect_response(f"{base}/api/tokens") as answer:
        create.get_by_role("button", name="Execute").click()
    assert answer.value.status == 201, answer.value.text()
    with sessions() as db:
        rows = db.scalars(select(ApiToken).join(User).where(User.username == "participant"))
        assert [t.name for t in rows] == ["from the docs"]
    watch.check()
