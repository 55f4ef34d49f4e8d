"""The request id of each HTTP request: the proxy's ``X-Request-ID`` if valid, else a new one.

It is kept for the log lines of that request (``beamdesk.logs``) and returned in the answer.
"""

from __future__ import annotations

import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from beamdesk.logs import REQUEST_ID_HEADER, request_id, valid_request_id


class RequestIdMiddleware:
    """The proxy's ``X-Request-ID`` if valid, else a new one: in the logs and the answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope.get("headers", []):
            if name == REQUEST_ID_HEADER.encode():
                given = value.decode("latin-1")
                break
        rid = given if valid_request_id(given) else secrets.token_hex(16)
        # Not reset afterwards: each request runs in a task (and context) of its own, and
        # uvicorn's lines about it (access, unhandled errors) come after the app returns.
        request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() != REQUEST_ID_HEADER.encode()
                ]
                message["headers"] = [*headers, (REQUEST_ID_HEADER.encode(), rid.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)
