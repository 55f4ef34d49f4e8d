"""JSON problem details (RFC 9457) for the API, plain pages for browsers; never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from beamdesk.portal.proposals import InvalidRequest, PermissionDenied, StateConflict

log = logging.getLogger("beamdesk.web")

TITLES = {
    400: "Bad request",
    401: "Sign-in required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Selection too large",
    416: "Range not satisfiable",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


class Problem(HTTPException):
    """An error meant for the caller: ``detail`` says what went wrong and what to do."""

    def __init__(self, status: int, detail: str, title: str | None = None) -> None:
        super().__init__(status_code=status, detail=detail)
        self.title = title or TITLES.get(status, "Error")


def sentence(text: str) -> str:
    """'cannot do x' -> 'Cannot do x.' (str.capitalize would lowercase names like DOI)."""
    text = text.strip()
    if not text:
        return text
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "?", "!")) else ".")


def not_found(what: str = "No such thing, or you may not see it.") -> Problem:
    return Problem(404, what)


def wants_json(request: Request) -> bool:
    if request.url.path.startswith("/api/"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def problem_response(request: Request, status: int, title: str, detail: str) -> Response:
    if wants_json(request):
        # "message" repeats the detail for h5grove/H5Web clients, which read that field.
        body = {
            "type": "about:blank",
            "title": title,
            "status": status,
            "detail": detail,
            "message": detail,
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


async def unhandled_exception_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(
        request, 500, TITLES[500], "Something went wrong on our side; it has been logged."
    )


@contextmanager
def service_errors() -> Iterator[None]:
    """Turn the portal services' refusals into HTTP answers the caller can act on."""
    try:
        yield
    except PermissionDenied as exc:
        raise Problem(403, f"You {exc}.") from exc
    except StateConflict as exc:
        raise Problem(409, sentence(str(exc))) from exc
    except InvalidRequest as exc:
        raise Problem(422, sentence(str(exc))) from exc
