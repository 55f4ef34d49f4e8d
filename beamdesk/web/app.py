"""The ASGI application factory: one app for pages, API, HDF5 content and front ends."""

from __future__ import annotations

import importlib
import logging
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

import beamdesk
from beamdesk.db import make_engine, make_sessionmaker
from beamdesk.errors import BeamDeskError
from beamdesk.settings import Settings, get_settings
from beamdesk.web import problems
from beamdesk.web.metrics import Metrics, RequestMetricsMiddleware
from beamdesk.web.readers import make_pool
from beamdesk.web.request_id import RequestIdMiddleware
from beamdesk.web.security import SecurityHeadersMiddleware, csrf_token

HERE = Path(__file__).parent
log = logging.getLogger("beamdesk.web")
# Each module holds one APIRouter named ``router``; order matters only for pages.
ROUTE_MODULES = [
    "health",
    "auth",
    "tokens",
    "account",
    "proposals_api",
    "datasets_api",
    "dataset_pages",
    "files",
    "h5",
    "pages",
    "collections",
    "panosc",
    "viewer",
    "notebooks",
    "jobs_api",
    "xrf_api",
    "api_docs",
]


@asynccontextmanager
async def _run_jobs(app: FastAPI) -> AsyncIterator[None]:
    """Start the job runner (and its dask cluster) with the server, stop it at shutdown."""
    from beamdesk.jobs.runner import start_runner

    runner = await run_in_threadpool(start_runner, app.state.settings)
    app.state.job_runner = runner
    try:
        async with _stop_readers(app):
            yield
    finally:
        app.state.job_runner = None
        if runner is not None:
            await run_in_threadpool(runner.stop)


@asynccontextmanager
async def _stop_readers(app: FastAPI) -> AsyncIterator[None]:
    settings = app.state.settings
    log.info(
        "BeamDesk %s started: data %s, database %s",
        beamdesk.__version__,
        settings.data_root,
        make_url(settings.database_url).render_as_string(hide_password=True),
    )
    try:
        yield
    finally:
        app.state.readers.close()


def create_app(settings: Settings | None = None, *, run_jobs: bool = False) -> FastAPI:
    """The app; ``run_jobs`` also runs analysis jobs in this process (``beamdesk serve``)."""
    settings = settings or get_settings()
    app = FastAPI(
        lifespan=_run_jobs if run_jobs else _stop_readers,
        title="BeamDesk",
        version=beamdesk.__version__,
        description="Remote access to a synchrotron facility's experiments and data.",
        # /api/docs and /api/redoc are our own pages (routes/api_docs.py): offline, in the CSP.
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.job_runner = None
    app.state.engine = make_engine(settings.database_url)
    app.state.sessionmaker = make_sessionmaker(app.state.engine)
    app.state.readers = make_pool(app, settings)
    app.state.metrics = Metrics(app.state.sessionmaker)
    weakref.finalize(app, app.state.readers.close)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals["csrf_token"] = csrf_token
    templates.env.globals["settings"] = settings
    templates.env.globals["version"] = beamdesk.__version__
    app.state.templates = templates

    # Starlette types handlers as taking any Exception; these two take their own subclass.
    http_handler: Any = problems.http_exception_handler
    validation_handler: Any = problems.validation_exception_handler
    # One error model (beamdesk.errors): every BeamDeskError answers with its own status;
    # anything else is a bug, a 500 with the request id (problems.unhandled_exception_handler).
    app.add_exception_handler(BeamDeskError, problems.beamdesk_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_handler)
    app.add_exception_handler(RequestValidationError, validation_handler)
    app.add_exception_handler(OverflowError, problems.out_of_range_handler)
    app.add_exception_handler(DataError, problems.out_of_range_handler)
    app.add_exception_handler(OperationalError, problems.database_unavailable_handler)
    app.add_exception_handler(Exception, problems.unhandled_exception_handler)

    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie="beamdesk_session",
        max_age=settings.auth.session_max_age,
        same_site="lax",
        https_only=settings.auth.cookie_secure,
    )
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.auth.cookie_secure)
    # Outermost: every answer is counted and timed and carries its request id.
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(RequestIdMiddleware)

    for name in ROUTE_MODULES:
        module = importlib.import_module(f"beamdesk.web.routes.{name}")
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    return app
