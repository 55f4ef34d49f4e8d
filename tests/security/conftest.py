"""One facility per test module (built once: password hashing and HDF5 writing are slow),
an app on it, and each persona signed in through the real sign-in form."""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from beamdesk.db import make_engine, make_sessionmaker, session_scope
from beamdesk.migrate import upgrade
from beamdesk.settings import Settings
from beamdesk.web.ratelimit import SlidingWindowLimiter
from tests.conftest import PASSWORD, make_settings
from tests.security.expectations import PERSONAS
from tests.security.world import Facts, build

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
SESSION_COOKIE = "beamdesk_session"


@dataclass
class Facility:
    settings: Settings
    facts: Facts
    db_path: Path
    snapshot: Path
    app: FastAPI
    client: TestClient
    # persona -> (session cookie value, CSRF token); anonymous has a session with a token.
    sessions: dict[str, tuple[str, str]] = field(default_factory=dict)

    def use(self, persona: str) -> str:
        """Put ``persona``'s session cookie in the client; returns its CSRF token."""
        cookie, csrf = self.sessions[persona]
        self.client.cookies.clear()
        self.client.cookies.set(SESSION_COOKIE, cookie)
        return csrf

    def restore(self) -> None:
        """Put the database back as it was built (after a request that changed it)."""
        # SQLite's backup API writes through a normal connection, so the app's pooled
        # connections (and the WAL) stay consistent; copying files under them would not.
        self.app.state.engine.dispose()
        with sqlite3.connect(self.snapshot) as src, sqlite3.connect(self.db_path) as dst:
            src.backup(dst)

    def bearer(self, persona: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.facts.tokens[persona]}"}


def sign_in(client: TestClient, persona: str) -> tuple[str, str]:
    client.cookies.clear()
    page = client.get("/login")
    csrf = CSRF_INPUT.search(page.text)
    assert csrf, "the sign-in page has no CSRF field"
    if persona != "anonymous":
        r = client.post(
            "/login", data={"username": persona, "password": PASSWORD, "csrf_token": csrf.group(1)}
        )
        assert r.status_code == 303, (persona, r.status_code, r.text[:300])
        page = client.get("/tokens")  # any page with a form gives the new session's token
        csrf = CSRF_INPUT.search(page.text)
        assert csrf, persona
    return client.cookies[SESSION_COOKIE], csrf.group(1)


def checkpoint(db_path: Path, snapshot: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(db_path, snapshot)


@pytest.fixture(scope="module")
def facility(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Facility]:
    from beamdesk.web.app import create_app

    base = tmp_path_factory.mktemp("security")
    db_path = base / "beamdesk.db"
    url = f"sqlite:///{db_path}"
    upgrade(url)
    settings = make_settings(base, url)
    engine = make_engine(url)
    with session_scope(make_sessionmaker(engine)) as db:
        facts = build(db, settings)
    engine.dispose()
    app = create_app(settings)
    # The matrix signs in and creates tokens far more often than a person would.
    app.state.rate_limiter = SlidingWindowLimiter(limit=100_000)
    with TestClient(app, follow_redirects=False) as client:
        fac = Facility(settings, facts, db_path, base / "snapshot.db", app, client)
        for persona in PERSONAS:
            fac.sessions[persona] = sign_in(client, persona)
        checkpoint(db_path, fac.snapshot)
        yield fac
    app.state.engine.dispose()


def problem(response: Any) -> dict[str, Any]:
    """The problem+json body of an error (fails if it is not one)."""
    assert response.headers["content-type"].startswith("application/problem+json"), (
        response.status_code,
        response.headers["content-type"],
        response.text[:300],
    )
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body), body
    return body
