"""BeamDesk's one error model: every error meant for a caller is a :class:`BeamDeskError`.

A kind (:class:`Invalid`, :class:`NotFound`, ...) carries the HTTP status and title; an
instance carries ``detail``, one sentence for the caller: what went wrong and what to do.
Domain code raises a kind, or its own exception class derived from one; the web layer
turns any of them into an answer in one place (``beamdesk.web.problems``), the command
line prints ``detail``. Anything else that escapes (ValueError, KeyError, ...) is a bug:
a 500 with a request id, logged with its traceback, never its text.

This module is at the bottom of the layers: it imports nothing from BeamDesk.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class BeamDeskError(Exception):
    """An error the caller can act on; ``detail`` says what went wrong and what to do."""

    status: ClassVar[int] = 500
    title: str = "Internal error"

    def __init__(
        self, detail: str, *, title: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if title is not None:  # a more telling title than the kind's, e.g. "Sign-in refused"
            self.title = title
        #: extra answer headers, e.g. ``Retry-After`` of a :class:`TooMany`
        self.headers: dict[str, str] = dict(headers or {})


class BadRequest(BeamDeskError):
    status = 400
    title = "Bad request"


class Unauthorized(BeamDeskError):
    status = 401
    title = "Sign-in required"


class Forbidden(BeamDeskError):
    status = 403
    title = "Forbidden"


class NotFound(BeamDeskError):
    status = 404
    title = "Not found"


class Conflict(BeamDeskError):
    status = 409
    title = "Conflict"


class TooLarge(BeamDeskError):
    status = 413
    title = "Selection too large"


class RangeNotSatisfiable(BeamDeskError):
    status = 416
    title = "Range not satisfiable"


class Invalid(BeamDeskError):
    status = 422
    title = "Invalid input"


class TooMany(BeamDeskError):
    status = 429
    title = "Too many requests"


class BadGateway(BeamDeskError):
    status = 502
    title = "Bad gateway"


class Unavailable(BeamDeskError):
    status = 503
    title = "Service unavailable"


KINDS: dict[int, type[BeamDeskError]] = {
    kind.status: kind
    for kind in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        TooLarge,
        RangeNotSatisfiable,
        Invalid,
        TooMany,
        BadGateway,
        Unavailable,
    )
}


def sentence(text: str) -> str:
    """'cannot do x' -> 'Cannot do x.' (str.capitalize would lowercase names like DOI)."""
    text = text.strip()
    if not text:
        return text
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "?", "!")) else ".")


def kind_of(status: int) -> type[BeamDeskError]:
    """The kind answering with ``status`` (:class:`BeamDeskError` itself, a 500, if none)."""
    return KINDS.get(status, BeamDeskError)


def error(status: int, detail: str) -> BeamDeskError:
    """An error of the kind of ``status``: for statuses that cross a process boundary
    (a reader worker's answer) or a library's injected factory (h5grove's ``create_error``)."""
    return kind_of(status)(detail)
