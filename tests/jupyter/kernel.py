"""Run code in a kernel of a user's server, through the server's REST and websocket API,
as JupyterLab does: the code runs wherever (and as whoever) the spawner put that server."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
from websockets.sync.client import connect


def _message(code: str, session: str) -> dict[str, Any]:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "username": "test",
            "session": session,
            "date": "",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
        },
        "channel": "shell",
        "buffers": [],
    }


def run_in_kernel(server_url: str, token: str, code: str, *, timeout: float = 90.0) -> str:
    """Start a kernel in the server at ``server_url``, run ``code``, return its stdout.

    Raises AssertionError with the kernel's traceback if the code raised.
    """
    headers = {"Authorization": f"token {token}"}
    with httpx.Client(base_url=server_url, headers=headers, timeout=60) as http:
        kernel = http.post("/api/kernels", json={"name": "python3"})
        assert kernel.status_code == 201, (kernel.status_code, kernel.text[:300])
        kernel_id = kernel.json()["id"]
        try:
            ws_url = server_url.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
            request = _message(code, uuid.uuid4().hex)
            out: list[str] = []
            deadline = time.monotonic() + timeout
            with connect(ws_url, additional_headers=headers, open_timeout=60) as ws:
                ws.send(json.dumps(request))
                while True:
                    left = deadline - time.monotonic()
                    assert left > 0, f"the kernel did not finish; output so far: {out}"
                    reply = json.loads(ws.recv(timeout=left))
                    if reply.get("parent_header", {}).get("msg_id") != request["header"]["msg_id"]:
                        continue
                    kind = reply["msg_type"]
                    if kind == "stream":
                        out.append(reply["content"]["text"])
                    elif kind == "error":
                        raise AssertionError("\n".join(reply["content"]["traceback"]))
                    elif kind == "status" and reply["content"]["execution_state"] == "idle":
                        return "".join(out)
        finally:
            http.delete(f"/api/kernels/{kernel_id}")
