"""The server's reader pool (``beamdesk.sandbox``) as a route dependency.

Routes never open a proposal's files: they check access, then ask :func:`read` to run a
named operation in a sandboxed worker of that proposal's folder. A worker's refusal or
failure is an error of its kind (``beamdesk.errors``); an unsafe file is audited.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from beamdesk.portal.auth import audit
from beamdesk.sandbox.pool import ReaderError, ReaderLimits, ReaderPool, Streamed
from beamdesk.settings import Settings

log = logging.getLogger("beamdesk.web")


def make_pool(app: FastAPI, settings: Settings) -> ReaderPool:
    def record(folder: Path, file: str, what: str) -> None:
        with app.state.sessionmaker() as db:
            audit(db, "unsafe_file", None, f"{folder.name}/{file}", detail=what)
            db.commit()

    return ReaderPool(ReaderLimits.of(settings), on_incident=record)


def reader_pool(request: Request) -> ReaderPool:
    pool: ReaderPool = request.app.state.readers
    return pool


Readers = Annotated[ReaderPool, Depends(reader_pool)]


def read(pool: ReaderPool, folder: Path, op: str, file: str | None = None, **args: Any) -> Any:
    """The value of ``op`` on the proposal ``folder``. A refusal is a :class:`ReaderError`
    of the kind of the worker's status, which the error handler answers as such."""
    return pool.call(folder, op, file, **args)


def respond(answer: Any) -> Response:
    """A worker's encoded reply (``Reply`` or ``Stream``) as an HTTP response."""
    if isinstance(answer, Streamed):
        return StreamingResponse(
            _guarded(answer), media_type=answer.media_type, headers=answer.headers
        )
    return Response(
        memoryview(answer["body"]), media_type=answer["media_type"], headers=answer["headers"]
    )


def _guarded(answer: Streamed) -> Any:
    try:
        for chunk in answer.chunks:
            yield memoryview(chunk)
    except ReaderError as exc:  # headers are sent: all that is left is to cut the body
        log.warning("stream cut: %s", exc.detail)
