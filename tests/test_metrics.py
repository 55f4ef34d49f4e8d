"""Observability: /metrics after real traffic, who may scrape, /api/ready, the server's logs.

Counts are the requests this test made; HDF5 bytes are the lengths of the answers the
client received; job durations are the rows' own start and end times. The logging test
runs the installed ``beamdesk serve`` and reads what it writes.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import time
from datetime import timedelta
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from beamdesk.db import utcnow
from beamdesk.jobs.models import Job, JobState
from beamdesk.logs import JsonFormatter, RequestIdFilter, ScrubFilter, scrub
from beamdesk.portal.models import Proposal, ProposalState, User
from beamdesk.web.app import create_app
from tests.conftest import free_port
from tests.factories import make_proposal, make_world
from tests.h5.builders import NUMBER, H5World
from tests.h5.conftest import h5world  # noqa: F401  (the proposal with real HDF5 files)
from tests.test_serve_options import serve

LOOPBACK = ("127.0.0.1", 51000)
DATA = "/api/proposals/{number}/h5/data"
META = "/api/proposals/{number}/h5/meta"


def scrape(app, client: tuple[str, int] = LOOPBACK, **headers: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    return TestClient(app, client=client).get("/metrics", headers=headers)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(sample name, labels): value} of a Prometheus text answer."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return found.get((name, frozenset(labels.items())), 0.0)


def csrf(client: TestClient) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert match
    return match.group(1)


def add_jobs(sessions, now) -> dict[tuple[str, str], list[float]]:  # type: ignore[no-untyped-def]
    """Jobs in every state; the durations of the finished ones, by (kind, outcome)."""
    with sessions() as db:
        owner = db.query(User).filter_by(username="pi").one()
        proposal = db.query(Proposal).filter_by(number=NUMBER).one()
        rows = [
            ("xrf_map", JobState.queued, None),
            ("xrf_map", JobState.queued, None),
            ("xrf_map", JobState.running, None),
            ("xrf_map", JobState.done, 3.5),
            ("xrf_map", JobState.done, 200.0),
            ("xrf_map", JobState.failed, 42.0),
            ("xrf_map", JobState.cancelled, None),  # cancelled before it started: no run time
        ]
        durations: dict[tuple[str, str], list[float]] = {}
        for kind, state, seconds in rows:
            job = Job(owner_id=owner.id, proposal_id=proposal.id, kind=kind, state=state)
            if state != JobState.queued:
                job.started_at = now - timedelta(hours=1)
            if seconds is not None:
                job.finished_at = job.started_at + timedelta(seconds=seconds)
                durations.setdefault((kind, state.value), []).append(seconds)
            if state == JobState.cancelled:
                job.started_at, job.finished_at = None, now
            db.add(job)
        db.commit()
    return durations


def test_metrics_count_the_traffic(h5world: H5World, app, sessions) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    client = h5world.client
    file = "raw/types.h5"
    data = [h5world.get("data", file=file, path=p) for p in ("/f4", "/int32_be", "/f4")]
    meta = h5world.get("meta", file=file, path="/f8")
    missing = h5world.get("data", file="raw/none.h5", path="/x")
    for r in [*data, meta]:
        assert r.status_code == 200, r.text
    assert missing.status_code == 404
    with h5py.File(h5world.root / file) as f:  # the answers are the file's values
        np.testing.assert_allclose(data[0].json(), f["f4"][()], rtol=1e-6)
        assert data[1].json() == f["int32_be"][()].tolist()
    for _ in range(3):
        assert client.get("/api/health").status_code == 200
    for path in ("/no/such/page", "/api/proposals/20260001/nothing/here"):
        assert client.get(path).status_code == 404
    token = csrf(client)
    for username in ("pi", "nobody"):  # a wrong password, an unknown name
        r = client.post(
            "/login", data={"username": username, "password": "wrong", "csrf_token": token}
        )
        assert r.status_code == 400
    durations = add_jobs(sessions, utcnow())

    answer = scrape(app)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    found = samples(answer.text)

    count = "beamdesk_http_requests_total"
    assert value(found, count, method="GET", route=DATA, status="200") == 3
    assert value(found, count, method="GET", route=DATA, status="404") == 1
    assert value(found, count, method="GET", route=META, status="200") == 1
    assert value(found, count, method="GET", route="/api/health", status="200") == 3
    assert value(found, count, method="GET", route="unmatched", status="404") == 2
    assert value(found, count, method="POST", route="/login", status="400") == 2
    assert value(found, count, method="GET", route="/metrics", status="200") == 0  # not yet
    # Every route label is a template of the app (or "unmatched"), never a raw path.
    templates = {rc.path for rc in iter_route_contexts(app.routes)} | {"unmatched"}
    routes = {dict(labels)["route"] for (name, labels) in found if name == count}
    assert routes <= templates and NUMBER not in " ".join(routes)

    seconds = "beamdesk_http_request_duration_seconds"
    assert value(found, f"{seconds}_count", method="GET", route=DATA) == 4
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in found.items()
        if name == f"{seconds}_bucket" and dict(labels)["route"] == DATA
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert buckets[-1] == (float("inf"), 4)
    assert 0 < value(found, f"{seconds}_sum", method="GET", route=DATA) < 60

    served = "beamdesk_hdf5_served_bytes_total"
    assert value(found, served, endpoint="data") == sum(len(r.content) for r in data)
    assert value(found, served, endpoint="meta") == len(meta.content)

    assert value(found, "beamdesk_sign_in_failures_total", method="password") == 2
    assert value(found, "beamdesk_sign_in_failures_total", method="oidc") == 0

    assert value(found, "beamdesk_jobs", state="queued") == 2
    assert value(found, "beamdesk_jobs", state="running") == 1
    assert value(found, "beamdesk_jobs", state="cancelled") == 1
    job = "beamdesk_job_duration_seconds"
    for (kind, outcome), runs in durations.items():
        labels = {"kind": kind, "outcome": outcome}
        assert value(found, f"{job}_count", **labels) == len(runs)
        assert value(found, f"{job}_sum", **labels) == pytest.approx(sum(runs), abs=1e-3)
        for le in (5.0, 60.0, 300.0):
            want = sum(1 for s in runs if s <= le)
            assert value(found, f"{job}_bucket", le=str(le), **labels) == want
    assert value(found, f"{job}_count", kind="xrf_map", outcome="cancelled") == 0

    again = samples(scrape(app).text)  # the first scrape is counted by the second
    assert value(again, count, method="GET", route="/metrics", status="200") == 1


def test_job_metrics_on_each_database(any_settings) -> None:  # type: ignore[no-untyped-def]
    app = create_app(any_settings)
    try:
        with app.state.sessionmaker() as db:
            make_proposal(db, make_world(db), NUMBER, ProposalState.data_collected)
            db.commit()
        durations = add_jobs(app.state.sessionmaker, utcnow())
        found = samples(scrape(app).text)
    finally:
        app.state.engine.dispose()
    assert value(found, "beamdesk_jobs", state="queued") == 2
    for (kind, outcome), runs in durations.items():
        labels = {"kind": kind, "outcome": outcome}
        assert value(found, "beamdesk_job_duration_seconds_count", **labels) == len(runs)
        got = value(found, "beamdesk_job_duration_seconds_sum", **labels)
        assert got == pytest.approx(sum(runs), abs=1e-3)


def test_each_app_has_its_own_registry(settings) -> None:  # type: ignore[no-untyped-def]
    one, two = create_app(settings), create_app(settings)
    TestClient(one).get("/api/health")
    counted = samples(scrape(one).text)
    fresh = samples(scrape(two).text)
    request = {"method": "GET", "route": "/api/health", "status": "200"}
    assert value(counted, "beamdesk_http_requests_total", **request) == 1
    assert value(fresh, "beamdesk_http_requests_total", **request) == 0


def test_metrics_only_for_loopback_or_the_token(app) -> None:  # type: ignore[no-untyped-def]
    assert app.state.settings.operations.metrics_token == ""
    assert scrape(app).status_code == 200
    assert scrape(app, ("::1", 4000)).status_code == 200
    for elsewhere in (("testclient", 50000), ("192.0.2.7", 4000), ("10.1.2.3", 4000)):
        r = scrape(app, elsewhere)
        assert r.status_code == 403
        assert "beamdesk_http_requests" not in r.text
    # No token configured: no bearer value opens it, not even an empty one.
    assert scrape(app, ("192.0.2.7", 4000), Authorization="Bearer ").status_code == 403

    settings = app.state.settings
    app.state.settings = settings.changed(operations={"metrics_token": "s3cret-metrics-token"})
    remote = ("192.0.2.7", 4000)
    assert scrape(app, remote, Authorization="Bearer s3cret-metrics-token").status_code == 200
    assert scrape(app, remote, Authorization="Bearer s3cret-metrics-tokex").status_code == 403
    assert scrape(app, remote, Authorization="Basic s3cret-metrics-token").status_code == 403
    assert scrape(app, remote).status_code == 403


# ------------------------------------------------------------------ readiness
def ready(settings) -> tuple[int, dict[str, str], float]:  # type: ignore[no-untyped-def]
    app = create_app(settings)
    try:
        start = time.monotonic()
        r = TestClient(app).get("/api/ready")
        return r.status_code, r.json(), time.monotonic() - start
    finally:
        app.state.engine.dispose()


def assert_names_only(answer: dict[str, str], failing: str) -> None:
    assert answer[failing] == "failing"
    assert answer["detail"] == f"Not ready: {failing}."
    text = json.dumps(answer)
    for leak in ("Error", "Traceback", "/", "sqlite", "psycopg", "refused"):
        assert leak not in text, text


def test_ready(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    status, answer, _ = ready(settings)
    assert (status, answer) == (
        200,
        {"database": "ok", "data_root": "ok", "dask": "not configured"},
    )

    port = free_port()  # nothing listens there
    pg = f"postgresql+psycopg://beamdesk:pw@127.0.0.1:{port}/beamdesk"
    for url in (pg, "sqlite:////proc/beamdesk-ready.db", f"sqlite:///{tmp_path / 'empty.db'}"):
        status, answer, took = ready(settings.changed(database_url=url))
        assert status == 503, url
        assert_names_only(answer, "database")
        assert answer["data_root"] == "ok" and took < 5

    status, answer, _ = ready(settings.changed(data_root=tmp_path / "gone"))
    assert status == 503
    assert_names_only(answer, "data_root")
    assert answer["database"] == "ok"


def test_ready_on_each_database(any_settings) -> None:  # type: ignore[no-untyped-def]
    status, answer, _ = ready(any_settings)
    assert (status, answer["database"]) == (200, "ok")


def test_ready_checks_the_dask_scheduler(settings) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        status, answer, _ = ready(settings.changed(jobs={"dask_scheduler": address}))
        assert (status, answer["dask"]) == (200, "ok")
    status, answer, took = ready(settings.changed(jobs={"dask_scheduler": address}))  # closed now
    assert status == 503 and took < 5
    assert_names_only(answer, "dask")
    # A host that never answers: the check gives up within its timeout.
    status, answer, took = ready(settings.changed(jobs={"dask_scheduler": "tcp://192.0.2.1:8786"}))
    assert status == 503 and answer["dask"] == "failing" and took < 5


# ------------------------------------------------------------------ logs of beamdesk serve
SECRET = "Zq8-very-secret-token"
PASSWORD = "hunter2-correct"


def serve_and_log(
    tmp_path: Path, sqlite_url: str, log_format: str
) -> tuple[str, list[httpx.Response]]:
    """Run ``beamdesk serve``, make a few requests, stop it; its log (stderr), the answers."""
    # The server holds no job runner (test_serve_options.serve takes its lock), and says so
    # in a beamdesk.jobs INFO line.
    env = {
        "BEAMDESK_LOG_FORMAT": log_format,
        # nothing listens there: /api/ready says so in a beamdesk.* line of that request
        "BEAMDESK_DASK_SCHEDULER": f"tcp://127.0.0.1:{free_port()}",
    }
    answers = []
    with (
        serve(tmp_path, sqlite_url, env=env, banner=False) as (base, out),
        httpx.Client(base_url=base, timeout=10) as http,
    ):
        answers.append(
            http.get(
                f"/api/health?token={SECRET}&access_token={SECRET}&format=json",
                headers={"X-Request-ID": "proxy-req-0042"},
            )
        )
        answers.append(
            http.get(f"/api/ready?password={PASSWORD}", headers={"X-Request-ID": "ready-7"})
        )
        answers.append(http.get("/api/me", headers={"X-Request-ID": "bad id with spaces"}))
        answers.append(http.get("/api/me", headers={"Authorization": f"Bearer {SECRET}"}))

    return out.read_text(), answers


@pytest.mark.slow
def test_serve_logs_beamdesk_info_as_json_with_request_ids(tmp_path: Path, sqlite_url: str) -> None:
    text, answers = serve_and_log(tmp_path, sqlite_url, "json")
    assert answers[0].status_code == 200
    assert answers[0].headers["x-request-id"] == "proxy-req-0042"
    made = answers[2].headers["x-request-id"]  # an unsafe id is replaced, not echoed
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert answers[3].status_code == 401
    assert answers[1].status_code == 503 and answers[1].json()["dask"] == "failing"

    assert SECRET not in text and PASSWORD not in text
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    for entry in lines:
        assert {"time", "level", "logger", "message", "request_id"} <= entry.keys(), entry
    ours = [e for e in lines if e["logger"].startswith("beamdesk") and e["level"] == "INFO"]
    assert any("this one only serves" in e["message"] for e in ours), lines
    assert any(e["message"].startswith("BeamDesk ") for e in ours), lines
    # A beamdesk.* line written while answering carries that request's id.
    (not_ready,) = [e for e in lines if e["logger"] == "beamdesk.web.ready"]
    assert not_ready["request_id"] == "ready-7" and not_ready["level"] == "WARNING"
    assert not_ready["message"] == "not ready: dask (ConnectionRefusedError)"
    access = {e["request_id"]: e for e in lines if e["logger"] == "uvicorn.access"}
    health = access["proxy-req-0042"]
    assert health["path"] == "/api/health?token=[redacted]&access_token=[redacted]&format=json"
    assert health["status"] == 200 and health["method"] == "GET"
    assert access[made]["path"] == "/api/me" and access[made]["status"] == 401
    assert "bad id with spaces" not in text


@pytest.mark.slow
def test_serve_logs_text_without_secrets(tmp_path: Path, sqlite_url: str) -> None:
    text, _ = serve_and_log(tmp_path, sqlite_url, "text")
    assert SECRET not in text and PASSWORD not in text
    assert re.search(r" INFO beamdesk\.jobs \[-\] jobs: another process runs the jobs", text), text
    line = next(x for x in text.splitlines() if "[proxy-req-0042]" in x)
    assert "uvicorn.access" in line and "token=[redacted]" in line
    assert "/api/ready?password=[redacted]" in text
    assert re.search(r" WARNING beamdesk\.web\.ready \[ready-7\] not ready: dask", text), text


def test_scrub_and_the_log_filter() -> None:
    assert (
        scrub("GET /x?a=1&token=abc&password=p%40ss&notoken=keep HTTP/1.1")
        == "GET /x?a=1&token=[redacted]&password=[redacted]&notoken=keep HTTP/1.1"
    )
    assert scrub("headers {'Authorization': 'Bearer abc.def'}") == (
        "headers {'Authorization': '[redacted]'}"
    )
    assert scrub("sent Bearer abcdef123") == "sent Bearer [redacted]"
    assert scrub("postgresql+psycopg://bd:pw0rd@db:5432/x") == (
        "postgresql+psycopg://bd:[redacted]@db:5432/x"
    )
    assert (
        scrub('{"password": "pw0rd", "user": "pi"}') == '{"password": "[redacted]", "user": "pi"}'
    )

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(ScrubFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("beamdesk.test.scrub")
    logger.addHandler(handler)
    try:
        logger.warning(
            "upstream refused %s with %s", "/a?access_token=T0k", "Authorization: Basic cGk6cHc="
        )
    finally:
        logger.removeHandler(handler)
    entry = json.loads(out.getvalue())
    assert (
        entry["message"]
        == "upstream refused /a?access_token=[redacted] with Authorization: [redacted]"
    )
    assert entry["logger"] == "beamdesk.test.scrub" and entry["request_id"] == "-"
