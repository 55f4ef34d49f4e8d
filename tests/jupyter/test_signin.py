"""Sign-in tickets and the hub's authenticator, on a real SQLite database."""

from __future__ import annotations

import asyncio
import stat
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select
from traitlets.config import Config

from beamdesk.db import utcnow
from beamdesk.jupyter.authenticator import BeamDeskAuthenticator
from beamdesk.jupyter.config import hub_settings, service_token
from beamdesk.jupyter.hub_config import configure, write_config
from beamdesk.jupyter.signin import HubTicket, TicketRefused, issue_ticket, redeem_ticket
from beamdesk.jupyter.workspace import TOKEN_NAME, prepare_workspace
from beamdesk.portal.auth import user_from_token
from beamdesk.portal.models import ApiToken, User
from tests.jupyter.conftest import NUMBER, OTHER, JWorld


def _run(coro):  # type: ignore[no-untyped-def]
    """Run a coroutine on a fresh loop in another thread (Playwright's sync API may hold
    this thread's loop when browser tests ran before)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _user(db, name: str) -> User:  # type: ignore[no-untyped-def]
    return db.scalar(select(User).where(User.username == name))


def test_ticket_works_once(sessions, settings, jworld: JWorld) -> None:  # type: ignore[no-untyped-def]
    with sessions() as db:
        ticket = issue_ticket(db, settings.secret_key, _user(db, "pi"), next_path="/hub/home")
        db.commit()
        assert db.scalar(select(HubTicket.nonce_hash)) not in ticket  # only a hash is kept
    with sessions() as db:
        got = redeem_ticket(db, settings.secret_key, ticket)
        db.commit()
    assert (got.username, got.next_path) == ("pi", "/hub/home")
    with sessions() as db, pytest.raises(TicketRefused, match="used already"):
        redeem_ticket(db, settings.secret_key, ticket)


def test_expired_ticket_is_refused(sessions, settings, jworld: JWorld) -> None:  # type: ignore[no-untyped-def]
    with sessions() as db:
        old = issue_ticket(
            db, settings.secret_key, _user(db, "pi"), now=utcnow() - timedelta(seconds=61)
        )
        fresh = issue_ticket(db, settings.secret_key, _user(db, "pi"))
        db.commit()
        with pytest.raises(TicketRefused, match="expired"):
            redeem_ticket(db, settings.secret_key, old)
        with pytest.raises(TicketRefused, match="expired"):
            redeem_ticket(db, settings.secret_key, fresh, now=utcnow() + timedelta(seconds=61))


def test_tampered_or_foreign_ticket_is_refused(sessions, settings, jworld: JWorld) -> None:  # type: ignore[no-untyped-def]
    with sessions() as db:
        ticket = issue_ticket(db, settings.secret_key, _user(db, "pi"))
        db.commit()
        payload, signature = ticket.rsplit(".", 1)
        # The first character: the last one of a base64 signature carries padding bits
        # that decoding ignores, so changing it may change nothing.
        flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
        for bad in [payload + "." + flipped, "x" + ticket, ticket[:-4], "", "a.b.c"]:
            with pytest.raises(TicketRefused):
                redeem_ticket(db, settings.secret_key, bad)
        with pytest.raises(TicketRefused, match="signature"):
            redeem_ticket(db, "another installation's secret", ticket)
        # None of those attempts used the real ticket up.
        assert redeem_ticket(db, settings.secret_key, ticket).username == "pi"


def test_inactive_user_is_refused(sessions, settings, jworld: JWorld) -> None:  # type: ignore[no-untyped-def]
    with sessions() as db:
        user = _user(db, "participant")
        ticket = issue_ticket(db, settings.secret_key, user)
        user.is_active = False
        db.commit()
        with pytest.raises(TicketRefused):
            redeem_ticket(db, settings.secret_key, ticket)


def test_authenticator_accepts_a_ticket_once(sessions, settings, jworld: JWorld) -> None:  # type: ignore[no-untyped-def]
    auth = BeamDeskAuthenticator(beamdesk_settings=settings, portal_url="http://portal.test")
    with sessions() as db:
        ticket = issue_ticket(db, settings.secret_key, _user(db, "pi"))
        db.commit()
    assert _run(auth.authenticate(None, {"ticket": ticket})) == {"name": "pi"}
    assert _run(auth.authenticate(None, {"ticket": ticket})) is None
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
    hub = hub_settings(settings)
    assert hub.state_dir == (settings.var_dir / "jupyter").resolve()
    assert first.JupyterHub.db_url == f"sqlite:///{hub.state_dir / 'jupyterhub.sqlite'}"
    assert first.JupyterHub.cookie_secret_file == str(hub.state_dir / "jupyterhub_cookie_secret")
    proxy_token = first.ConfigurableHTTPProxy.auth_token
    assert len(proxy_token) == 64 and proxy_token != second.ConfigurableHTTPProxy.auth_token
    token_file = hub.service_token_file
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert first.JupyterHub.services[0]["api_token"] == service_token(hub)
    assert first.JupyterHub.bind_url == settings.extra["hub_url"] + "/"
    assert "configure(c)" in write_config(settings).read_text()
