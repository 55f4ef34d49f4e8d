"""Liveness (``/api/health``), readiness (``/api/ready``) and Prometheus ``/metrics``.

``/api/health`` touches nothing (no database, no session): the process answers.
``/api/ready`` checks what serving needs: the database, the data root and the dask
scheduler, each within a short timeout, and answers 503 naming what is not ready (never
the error itself). ``/metrics`` is for the facility's Prometheus: loopback or the metrics
token only (``beamdesk.web.metrics``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

import beamdesk
from beamdesk.errors import Forbidden
from beamdesk.web.metrics import may_scrape, metrics_of
from beamdesk.web.schemas import Health, Readiness, api_errors

router = APIRouter(tags=["health"], responses=api_errors())
log = logging.getLogger("beamdesk.web.ready")
CHECK_SECONDS = 2.0  # each check; a load balancer asks again soon anyway
DASK_PORT = 8786


@router.get("/api/health", response_model=Health)
def health() -> dict[str, str]:
    return {"status": "ok", "version": beamdesk.__version__}


# ------------------------------------------------------------------ readiness
def _database(request: Request) -> None:
    with request.app.state.engine.connect() as conn:
        # The schema, not only the server: an empty or foreign database is not ready.
        if conn.execute(text("SELECT version_num FROM alembic_version")).first() is None:
            raise LookupError("database not migrated")


def _data_root(request: Request) -> None:
    root = request.app.state.settings.data_root
    if not root.is_dir() or not os.access(root, os.R_OK | os.X_OK):
        raise FileNotFoundError("data root missing or unreadable")
    with os.scandir(root) as entries:  # a stale network mount fails (or hangs) here
        next(entries, None)


def scheduler_address(address: str) -> tuple[str, int]:
    """``tcp://host:8786`` (or ``tls://``, or ``host:port``) as (host, port)."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.hostname is None:
        raise ValueError("no host in the dask scheduler address")
    return parts.hostname, parts.port or DASK_PORT


def _dask(request: Request) -> None:
    host, port = scheduler_address(request.app.state.settings.jobs.dask_scheduler)
    with socket.create_connection((host, port), timeout=CHECK_SECONDS):
        pass


class _Checks:
    """Checks running in threads; one still stuck (a hung mount) is not started again."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.lock = threading.Lock()

    async def run(self, name: str, check: Callable[[Request], None], request: Request) -> bool:
        with self.lock:
            if name in self.running:
                return False
            self.running.add(name)

        def guarded() -> None:
            try:
                check(request)
            finally:
                with self.lock:
                    self.running.discard(name)

        try:
            await asyncio.wait_for(asyncio.to_thread(guarded), CHECK_SECONDS)
        except Exception as exc:  # TimeoutError included: the answer only names the part
            log.warning("not ready: %s (%s)", name, type(exc).__name__)
            return False
        return True


def _checks_of(request: Request) -> _Checks:
    state = request.app.state
    if getattr(state, "ready_checks", None) is None:
        state.ready_checks = _Checks()
    return state.ready_checks


@router.get(
    "/api/ready",
    response_model=Readiness,
    responses={503: {"description": "Not ready: the failing parts are named", "model": Readiness}},
)
async def ready(request: Request) -> JSONResponse:
    """Ready to serve: the database answers, the data root is readable, the dask
    scheduler (if one is configured) accepts connections."""
    checks = _checks_of(request)
    parts: dict[str, Callable[[Request], None]] = {"database": _database, "data_root": _data_root}
    if request.app.state.settings.jobs.dask_scheduler:
        parts["dask"] = _dask
    results = await asyncio.gather(*(checks.run(n, c, request) for n, c in parts.items()))
    answer = {name: "ok" if ok else "failing" for name, ok in zip(parts, results, strict=True)}
    answer.setdefault("dask", "not configured")
    failing = [name for name, ok in zip(parts, results, strict=True) if not ok]
    if failing:
        answer["detail"] = f"Not ready: {', '.join(failing)}."
    return JSONResponse(answer, status_code=503 if failing else 200)


# ------------------------------------------------------------------ metrics
@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text format; loopback clients or ``Authorization: Bearer <metrics token>``."""
    if not may_scrape(request):
        raise Forbidden("Metrics are served to this machine or with the metrics token.")
    return Response(generate_latest(metrics_of(request).registry), media_type=CONTENT_TYPE_LATEST)
