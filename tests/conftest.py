"""Shared fixtures: real databases (SQLite and PostgreSQL), the app, a live server, a browser.

PostgreSQL: ``make test`` starts a private server (tools/postgres.sh) and exports
``BEAMDESK_TEST_POSTGRES_URL``. Without it, PostgreSQL cases are skipped locally but
fail in CI (``CI=true``), so a broken database set-up can never pass silently.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from beamdesk.db import make_engine, make_sessionmaker
from beamdesk.migrate import upgrade
from beamdesk.settings import Settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PASSWORD = "correct horse battery"


def _postgres_url() -> str | None:
    url = os.environ.get("BEAMDESK_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("BEAMDESK_TEST_POSTGRES_URL is not set; run the suite with 'make test'")
        pytest.skip("PostgreSQL not configured (run 'make test')")
    return url


def _fresh_postgres_database(base_url: str) -> str:
    """A new, empty database on the test server, so tests never see each other's rows."""
    name = f"bd_test_{secrets.token_hex(6)}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once per run: tests get copies (an upgrade takes ~1 s)."""
    path = tmp_path_factory.mktemp("template") / "beamdesk.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def migrated_postgres() -> Iterator[str | None]:
    """The name of a PostgreSQL database migrated once per run, cloned per test (TEMPLATE)."""
    base = os.environ.get("BEAMDESK_TEST_POSTGRES_URL")
    if not base:
        yield None
        return
    url = _fresh_postgres_database(base)
    upgrade(url)
    yield make_url(url).database


def _sqlite_copy(template: Path, target: Path) -> str:
    # SQLite's backup API, not a file copy: the template's WAL (if any) is included.
    with sqlite3.connect(template) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return f"sqlite:///{target}"


def _postgres_copy(base_url: str, template: str) -> str:
    name = f"bd_test_{secrets.token_hex(6)}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    admin.dispose()
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, migrated_sqlite: Path) -> str:
    """A migrated, empty database of each kind: tests using it run on both."""
    if request.param == "sqlite":
        return _sqlite_copy(migrated_sqlite, tmp_path / "beamdesk.db")
    base = _postgres_url()
    assert base is not None
    template = request.getfixturevalue("migrated_postgres")
    return _postgres_copy(base, template)


@pytest.fixture
def sqlite_url(tmp_path: Path, migrated_sqlite: Path) -> str:
    return _sqlite_copy(migrated_sqlite, tmp_path / "beamdesk.db")


def make_settings(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    data_root = tmp_path / "data"
    data_root.mkdir(exist_ok=True)
    base = Settings(
        data_root=data_root.resolve(),
        database_url=database_url,
        secret_key=secrets.token_urlsafe(32),
        var_dir=tmp_path,
    )
    return base.changed(**overrides)


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    """Settings on SQLite; tests that must run on both databases use ``any_settings``."""
    return make_settings(tmp_path, sqlite_url)


@pytest.fixture
def any_settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings.database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def db(sessions: sessionmaker[Session]) -> Iterator[Session]:
    session = sessions()
    yield session
    session.rollback()
    session.close()


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    from beamdesk.web.app import create_app

    application = create_app(settings)
    yield application
    application.state.engine.dispose()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """A real uvicorn server in a thread, on a free loopback port."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("live server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(app) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    with LiveServer(app) as server:
        yield server


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    """Debian's chromium driven by Playwright (no browser download needed)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; run the suite with 'make test'")
        pytest.skip("chromium not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--use-gl=angle",
                "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    yield pg
    context.close()
