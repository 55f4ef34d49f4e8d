"""The per-user job quota holds under truly parallel submissions, on SQLite and PostgreSQL.

Submissions race through a real uvicorn server (its thread pool runs them in parallel,
each request with its own session and connection) and straight through the service with
one session per thread; a barrier releases every thread at once, several rounds each.
With a quota of 2, exactly 2 are accepted, every other one is a 429 (a QuotaExceeded),
never a 500 and never a third job.
"""

from __future__ import annotations

import threading
from collections import Counter

import h5py
import httpx
import numpy as np
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from beamdesk.db import make_engine, make_sessionmaker, utcnow
from beamdesk.jobs import service
from beamdesk.jobs.models import ACTIVE_STATES, Job, JobState
from beamdesk.portal.models import ProposalState, User
from beamdesk.settings import Settings
from beamdesk.web.app import create_app
from tests.conftest import LiveServer
from tests.factories import make_proposal, make_world
from tests.jobs.conftest import cfg_text

NUMBER = "20260001"
QUOTA = 2
ROUNDS = 3
BODY = {
    "kind": "xrf_map",
    "input": "raw/line.h5::/entry/data/spectra",
    "config_file": "raw/fit.cfg",
}


@pytest.fixture
def race(any_settings: Settings):  # type: ignore[no-untyped-def]
    settings = any_settings.changed(jobs={"max_concurrent_jobs": QUOTA})
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as db:
        world = make_world(db, tokens=True)
        make_proposal(db, world, NUMBER, ProposalState.scheduled)
        db.commit()
    raw = settings.data_root / NUMBER / "raw"
    raw.mkdir(parents=True)
    with h5py.File(raw / "line.h5", "w") as f:
        f["entry/data/spectra"] = np.arange(1024, dtype=np.uint16)
    (raw / "fit.cfg").write_text(cfg_text())
    yield settings, sessions, world
    engine.dispose()


def active(sessions: sessionmaker[Session], user_id: int) -> int:
    with sessions() as db:
        return service.active_jobs_of(db, user_id)


def finish_all(sessions: sessionmaker[Session]) -> None:
    """End every active job (as the runner would), so the next round starts at zero."""
    with sessions() as db:
        db.execute(
            update(Job).where(Job.state.in_(list(ACTIVE_STATES))).values(state=JobState.cancelled)
        )
        db.commit()


def in_parallel(n: int, call) -> list[object]:  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def one(k: int) -> None:
        barrier.wait()
        try:
            results[k] = call()
        except Exception as exc:  # the outcome is what the test looks at
            results[k] = exc

    threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


@pytest.mark.parametrize("parallel", [12, 24])
def test_parallel_http_submissions_respect_the_quota(race, parallel: int) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, world = race
    app = create_app(settings)  # no runner: accepted jobs stay queued
    headers = {"Authorization": f"Bearer {world.tokens['pi']}"}
    try:
        with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
            assert http.get("/api/health").status_code == 200
            for _ in range(ROUNDS):

                def submit() -> int:
                    with httpx.Client(base_url=server.url, timeout=60, headers=headers) as c:
                        r = c.post(f"/api/proposals/{NUMBER}/jobs", json=BODY)
                        if r.status_code == 429:
                            assert "limit" in r.json()["detail"]
                        return r.status_code

                codes = Counter(in_parallel(parallel, submit))
                assert codes == {201: QUOTA, 429: parallel - QUOTA}, codes
                assert active(sessions, world.users["pi"].id) == QUOTA
                finish_all(sessions)
    finally:
        app.state.engine.dispose()


@pytest.mark.parametrize("parallel", [12, 24])
def test_parallel_service_submissions_respect_the_quota(race, parallel: int) -> None:  # type: ignore[no-untyped-def]
    """Straight through ``service.submit``: one session (and connection) per thread."""
    settings, sessions, world = race
    for _ in range(ROUNDS):

        def submit() -> str:
            with sessions() as db:
                user = db.scalar(select(User).where(User.username == "pi"))
                assert user is not None
                try:
                    service.submit(db, settings, user, NUMBER, service.JobRequest(**BODY), utcnow())
                except service.QuotaExceeded:
                    db.rollback()
                    return "quota"
                db.commit()
                return "accepted"

        outcomes = Counter(str(r) for r in in_parallel(parallel, submit))
        assert outcomes == {"accepted": QUOTA, "quota": parallel - QUOTA}, outcomes
        assert active(sessions, world.users["pi"].id) == QUOTA
        finish_all(sessions)


def test_quota_is_per_user_under_a_race(race) -> None:  # type: ignore[no-untyped-def]
    """Two users racing: each gets their own quota, no more, no less."""
    settings, sessions, _ = race

    def as_user(name: str):  # type: ignore[no-untyped-def]
        def submit() -> str:
            with sessions() as db:
                user = db.scalar(select(User).where(User.username == name))
                assert user is not None
                try:
                    service.submit(db, settings, user, NUMBER, service.JobRequest(**BODY), utcnow())
                except service.QuotaExceeded:
                    return f"{name}:quota"
                db.commit()
                return f"{name}:accepted"

        return submit

    calls = [as_user("pi" if k % 2 else "participant") for k in range(16)]
    counter = iter(range(16))
    lock = threading.Lock()

    def next_call() -> str:
        with lock:
            k = next(counter)
        return calls[k]()

    outcomes = Counter(str(r) for r in in_parallel(16, next_call))
    assert outcomes == {
        "pi:accepted": QUOTA,
        "pi:quota": 8 - QUOTA,
        "participant:accepted": QUOTA,
        "participant:quota": 8 - QUOTA,
    }, outcomes
