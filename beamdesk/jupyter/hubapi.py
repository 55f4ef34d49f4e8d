"""The portal's side of the hub's REST API: users, servers, and notebooks put into them.

The portal talks to the hub as a JupyterHub service with a scoped token (create users,
start servers, reach their servers' contents API). Blocking httpx calls: the web layer
calls these from synchronous routes, which FastAPI runs in its thread pool.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx

from beamdesk.errors import Unavailable
from beamdesk.jupyter.layout import HubLayout, service_token


class HubUnavailable(Unavailable, RuntimeError):
    """The hub did not answer, or refused the portal (503); the message is safe to show."""


class HubClient:
    def __init__(self, hub: HubLayout, *, timeout: float = 30.0) -> None:
        self.hub = hub
        self._http = httpx.Client(
            base_url=hub.listen_url,
            headers={"Authorization": f"token {service_token(hub)}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, ok: tuple[int, ...], **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise HubUnavailable(
                "JupyterHub is not reachable; ask the facility to start it (beamdesk hub)."
            ) from exc
        if response.status_code not in ok:
            raise HubUnavailable(
                f"JupyterHub answered {response.status_code} to {method} {path.split('?')[0]}."
            )
        return response

    @staticmethod
    def _user(name: str) -> str:
        return quote(name, safe="")

    def ensure_user(self, name: str) -> None:
        self._call("POST", f"/hub/api/users/{self._user(name)}", (201, 409))

    def server_ready(self, name: str) -> bool:
        user = self._call("GET", f"/hub/api/users/{self._user(name)}", (200,)).json()
        server = (user.get("servers") or {}).get("")
        return bool(server and server.get("ready"))

    def start_server(self, name: str, *, timeout: float = 90.0) -> None:
        """Start the user's default server (if it is not running) and wait until it answers."""
        if self.server_ready(name):
            return
        # 400 means "already running or starting": then just wait for it.
        self._call("POST", f"/hub/api/users/{self._user(name)}/server", (201, 202, 400))
        deadline = time.monotonic() + timeout
        while not self.server_ready(name):
            if time.monotonic() > deadline:
                raise HubUnavailable("Your Jupyter server did not start in time; try again.")
            time.sleep(0.25)

    def users(self) -> list[str]:
        return [u["name"] for u in self._call("GET", "/hub/api/users", (200,)).json()]

    def stop_server(self, name: str) -> None:
        """Stop the user's default server (204 stopped, 202 stopping, 400 not running)."""
        self._call("DELETE", f"/hub/api/users/{self._user(name)}/server", (202, 204, 400))

    def _contents(self, name: str, path: str) -> str:
        return f"/user/{self._user(name)}/api/contents/{quote(path)}"

    def exists(self, name: str, path: str) -> bool:
        response = self._call("GET", self._contents(name, path) + "?content=0", (200, 404))
        return response.status_code == 200

    def put_notebook(
        self, name: str, path: str, notebook: dict[str, Any], *, overwrite: bool = False
    ) -> bool:
        """Save ``notebook`` at ``path`` in the user's server (folders made as needed).

        Returns False when a notebook is there already and ``overwrite`` is False: the
        user may have worked in it, and it loads the same data anyway.
        """
        if not overwrite and self.exists(name, path):
            return False
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            folder = "/".join(parts[:i])
            if not self.exists(name, folder):
                self._call(
                    "PUT", self._contents(name, folder), (200, 201), json={"type": "directory"}
                )
        self._call(
            "PUT",
            self._contents(name, path),
            (200, 201),
            json={"type": "notebook", "format": "json", "content": notebook},
        )
        return True


def lab_path(name: str, notebook_path: str) -> str:
    """The hub-relative address of a notebook opened in the user's JupyterLab."""
    return f"/user/{quote(name, safe='')}/lab/tree/{quote(notebook_path)}"


def ticket_login_url(hub: HubLayout, ticket: str) -> str:
    return f"{hub.url}/hub/beamdesk-login?{httpx.QueryParams({'ticket': ticket})}"
