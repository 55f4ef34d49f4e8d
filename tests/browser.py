"""What browser tests do in every page: sign in through the login form, watch for errors.

The ``browser``/``page`` fixtures (Debian's chromium driven by Playwright) are in conftest.py.
"""

from __future__ import annotations

from typing import Any

from tests.factories import PASSWORD


def sign_in(page: Any, base: str, username: str, password: str = PASSWORD) -> None:
    """Sign in as a person of the test world; lands on their proposals."""
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"{base}/proposals")


def watch_errors(page: Any) -> list[str]:
    """Script errors and failed answers (4xx/5xx, the favicon aside) of the page, as they come."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "response",
        lambda r: (
            errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("favicon.ico")
            else None
        ),
    )
    return errors
