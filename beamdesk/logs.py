"""Server logs: ``beamdesk.*`` and uvicorn's lines, as text or JSON, with a request id, scrubbed.

``beamdesk serve`` hands ``logging_config()`` to uvicorn, so INFO lines of ``beamdesk.*``
are written next to uvicorn's (uvicorn's own configuration leaves them to Python's
last-resort handler, which drops everything below WARNING). ``BEAMDESK_LOG_FORMAT=json``
writes one JSON object per line: time, level, logger, message, request_id.

``beamdesk.web.request_id.RequestIdMiddleware`` takes the proxy's ``X-Request-ID`` (if
short and made of safe characters; otherwise it makes one), keeps it for the log lines of
that request (uvicorn's access line included) and returns it in the answer's
``X-Request-ID`` header.

Secrets never reach the output: ``ScrubFilter`` (on the handler, so it sees every record)
and the formatters replace the values of ``token=``, ``access_token=``, ``password=`` …
in URLs and query strings, ``Authorization`` headers, bearer tokens and passwords in
database URLs with ``[redacted]``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

REDACTED = "[redacted]"
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

SECRET_NAMES = (
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "password",
    "passwd",
    "secret",
    "client_secret",
    "code",
    "csrf_token",
)
_NAMES = "|".join(SECRET_NAMES)
_SCRUBS = [
    # name=value in query strings and forms (not inside longer names: "notoken=" stays)
    (re.compile(rf"(?i)((?<![A-Za-z0-9_])(?:{_NAMES})=)[^&\s\"';#]*"), rf"\1{REDACTED}"),
    # "password": "…" in JSON-ish text
    (re.compile(rf"(?i)(\"(?:{_NAMES})\"\s*:\s*\")[^\"]*"), rf"\1{REDACTED}"),
    # Authorization: Bearer …, Basic …
    (
        re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+(?:\s+[^\s\"',}]+)?"),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}"), rf"\1 {REDACTED}"),
    # scheme://user:password@host
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), rf"\1{REDACTED}@"),
]


def scrub(text: str) -> str:
    """``text`` with the values of secrets replaced by ``[redacted]``."""
    for pattern, replacement in _SCRUBS:
        text = pattern.sub(replacement, text)
    return text


def _scrub_arg(value: Any) -> Any:
    return scrub(value) if isinstance(value, str) else value


class ScrubFilter(logging.Filter):
    """Scrubs a record's message and string arguments (uvicorn's access line: the path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrub_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _scrub_arg(v) for k, v in record.args.items()}
        return True


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record (``-`` outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return scrub(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, path, _version, status = args  # as uvicorn logs them
            entry |= {"client": client, "method": method, "path": scrub(str(path))}
            entry["status"] = status
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def logging_config(fmt: str = "text", level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the server (uvicorn's ``log_config``); ``fmt`` is
    ``settings.operations.log_format``."""
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": fmt,
        "filters": ["request_id", "scrub"],
    }
    logger = {"handlers": ["default"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": RequestIdFilter},
            "scrub": {"()": ScrubFilter},
        },
        "formatters": {
            "text": {"()": TextFormatter},
            "json": {"()": JsonFormatter},
        },
        "handlers": {"default": handler},
        "loggers": {
            "beamdesk": logger,
            "uvicorn": {**logger},
            "uvicorn.error": {"level": level},  # propagates to "uvicorn"
            "uvicorn.access": {**logger},
        },
        "root": {"handlers": ["default"], "level": "WARNING"},
    }


def valid_request_id(value: str) -> bool:
    return bool(_REQUEST_ID.fullmatch(value))
