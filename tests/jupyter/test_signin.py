"""Sign-in tickets and the hub's authenticator, on a real SQLite database."""

from __future__ import annotations

import asyncio
import hashlib
import re
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application as TornadoApp
from traitlets.config import Config

from beamdesk.db import utcnow
from beamdesk.jupyter.authenticator import (
    BeamDeskAuthenticator,
    TicketLoginHandler,
    TicketSigninHandler,
)
from beamdesk.jupyter.hub_config import configure, write_config
from beamdesk.jupyter.layout import hub_layout, service_token
from beamdesk.jupyter.signin import (
    HubTicket,
    TicketRefused,
    check_ticket,
    confirm_ticket,
    issue_ticket,
    redeem_ticket,
)
from beamdesk.jupyter.workspace import TOKEN_NAME, prepare_workspace
from beamdesk.portal.auth import user_from_token
from beamdesk.portal.models import ApiToken, User
from tests.conftest import PASSWORD
from tests.jupyter.conftest import NUMBER, OTHER, JWorld


def _run(coro):  # type: ignore[no-untyped-def]
    """Run a coroutine on a fresh loop in another thread (Playwright's sync API may hold
    this thread's loop when browser tests ran before)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _user(db, name: str) -> User:  # type: ignore[no-untyped-def]
    return db.scalar(select(User).where(User.username == name))


BROWSER = "b" * 43  # the portal session's binding secret
HUB = "h" * 43  # the hub's cookie secret in the same browser


def _hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _confirmed(db, key: str, user: User, **kwargs) -> str:  # type: ignore[no-untyped-def]
    """A ticket as the portal hands it out, confirmed for the hub cookie ``HUB`` (steps 1–2)."""
    ticket = issue_ticket(db, key, user, browser=BROWSER, **kwargs)
    confirm_ticket(db, key, ticket, browser=BROWSER, user_id=user.id, hub_hash=_hex(HUB))
    return ticket


def test_ticket_works_once(sessions, settings, jworld: JWorld) -> None:  # type: ignore[no-untyped-def]
    key = settings.secret_key
    with sessions() as db:
        ticket = _confirmed(db, key, _user(db, "pi"), next_path="/hub/home")
        db.commit()
        assert db.scalar(select(HubTicket.nonce_hash)) not in ticket  # only a hash is kept
    with sessions() as db:
        got = redeem_ticket(db, key, ticket, hub_browser=HUB)
        db.commit()
    assert (got.username, got.next_path) == ("pi", "/hub/home")
    with sessions() as db, pytest.raises(TicketRefused, match="used already"):
        redeem_ticket(db, key, ticket, hub_browser=HUB)


def test_expired_ticket_is_refused(sessions, settings, jworld: JWorld) -> None:  # type: ignore[no-untyped-def]
    key = settings.secret_key
    with sessions() as db:
        old = issue_ticket(
            db, key, _user(db, "pi"), browser=BROWSER, now=utcnow() - timedelta(seconds=61)
        )
        fresh = _confirmed(db, key, _user(db, "pi"))
        db.commit()
        with pytest.raises(TicketRefused, match="expired"):
            redeem_ticket(db, key, old, hub_browser=HUB)
        with pytest.raises(TicketRefused, match="expired"):
            redeem_ticket(db, key, fresh, hub_browser=HUB, now=utcnow() + timedelta(seconds=61))


def test_tampered_or_foreign_ticket_is_refused(sessions, settings, jworld: JWorld) -> None:  # type: ignore[no-untyped-def]
    key = settings.secret_key
    with sessions() as db:
        ticket = _confirmed(db, key, _user(db, "pi"))
        db.commit()
        payload, signature = ticket.rsplit(".", 1)
        # The first character: the last one of a base64 signature carries padding bits
        # that decoding ignores, so changing it may change nothing.
        flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
        for bad in [payload + "." + flipped, "x" + ticket, ticket[:-4], "", "a.b.c"]:
            with pytest.raises(TicketRefused):
                redeem_ticket(db, key, bad, hub_browser=HUB)
        with pytest.raises(TicketRefused, match="signature"):
            redeem_ticket(db, "another installation's secret", ticket, hub_browser=HUB)
        # None of those attempts used the real ticket up.
        assert redeem_ticket(db, key, ticket, hub_browser=HUB).username == "pi"


def test_inactive_user_is_refused(sessions, settings, jworld: JWorld) -> None:  # type: ignore[no-untyped-def]
    with sessions() as db:
        user = _user(db, "participant")
        ticket = _confirmed(db, settings.secret_key, user)
        user.is_active = False
        db.commit()
        with pytest.raises(TicketRefused):
            redeem_ticket(db, settings.secret_key, ticket, hub_browser=HUB)


def test_a_ticket_without_a_browser_is_refused(sessions, settings, jworld: JWorld) -> None:  # type: ignore[no-untyped-def]
    """A row from before binding existed (no browser hash) opens nothing."""
    key = settings.secret_key
    with sessions() as db:
        ticket = _confirmed(db, key, _user(db, "pi"))
        db.execute(HubTicket.__table__.update().values(browser_hash=None))
        db.commit()
        assert not check_ticket(db, key, ticket).bound
        with pytest.raises(TicketRefused, match="not bound"):
            redeem_ticket(db, key, ticket, hub_browser=HUB)
    with pytest.raises(TypeError):
        issue_ticket(db, key, _user(db, "pi"))  # type: ignore[call-arg]


def test_authenticator_accepts_a_ticket_once(sessions, settings, jworld: JWorld) -> None:  # type: ignore[no-untyped-def]
    auth = BeamDeskAuthenticator(beamdesk_settings=settings, portal_url="http://portal.test")
    with sessions() as db:
        ticket = _confirmed(db, settings.secret_key, _user(db, "pi"))
        db.commit()
    data = {"ticket": ticket, "hub_browser": HUB}
    assert _run(auth.authenticate(None, {"ticket": ticket})) is None  # not in its browser
    assert _run(auth.authenticate(None, data)) == {"name": "pi"}
    assert _run(auth.authenticate(None, data)) is None
    assert _run(auth.authenticate(None, {})) is None
    assert auth.login_url("/hub/") == "http://portal.test/jupyter"
    assert auth.normalize_username("Pi") == "Pi"  # the portal's name, unchanged


def test_workspace_links_readable_proposals_and_renews_token(
    sessions, settings, jworld: JWorld, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    home_root = tmp_path / "homes"
    with sessions() as db:
        first = prepare_workspace(
            db,
            username="pi",
            home_root=home_root,
            data_root=settings.data_root,
            portal_url="http://p",
        )
        db.commit()
    assert first.linked == [NUMBER]
    link = first.proposals_dir / NUMBER
    assert link.is_symlink() and link.resolve() == (settings.data_root / NUMBER).resolve()
    assert not (first.proposals_dir / OTHER).exists()
    assert stat.S_IMODE(first.home.stat().st_mode) == 0o700
    assert first.environment["BEAMDESK_URL"] == "http://p"
    with sessions() as db:
        second = prepare_workspace(
            db,
            username="pi",
            home_root=home_root,
            data_root=settings.data_root,
            portal_url="http://p",
        )
        db.commit()
        # The previous server token is dead; only the new one works.
        assert user_from_token(db, first.environment["BEAMDESK_TOKEN"]) is None
        assert user_from_token(db, second.environment["BEAMDESK_TOKEN"]).username == "pi"
        live = db.scalars(
            select(ApiToken).where(ApiToken.name == TOKEN_NAME, ApiToken.revoked_at.is_(None))
        ).all()
        assert len(live) == 1
    with sessions() as db:
        outsider = prepare_workspace(
            db,
            username="outsider",
            home_root=home_root,
            data_root=settings.data_root,
            portal_url="http://p",
        )
    assert outsider.linked == [OTHER]
    # A stale link (access lost) disappears at the next start.
    (outsider.proposals_dir / NUMBER).symlink_to(settings.data_root / NUMBER)
    with sessions() as db:
        again = prepare_workspace(
            db,
            username="outsider",
            home_root=home_root,
            data_root=settings.data_root,
            portal_url="http://p",
        )
    assert sorted(p.name for p in again.proposals_dir.iterdir()) == [OTHER]


def test_hub_config_keeps_state_under_var_and_generates_secrets(settings) -> None:  # type: ignore[no-untyped-def]
    first, second = Config(), Config()
    configure(first, settings)
    configure(second, settings)
    hub = hub_layout(settings)
    assert hub.state_dir == (settings.var_dir / "jupyter").resolve()
    assert first.JupyterHub.db_url == f"sqlite:///{hub.state_dir / 'jupyterhub.sqlite'}"
    assert first.JupyterHub.cookie_secret_file == str(hub.state_dir / "jupyterhub_cookie_secret")
    proxy_token = first.ConfigurableHTTPProxy.auth_token
    assert len(proxy_token) == 64 and proxy_token != second.ConfigurableHTTPProxy.auth_token
    token_file = hub.service_token_file
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert first.JupyterHub.services[0]["api_token"] == service_token(hub)
    assert first.JupyterHub.bind_url == settings.hub.url + "/"
    assert "configure(c)" in write_config(settings).read_text()


def test_bound_ticket_needs_the_browser_that_asked(sessions, settings, jworld: JWorld) -> None:  # type: ignore[no-untyped-def]
    key = settings.secret_key
    with sessions() as db:
        pi, other = _user(db, "pi"), _user(db, "participant")
        ticket = issue_ticket(db, key, pi, next_path="/hub/home", browser=BROWSER)
        db.commit()
        assert db.scalar(select(HubTicket.browser_hash)) == _hex(BROWSER)
        with pytest.raises(ValueError):
            issue_ticket(db, key, pi, browser="short")
    with sessions() as db:
        assert check_ticket(db, key, ticket).bound  # looking changes nothing
        # Not confirmed yet: the hub cannot consume it, whatever its cookie.
        with pytest.raises(TicketRefused, match="not confirmed"):
            redeem_ticket(db, key, ticket, hub_browser=HUB)
        # Confirmed only by the asking browser, signed in as the ticket's user.
        for browser, user_id in [("x" * 43, pi.id), ("", pi.id), (BROWSER, other.id)]:
            with pytest.raises(TicketRefused, match="another browser"):
                confirm_ticket(
                    db, key, ticket, browser=browser, user_id=user_id, hub_hash=_hex(HUB)
                )
        with pytest.raises(TicketRefused, match="no hub binding"):
            confirm_ticket(db, key, ticket, browser=BROWSER, user_id=pi.id, hub_hash="nothex")
        confirm_ticket(db, key, ticket, browser=BROWSER, user_id=pi.id, hub_hash=_hex(HUB))
        confirm_ticket(db, key, ticket, browser=BROWSER, user_id=pi.id, hub_hash=_hex(HUB))
        with pytest.raises(TicketRefused, match="another browser"):  # no re-binding
            confirm_ticket(db, key, ticket, browser=BROWSER, user_id=pi.id, hub_hash=_hex("y"))
        db.commit()
    with sessions() as db:
        for wrong in ("", "y" * 43):
            with pytest.raises(TicketRefused, match="another browser"):
                redeem_ticket(db, key, ticket, hub_browser=wrong)
        got = redeem_ticket(db, key, ticket, hub_browser=HUB)
        db.commit()
    assert (got.username, got.next_path) == ("pi", "/hub/home")
    with sessions() as db, pytest.raises(TicketRefused, match="used already"):
        redeem_ticket(db, key, ticket, hub_browser=HUB)


def test_authenticator_redeems_a_bound_ticket_for_its_browser(
    sessions, settings, jworld: JWorld
) -> None:  # type: ignore[no-untyped-def]
    auth = BeamDeskAuthenticator(beamdesk_settings=settings, portal_url="http://portal.test")
    key = settings.secret_key
    with sessions() as db:
        pi = _user(db, "pi")
        bound = issue_ticket(db, key, pi, browser=BROWSER)
        db.commit()
    assert auth.check(bound).bound
    assert auth.check("not a ticket") is None
    url = urlsplit(auth.confirm_url(bound, HUB))
    assert (url.netloc, url.path) == ("portal.test", "/jupyter/confirm")
    assert parse_qs(url.query) == {"ticket": [bound], "hub": [_hex(HUB)]}  # never the secret
    assert _run(auth.authenticate(None, {"ticket": bound, "hub_browser": HUB})) is None
    with sessions() as db:
        confirm_ticket(db, key, bound, browser=BROWSER, user_id=pi.id, hub_hash=_hex(HUB))
        db.commit()
    assert _run(auth.authenticate(None, {"ticket": bound})) is None  # no hub cookie
    assert _run(auth.authenticate(None, {"ticket": bound, "hub_browser": HUB})) == {"name": "pi"}
    handlers = dict(auth.get_handlers(None))
    assert set(handlers) == {"/beamdesk-login", "/beamdesk-signin"}


def test_a_disabled_account_loses_the_hub_at_the_next_refresh(
    sessions, settings, jworld: JWorld
) -> None:  # type: ignore[no-untyped-def]
    auth = BeamDeskAuthenticator(beamdesk_settings=settings, portal_url="http://portal.test")
    assert _run(auth.refresh_user(SimpleNamespace(name="pi"))) is True
    assert _run(auth.refresh_user(SimpleNamespace(name="nobody"))) is False
    with sessions() as db:
        _user(db, "pi").is_active = False
        db.commit()
    assert _run(auth.refresh_user(SimpleNamespace(name="pi"))) is False


class _Stubbed:
    """The ticket handlers as JupyterHub runs them, with what needs a whole hub (its
    database, its users, its templates) replaced: only our code runs for real."""

    async def prepare(self) -> None:  # JupyterHub looks up the current user here
        return None

    async def login_user(self, data=None):  # type: ignore[no-untyped-def]
        got = await self.authenticator.authenticate(self, data)  # type: ignore[attr-defined]
        return SimpleNamespace(name=got["name"], escaped_name=got["name"]) if got else None

    def get_next_url(self, user=None, default=None) -> str:  # type: ignore[no-untyped-def]
        return "/hub/home"

    def write_error(self, status_code: int, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.finish(f"error {status_code}")  # type: ignore[attr-defined]


class _Login(_Stubbed, TicketLoginHandler):
    pass


class _Signin(_Stubbed, TicketSigninHandler):
    pass


@contextmanager
def _hub_server(auth: BeamDeskAuthenticator) -> Iterator[str]:
    """The two handlers on a real tornado server, on a loopback port, in a thread."""
    handlers = dict(auth.get_handlers(None))
    assert handlers == {
        "/beamdesk-login": TicketLoginHandler,
        "/beamdesk-signin": TicketSigninHandler,
    }
    app = TornadoApp(
        [("/hub/beamdesk-login", _Login), ("/hub/beamdesk-signin", _Signin)],
        authenticator=auth,
        hub=SimpleNamespace(base_url="/hub/"),
        base_url="/",
        db=SimpleNamespace(dirty=False),  # the hub's own database: untouched here
    )
    sockets = bind_sockets(0, "127.0.0.1")
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        HTTPServer(app).add_sockets(sockets)
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def test_the_hub_handlers_sign_in_only_the_browser_that_asked(
    client, sessions, settings, jworld: JWorld
) -> None:  # type: ignore[no-untyped-def]
    """Portal (TestClient) → hub handlers (tornado) → portal → hub, as a browser goes."""
    auth = BeamDeskAuthenticator(beamdesk_settings=settings, portal_url="http://testserver")
    login = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)
    form = {"username": "outsider", "password": PASSWORD, "csrf_token": token}
    assert client.post("/login", data=form, follow_redirects=False).status_code == 303
    page = client.get("/jupyter", params={"next": "/hub/home"})
    link = re.search(r'href="([^"]*/hub/beamdesk-login\?[^"]+)"', page.text).group(1)
    first = urlsplit(link.replace("&amp;", "&"))
    path = f"{first.path}?{first.query}"
    with (
        _hub_server(auth) as hub,
        httpx.Client(base_url=hub) as own,
        httpx.Client(base_url=hub) as victim,
    ):
        # Step 1 at the hub: a cookie of its own, and back to the portal to confirm.
        step1 = own.get(path)
        assert step1.status_code == 302, step1.text
        cookie = step1.headers["set-cookie"].lower()
        assert cookie.startswith("beamdesk-hub-browser=") and "httponly" in cookie
        assert "path=/hub/" in cookie and "samesite=lax" in cookie
        back = urlsplit(step1.headers["location"])
        assert (back.netloc, back.path) == ("testserver", "/jupyter/confirm")
        secret = own.cookies["beamdesk-hub-browser"]
        assert parse_qs(back.query)["hub"] == [_hex(secret)]
        # The victim's browser, made to open the same link, gets its own hub cookie and
        # is sent to the portal, which refuses it (another person's, or nobody's).
        victim_back = urlsplit(victim.get(path).headers["location"])
        stranger = TestClient(client.app).get(f"/jupyter/confirm?{victim_back.query}")
        assert stranger.status_code == 401
        # Step 2, the portal, in the asking browser: on to the hub's last step.
        step2 = client.get(f"/jupyter/confirm?{back.query}", follow_redirects=False)
        assert step2.status_code == 303
        last = urlsplit(step2.headers["location"])
        assert last.path == "/hub/beamdesk-signin"
        # Step 3: only the browser holding the confirmed hub cookie gets in.
        assert victim.get(f"{last.path}?{last.query}").status_code == 403
        done = own.get(f"{last.path}?{last.query}")
        assert done.status_code == 302 and done.headers["location"] == "/hub/home"
        assert own.get(f"{last.path}?{last.query}").status_code == 403  # used
        assert own.get(path).status_code == 403  # at step 1 too

        # A ticket without a browser (a row from before binding existed) opens nothing.
        with sessions() as db:
            pi = _user(db, "pi")
            unbound = issue_ticket(db, settings.secret_key, pi, browser=BROWSER)
            db.execute(HubTicket.__table__.update().values(browser_hash=None))
            db.commit()
        assert victim.get("/hub/beamdesk-login", params={"ticket": unbound}).status_code == 403
