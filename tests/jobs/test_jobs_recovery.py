"""Nothing is lost: the server killed mid-job, a worker killed mid-job, and PostgreSQL.

The server runs as a real ``uvicorn beamdesk.web.asgi:app`` subprocess with its LocalCluster
of worker *processes*, exactly as ``beamdesk serve`` starts it, and is killed with SIGKILL
(the whole process group: server, scheduler, nanny and workers).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from beamdesk.db import make_engine, make_sessionmaker, utcnow
from beamdesk.jobs.models import Job, JobState
from beamdesk.portal.models import Dataset
from beamdesk.settings import Settings
from tests.conftest import free_port
from tests.jobs.conftest import AREAS, DS, NUMBER, JobsWorld, build_world, write_slow_map

ROOT = Path(__file__).resolve().parents[2]


class Server:
    """``uvicorn beamdesk.web.asgi:app`` in its own session (process group)."""

    def __init__(self, settings: Settings, log: Path, workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "BEAMDESK_VAR": str(settings.var_dir),
            "BEAMDESK_DATA": str(settings.data_root),
            "BEAMDESK_DATABASE_URL": settings.database_url,
            "BEAMDESK_SECRET_KEY": settings.secret_key,
            "BEAMDESK_DASK_WORKERS": str(workers),
        }
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "beamdesk.web.asgi:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        """SIGKILL the server and every process it started (same process group)."""
        import psutil

        try:
            family = [self.proc.pid] + [
                c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)
            ]
        except psutil.NoSuchProcess:
            family = [self.proc.pid]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=20)
        for pid in family:  # a child that left the group: it is ours, end it too
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        self.kill()


@pytest.fixture
def process_world(settings: Settings, sessions: sessionmaker[Session]) -> JobsWorld:
    world = build_world(settings, sessions)
    write_slow_map(world.folder / "raw" / "slow.h5")
    return world


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def read_job(sessions: sessionmaker[Session], job_id: int) -> Job:
    with sessions() as db:
        job = db.get(Job, job_id)
        assert job is not None
        return job


def wait_job(sessions: sessionmaker[Session], job_id: int, until: Any, timeout: float) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = read_job(sessions, job_id)
        if until(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id}: {job.state} {job.progress} {job.message}\n{job.log}")


def submit(server: Server, world: JobsWorld, source: str = f"raw/slow.h5::{DS}") -> int:
    r = httpx.post(
        f"{server.url}/api/proposals/{NUMBER}/jobs",
        headers=world.token("pi"),
        json={"kind": "xrf_map", "input": source, "config_file": "raw/fit.cfg"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def assert_clean_result(world: JobsWorld, sessions: sessionmaker[Session], job: Job) -> None:
    """Exactly the final file is on disk and in the catalogue; no partial file anywhere."""
    processed = world.folder / "processed"
    names = sorted(p.name for p in processed.iterdir())
    assert names == [Path(job.parameters["output"]).name], names
    with sessions() as db:
        rows = db.scalars(select(Dataset).where(Dataset.kind == "processed")).all()
        assert [r.path for r in rows] == [job.parameters["output"]]
    with h5py.File(world.folder / job.parameters["output"]) as f:
        fe = f["entry/xrf_fit/results/parameters/Fe_K"][()]
    # every pixel has the same expected Fe area: the mean of 25 600 pixels is within 1 %
    assert abs(fe.mean() / AREAS["Fe"] - 1) < 0.01


@pytest.mark.slow
def test_server_killed_mid_job_requeues_and_finishes(
    process_world: JobsWorld, sessions: sessionmaker[Session], servers: list[Server], tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    first = Server(process_world.settings, log, workers=1)
    servers.append(first)
    job_id = submit(first, process_world)
    # the driver has started on a worker (its "started" event reached the database)
    wait_job(sessions, job_id, lambda j: j.attempts >= 1 or j.is_final, timeout=60)
    first.kill()
    job = read_job(sessions, job_id)
    assert job.state == JobState.running, job.log  # killed mid-job, not finished
    processed = process_world.folder / "processed"
    with sessions() as db:
        assert db.scalars(select(Dataset).where(Dataset.kind == "processed")).all() == []

    second = Server(process_world.settings, log, workers=1)
    servers.append(second)
    job = wait_job(sessions, job_id, lambda j: j.is_final, timeout=120)
    assert job.state == JobState.done, job.log
    assert "Re-queued after a server restart." in job.log
    assert job.attempts == 2 and job.progress == 1.0
    assert_clean_result(process_world, sessions, job)
    assert not list(processed.glob("*.part"))


@pytest.mark.slow
def test_worker_killed_mid_job_is_retried(
    process_world: JobsWorld, sessions: sessionmaker[Session], servers: list[Server], tmp_path: Path
) -> None:
    server = Server(process_world.settings, tmp_path / "server.log", workers=2)
    servers.append(server)
    job_id = submit(server, process_world)
    job = wait_job(sessions, job_id, lambda j: j.attempts >= 1 or j.is_final, timeout=60)
    assert job.state == JobState.running, job.log
    # the worker process that runs the job's driver task
    pid = int(re.search(r"attempt 1 started on worker \S+ \(pid (\d+)\)", job.log).group(1))
    assert pid != server.proc.pid
    os.kill(pid, signal.SIGKILL)
    job = wait_job(sessions, job_id, lambda j: j.is_final, timeout=120)
    # the scheduler re-ran the driver on a living worker; the job finished cleanly
    assert job.state == JobState.done, job.log
    assert job.attempts >= 2 and "the previous attempt was lost" in job.log
    assert_clean_result(process_world, sessions, job)


@pytest.mark.postgres
def test_runner_on_both_databases(any_settings: Settings) -> None:
    """Submit, run, register and cancel through the services on SQLite and PostgreSQL."""
    from beamdesk.jobs import service
    from beamdesk.jobs.runner import start_runner
    from beamdesk.portal.models import User

    settings = any_settings.changed(jobs={"dask_workers": 1, "dask_processes": False})
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    world = build_world(settings, sessions)
    runner = start_runner(settings)
    assert runner is not None
    try:
        # a second runner of the same installation refuses to start
        assert start_runner(settings) is None
        with sessions() as db:
            pi = db.scalar(select(User).where(User.username == "pi"))
            job = service.submit(
                db,
                settings,
                pi,
                NUMBER,
                service.JobRequest("xrf_map", f"raw/map.h5::{DS}", None, "raw/fit.cfg"),
                utcnow(),
            )
            db.commit()
            job_id = job.id
        runner.wake()
        job = wait_job(sessions, job_id, lambda j: j.is_final, timeout=60)
        assert job.state == JobState.done, job.log
        with sessions() as db:
            row = db.get(Dataset, job.outputs[0]["dataset_id"])
            assert row is not None and row.provenance["job"] == job_id
        assert world.folder.joinpath(job.parameters["output"]).is_file()
    finally:
        runner.stop()
        engine.dispose()


@pytest.mark.slow
def test_restart_with_an_external_scheduler_reattaches(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    """With BEAMDESK_DASK_SCHEDULER the computation outlives the server: re-attach, no rerun."""
    from distributed import LocalCluster

    from beamdesk.jobs import service
    from beamdesk.jobs.runner import start_runner
    from beamdesk.portal.models import User

    world = build_world(settings, sessions)
    write_slow_map(world.folder / "raw" / "slow.h5", rows=96, cols=96)
    # a scheduler with worker processes of its own, as a facility's cluster (in-process
    # workers would share this process's client, which the first "server" closes)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        external = settings.changed(jobs={"dask_scheduler": cluster.scheduler_address})
        first = start_runner(external)
        assert first is not None
        with sessions() as db:
            pi = db.scalar(select(User).where(User.username == "pi"))
            job = service.submit(
                db,
                external,
                pi,
                NUMBER,
                service.JobRequest("xrf_map", f"raw/slow.h5::{DS}", None, "raw/fit.cfg"),
                utcnow(),
            )
            db.commit()
            job_id = job.id
        first.wake()
        wait_job(sessions, job_id, lambda j: j.attempts >= 1 or j.is_final, timeout=60)
        first.stop()  # the server goes away; the scheduler and its workers keep computing
        assert read_job(sessions, job_id).state == JobState.running
        second = start_runner(external)
        assert second is not None
        try:
            job = wait_job(sessions, job_id, lambda j: j.is_final, timeout=60)
        finally:
            second.stop()
    assert job.state == JobState.done, job.log
    assert job.attempts == 1 and "re-attached" in job.log, job.log
    assert_clean_result(world, sessions, job)
