"""End to end: portal → "open in a notebook" → real JupyterHub + proxy → JupyterLab in
Chromium; the notebook, run by nbclient, reads what h5py reads; other people stay out;
sign-in links work once and only for a minute."""

from __future__ import annotations

import html
import json
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import h5py
import httpx
import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from sqlalchemy import select

from beamdesk.db import utcnow
from beamdesk.jupyter.hubapi import ticket_login_url
from beamdesk.jupyter.notebooks import SUMMARY_TAG
from beamdesk.jupyter.signin import issue_ticket
from beamdesk.portal.models import User
from tests.browser import sign_in
from tests.conftest import PASSWORD
from tests.jupyter.conftest import DATASET, FILE, NUMBER, JWorld, RunningHub

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def ticket_link(sessions, settings, hub: RunningHub, username: str, **kwargs) -> str:  # type: ignore[no-untyped-def]
    """A link as the portal makes it, bound to a browser session that is not the caller's."""
    with sessions() as db:
        user = db.scalar(select(User).where(User.username == username))
        ticket = issue_ticket(
            db, settings.secret_key, user, browser=secrets.token_urlsafe(32), **kwargs
        )
        db.commit()
    return ticket_login_url(hub.settings, ticket)


@contextmanager
def portal_browser(base: str, username: str) -> Iterator[httpx.Client]:
    """An HTTP client signed in to the portal, following redirects as a browser does."""
    with httpx.Client(follow_redirects=True, timeout=60) as client:
        page = client.get(f"{base}/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf, page.text[:300]
        form = {"username": username, "password": PASSWORD, "csrf_token": csrf.group(1)}
        assert client.post(f"{base}/login", data=form).status_code == 200
        yield client


def open_hub(client: httpx.Client, base: str, next_path: str) -> tuple[httpx.Response, str]:
    """``/jupyter`` as a browser follows it (its page refreshes to the one-time link);
    the answer where it lands, and the link."""
    page = client.get(f"{base}/jupyter", params={"next": next_path})
    found = re.search(r'<a href="([^"]+)" data-testid="jupyter-link"', page.text)
    assert found, page.text[:500]
    link = html.unescape(found.group(1))
    return client.get(link), link


def run_notebook(path: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(
            nb,
            timeout=120,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return nb


def test_open_in_a_notebook_end_to_end(
    page, live_server, hub: RunningHub, jworld: JWorld, sessions, settings
) -> None:  # type: ignore[no-untyped-def]
    # 1. pi signs in to the portal and opens the scan in a notebook.
    links: list[str] = []
    page.on("request", lambda r: links.append(r.url) if "/hub/beamdesk-login" in r.url else None)
    sign_in(page, live_server.url, "pi")
    page.goto(f"{live_server.url}/proposals/{NUMBER}")
    page.click(f"[data-testid='notebook-{FILE}']")
    # 2. … and lands in JupyterLab, in their own server, on the new notebook.
    try:
        page.wait_for_url(
            re.compile(re.escape(hub.url) + r"/user/pi/lab/tree/notebooks/.+"), timeout=90_000
        )
        # The notebook's own code, rendered by JupyterLab.
        page.wait_for_selector(".jp-Notebook .jp-Cell:has-text('beamdesk_client')", timeout=90_000)
    except Exception as exc:  # say where the browser got stuck, and what the hub said
        raise AssertionError(
            f"stuck at {page.url}: {page.inner_text('body')[:500]}\nhub log:\n{hub.log_text()}"
        ) from exc
    assert f"PROPOSAL = '{NUMBER}'" in page.inner_text(".jp-Notebook")
    page.screenshot(path=str(hub.log.parent / "jupyterlab.png"))
    assert len(links) == 1

    # 3. The notebook saved in pi's server, run by nbclient, reads what h5py reads.
    home = hub.settings.home_of("pi")
    made = list((home / "notebooks" / NUMBER).glob("*.ipynb"))
    assert len(made) == 1
    env = {
        "BEAMDESK_URL": live_server.url,
        "BEAMDESK_TOKEN": jworld.tokens["pi"],
        "BEAMDESK_PROPOSALS": str(settings.data_root),  # the folders the sandbox mounts
    }
    nb = run_notebook(made[0], env)
    summary_cell = next(c for c in nb.cells if SUMMARY_TAG in c.metadata.get("tags", []))
    summary = json.loads(summary_cell.outputs[0]["text"])
    with h5py.File(jworld.file, "r") as f:  # the independent reference
        counts = f[DATASET][()].astype(float)
    assert summary["shape"] == [5, 24, 32]
    assert summary["sum"] == pytest.approx(float(np.sum(counts)), rel=1e-12)
    assert summary["max"] == 1e6 and summary["min"] == counts.min()

    # 4. A replayed sign-in link is refused; so are expired and tampered ones.
    with httpx.Client(follow_redirects=False, timeout=30) as fresh:
        assert fresh.get(links[0]).status_code == 403
        expired = ticket_link(sessions, settings, hub, "pi", now=utcnow() - timedelta(seconds=61))
        assert fresh.get(expired).status_code == 403
        good = ticket_link(sessions, settings, hub, "pi", next_path="/hub/home")
        head, signature = good.rsplit(".", 1)
        tampered = f"{head}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
        assert fresh.get(tampered).status_code == 403
        # Untampered, but asked for by another browser: the hub sends this one to the
        # portal to prove it asked, and the portal refuses (login CSRF).
        step1 = fresh.get(good)
        assert step1.status_code == 302 and "/jupyter/confirm" in step1.headers["location"]
        assert fresh.get(step1.headers["location"]).status_code in (400, 401)
    # The browser that asks for a link gets in, once.
    with portal_browser(live_server.url, "pi") as own:
        landed, first = open_hub(own, live_server.url, "/hub/home")
        assert landed.status_code == 200 and str(landed.url).startswith(f"{hub.url}/hub/home")
        assert own.get(first).status_code == 403  # used, even in its own browser

    # 5. outsider, signed in to the hub, reaches neither pi's server nor pi's data.
    with portal_browser(live_server.url, "outsider") as outsider:
        home_page, _ = open_hub(outsider, live_server.url, "/hub/home")
        assert home_page.status_code == 200 and "/hub/home" in str(home_page.url)
        for url in [
            f"{hub.url}/user/pi/lab",
            f"{hub.url}/user/pi/api/contents/notebooks",
            f"{hub.url}/user/pi/files/proposals/{NUMBER}/{FILE}",
        ]:
            answer = outsider.get(url)
            assert answer.status_code == 403, (url, answer.status_code, str(answer.url))
            assert b"counts" not in answer.content
        assert outsider.get(f"{hub.url}/hub/api/users/pi").status_code in (403, 404)
    # (What outsider's own server mounts is tested from her kernel: test_notebook_sandbox.)
    with httpx.Client(base_url=live_server.url) as api:
        bearer = {"Authorization": f"Bearer {jworld.tokens['outsider']}"}
        answer = api.get(
            f"/api/proposals/{NUMBER}/h5/data",
            params={"file": FILE, "path": DATASET},
            headers=bearer,
        )
        assert answer.status_code == 404
