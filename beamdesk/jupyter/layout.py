"""Where the hub listens and keeps its state, derived from BeamDesk's settings.

The hub's settings are ``Settings.hub`` (``BEAMDESK_HUB_*``), so the portal process and the
hub process, started from the same environment, agree on addresses and on the service token.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from beamdesk.settings import Settings

SERVICE_NAME = "beamdesk-portal"
# Scopes of the portal's service token: create users, start their servers, reach their
# servers' contents API (to put a notebook there). Nothing else.
SERVICE_SCOPES = ["admin:users", "admin:servers", "access:servers"]
# A source checkout (`make jupyter-proxy` installs the proxy there); an installed wheel has none.
CHECKOUT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class HubLayout:
    """Addresses, folders and commands of the JupyterHub that ``beamdesk hub`` runs."""

    url: str  # public address of the hub, as browsers reach it
    hub_port: int  # the hub's own (internal) port, on loopback
    proxy_api_port: int  # configurable-http-proxy's REST API, on loopback
    state_dir: Path  # the hub's database, cookie secret, tokens, user homes
    portal_url: str  # the portal's address as the hub and the notebooks reach it
    proxy_command: str
    extra_config: str  # an optional jupyterhub_config fragment a facility adds (spawners)
    db_url: str = ""  # the hub's own database; "" for SQLite in state_dir
    spawner: str = "sandbox"  # "sandbox" (docs/jupyter.md) or "simple" (one account, unsafe)
    mem_limit: str = "4G"  # address space per process of a server; "" for none
    cpu_limit: float = 0.0  # cores a server may use; 0 for all
    max_processes: int = 512  # processes and threads of one user's account; 0 for none
    bind_url: str = ""  # where the hub's proxy listens (the portal calls it there); "" = url

    @property
    def listen_url(self) -> str:
        return self.bind_url or self.url

    @property
    def public_host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def public_port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def api_url(self) -> str:
        return self.listen_url.rstrip("/") + "/hub/api"

    @property
    def home_root(self) -> Path:
        return self.state_dir / "home"

    def home_of(self, username: str) -> Path:
        return self.home_root / username

    @property
    def service_token_file(self) -> Path:
        return self.state_dir / "service_token"


def default_proxy_command() -> str:
    """configurable-http-proxy on PATH; in a source checkout, the one ``make jupyter-proxy``
    pinned there first. ``BEAMDESK_HUB_PROXY_COMMAND`` overrides both."""
    local = (
        CHECKOUT / "tools" / "jupyter-proxy" / "node_modules" / ".bin" / "configurable-http-proxy"
    )
    if (CHECKOUT / "pyproject.toml").is_file() and local.exists():
        return str(local)
    return shutil.which("configurable-http-proxy") or "configurable-http-proxy"


def hub_layout(settings: Settings) -> HubLayout:
    """The hub's addresses and folders: ``settings.hub``, with the derived defaults filled in."""
    given = settings.hub
    url = given.url.rstrip("/")
    bind_url = given.bind_url.rstrip("/")
    public_port = urlsplit(bind_url or url).port or 8800
    return HubLayout(
        url=url,
        hub_port=given.port or public_port + 1,
        proxy_api_port=given.proxy_api_port or public_port + 2,
        state_dir=Path(given.dir or settings.var_dir / "jupyter").resolve(),
        portal_url=(given.portal_url or settings.base_url).rstrip("/"),
        proxy_command=given.proxy_command or default_proxy_command(),
        extra_config=given.extra_config,
        db_url=given.db_url,
        spawner=given.spawner,
        mem_limit=given.mem_limit,
        cpu_limit=given.cpu_limit,
        max_processes=given.max_processes,
        bind_url=bind_url,
    )


def service_token(hub: HubLayout) -> str:
    """The portal's token for the hub's API, created once (0600) and shared by both processes.

    Generated, never a constant: with it one can start any user's server.
    """
    path = hub.service_token_file
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # the other process won the race
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return token
