"""Errors become answers here, in one place: JSON problem details (RFC 9457) for the API,
plain pages for browsers; never a traceback.

Routes and services raise the kinds of :mod:`beamdesk.errors` (``raise NotFound("No such
job.")``); :func:`beamdesk_error_handler` answers with their status, title and detail.
Anything else is a bug: :func:`unhandled_exception_handler` logs it with its traceback and
answers 500 with the request id to quote, never the exception's text.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from beamdesk.errors import KINDS, BeamDeskError, NotFound, sentence
from beamdesk.logs import REQUEST_ID_HEADER, request_id

__all__ = ["not_found", "problem_response", "sentence"]

log = logging.getLogger("beamdesk.web")

# The kinds' titles, and those of the answers Starlette gives by itself (405, an unknown path).
TITLES = {status: kind.title for status, kind in KINDS.items()} | {
    405: "Method not allowed",
    500: BeamDeskError.title,
}


def not_found(what: str = "No such thing, or you may not see it.") -> NotFound:
    return NotFound(what)


def wants_json(request: Request) -> bool:
    if request.url.path.startswith("/api/"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def problem_response(
    request: Request, status: int, title: str, detail: str, **extra: Any
) -> Response:
    """The answer to an error: problem JSON (``extra`` members added) or the error page."""
    if wants_json(request):
        # "message" repeats the detail for h5grove/H5Web clients, which read that field.
        body = {
            "type": "about:blank",
            "title": title,
            "status": status,
            "detail": detail,
            "message": detail,
            **extra,
        }
        return JSONResponse(body, status_code=status, media_type="application/problem+json")
    templates = request.app.state.templates
    # The header shows who is signed in, as on every other page (not "Sign in" on a 404);
    # not when the database is what failed.
    from beamdesk.web.deps import page_user  # deps imports this module

    user = page_user(request) if status != 503 else None
    return templates.TemplateResponse(
        request,
        "error.html",
        {"status": status, "title": title, "detail": detail, "user": user},
        status_code=status,
    )


async def http_exception_handler(request: Request, exc: StarletteHTTPException) -> Response:
    title = getattr(exc, "title", None) or TITLES.get(exc.status_code, "Error")
    detail = exc.detail if isinstance(exc.detail, str) else title
    response = problem_response(request, exc.status_code, title, detail)
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


async def validation_exception_handler(request: Request, exc: RequestValidationError) -> Response:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return problem_response(request, 422, TITLES[422], "; ".join(parts) or "invalid input")


async def out_of_range_handler(request: Request, exc: Exception) -> Response:
    """A number too big for the database (e.g. /api/jobs/99999999999999999999, or offset=
    2**70): the caller's mistake, so 422, not a 500. SQLite raises OverflowError before the
    query runs; PostgreSQL answers "integer out of range" (a DataError)."""
    return problem_response(request, 422, TITLES[422], "A number in the request is out of range.")


async def database_unavailable_handler(request: Request, exc: Exception) -> Response:
    """The database cannot be reached (restarting, network, "database is locked"): 503 with
    Retry-After, never a traceback. The pool (pool_pre_ping) reconnects by itself once it
    is back, so the next request after the outage works without anyone stepping in."""
    log.warning(
        "database unavailable on %s %s: %s",
        request.method,
        request.url.path,
        str(exc).splitlines()[0][:200],
    )
    response = problem_response(
        request,
        503,
        "Service unavailable",
        "The database is not reachable right now; try again in a few seconds.",
    )
    response.headers["Retry-After"] = "5"
    return response


async def beamdesk_error_handler(request: Request, exc: Exception) -> Response:
    """A :class:`~beamdesk.errors.BeamDeskError`: its status, title and detail."""
    assert isinstance(exc, BeamDeskError)
    if exc.status >= 500 and type(exc).status == BeamDeskError.status:
        # A failure reported as such (a reader worker's fault, logged where it happened).
        log.warning("failed on %s %s: %s", request.method, request.url.path, exc.detail)
        return _internal_error(request)
    response = problem_response(request, exc.status, exc.title, exc.detail)
    response.headers.update(exc.headers)
    return response


async def unhandled_exception_handler(request: Request, exc: Exception) -> Response:
    """A bug (ValueError, KeyError, ... from our code): logged with its traceback, 500."""
    rid = request_id.get()
    log.exception(
        "unhandled error on %s %s (request id %s)",
        request.method,
        request.url.path,
        rid,
        extra={"request_id": rid},
    )
    return _internal_error(request)


def _internal_error(request: Request) -> Response:
    """500 with the request id to quote, and nothing of the error itself. This handler runs
    outside the request-id middleware, so it sets the ``X-Request-ID`` header itself."""
    rid = request_id.get()
    response = problem_response(
        request,
        500,
        TITLES[500],
        f"Something went wrong on our side; it has been logged. Quote request id {rid}.",
        request_id=rid,
    )
    response.headers[REQUEST_ID_HEADER] = rid
    return response
