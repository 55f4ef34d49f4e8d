"""Prometheus metrics at ``/metrics``: requests per route, jobs, HDF5 bytes, sign-in failures.

Each app has its own ``CollectorRegistry`` (``app.state.metrics``), so tests that build many
apps never collide. Requests are counted by ``RequestMetricsMiddleware`` under the route
*template* (``/api/proposals/{number}/h5/data``), never the raw path, and every path no
route matches under one label, so the number of series stays bounded whatever clients ask.

Jobs are read from the database at scrape time (``JobsCollector``): the ``jobs`` table is
the single source of truth, whichever process runs them, so the queue depth and the
durations are the same from every server process.

``/metrics`` answers loopback clients and, from elsewhere, requests with the bearer token
``BEAMDESK_METRICS_TOKEN`` (none by default: loopback only). Behind a reverse proxy on the
same host, the proxy must pass ``X-Forwarded-For`` (``beamdesk serve`` trusts it from
loopback) or every proxied request would look local.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from beamdesk.jobs.models import FINAL_STATES, Job, JobState

log = logging.getLogger("beamdesk.web.metrics")

UNMATCHED = "unmatched"  # the route label of every path no route matches
H5_PREFIX = "/api/proposals/{number}/h5"
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
# Seconds: HDF5 slices and pages answer in milliseconds, exports and downloads take longer.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Seconds: XRF map fits take from seconds to hours.
JOB_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0)


class Metrics:
    """The app's registry and the metrics the web layer records."""

    def __init__(self, sessions: sessionmaker[Session] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "beamdesk_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "beamdesk_http_request_duration_seconds",
            "Time from the request to the last byte of the answer, by method and route.",
            ["method", "route"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.h5_bytes = Counter(
            "beamdesk_hdf5_served_bytes",
            "Bytes of successful HDF5 content answers (/api/proposals/{number}/h5/...), "
            "by endpoint.",
            ["endpoint"],
            registry=self.registry,
        )
        self.sign_in_failures = Counter(
            "beamdesk_sign_in_failures",
            "Refused sign-ins: a wrong user name or password, or a refused single sign-on.",
            ["method"],
            registry=self.registry,
        )
        # Labelled metrics show only once used: these start at 0 so rates work from the start.
        for method in ("password", "oidc"):
            self.sign_in_failures.labels(method)
        if sessions is not None:
            self.registry.register(JobsCollector(sessions))


def metrics_of(request: Request) -> Metrics:
    return request.app.state.metrics


def record_sign_in_failure(request: Request, method: str) -> None:
    metrics_of(request).sign_in_failures.labels(method).inc()


# ------------------------------------------------------------------ requests
def route_label(scope: Scope) -> str:
    """The template of the route that answered (set by the router), else ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def h5_endpoint(route: str) -> str | None:
    """``data`` for ``/api/proposals/{number}/h5/data``; None for other routes."""
    if not route.startswith(H5_PREFIX + "/"):
        return None
    return route[len(H5_PREFIX) + 1 :].strip("/") or "root"


class RequestMetricsMiddleware:
    """Counts and times every HTTP request; counts the body bytes of HDF5 answers.

    Pure ASGI: streamed answers are timed to their last chunk and never buffered.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # unless the app starts an answer
        body_bytes = 0

        async def send_counting(message: Message) -> None:
            nonlocal status, body_bytes
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body_bytes += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "other"
            route = route_label(scope)
            m = self.metrics
            m.requests.labels(method, route, str(status)).inc()
            m.latency.labels(method, route).observe(time.perf_counter() - start)
            endpoint = h5_endpoint(route)
            if endpoint is not None and status < 400 and body_bytes:
                m.h5_bytes.labels(endpoint).inc(body_bytes)


# ------------------------------------------------------------------ jobs
class JobsCollector(Collector):
    """Job queue depth and durations, read from the ``jobs`` table at each scrape."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def describe(self) -> list[Metric]:
        return []  # not known before the first scrape; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        try:
            with self.sessions() as db:
                depth = {
                    state: n
                    for state, n in db.execute(
                        select(Job.state, func.count()).group_by(Job.state)
                    ).all()
                }
                finished = db.execute(
                    select(Job.kind, Job.state, Job.started_at, Job.finished_at).where(
                        Job.state.in_(FINAL_STATES),
                        Job.started_at.is_not(None),
                        Job.finished_at.is_not(None),
                    )
                ).all()
        except Exception as exc:  # the database is down: /api/ready says so; scrape the rest
            log.warning("metrics: jobs not readable: %s", type(exc).__name__)
            return
        queue = GaugeMetricFamily(
            "beamdesk_jobs", "Jobs in each state (queued and running: the queue).", labels=["state"]
        )
        for state in JobState:
            queue.add_metric([state.value], depth.get(state, 0))
        yield queue
        yield job_durations(list(finished))


def job_durations(rows: list[Any]) -> HistogramMetricFamily:
    """Run time (start to end) of finished jobs, by kind and outcome."""
    counts: dict[tuple[str, str], list[int]] = {}
    sums: dict[tuple[str, str], float] = {}
    for kind, state, started, finished in rows:
        key = (kind, JobState(state).value)
        seconds = max((finished - started).total_seconds(), 0.0)
        per_bucket = counts.setdefault(key, [0] * (len(JOB_BUCKETS) + 1))
        for i, bound in enumerate(JOB_BUCKETS):
            if seconds <= bound:
                per_bucket[i] += 1
        per_bucket[-1] += 1  # +Inf
        sums[key] = sums.get(key, 0.0) + seconds
    family = HistogramMetricFamily(
        "beamdesk_job_duration_seconds",
        "Run time of finished jobs (started to done, failed or cancelled), by kind and outcome.",
        labels=["kind", "outcome"],
    )
    for key, per_bucket in sorted(counts.items()):
        buckets = [(repr(b), c) for b, c in zip(JOB_BUCKETS, per_bucket, strict=False)]
        buckets.append(("+Inf", per_bucket[-1]))
        family.add_metric(list(key), buckets, sums[key])
    return family


# ------------------------------------------------------------------ who may scrape
def is_loopback(host: str | None) -> bool:
    """A peer address on this machine (127.0.0.0/8, ::1); names such as "testclient" are not."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def may_scrape(request: Request) -> bool:
    """Loopback clients, or anyone with ``Authorization: Bearer <BEAMDESK_METRICS_TOKEN>``."""
    if is_loopback(request.client.host if request.client else None):
        return True
    token = request.app.state.settings.operations.metrics_token.strip()
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())
