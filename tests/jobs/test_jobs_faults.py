"""Faults around jobs: a full disk while the result is written, the scheduler gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from beamdesk.portal.models import Dataset
from beamdesk.settings import Settings
from tests.conftest import free_port
from tests.jobs.conftest import NUMBER, JobsWorld, build_world
from tests.jobs.test_jobs_api import MAP, SUBMIT, wait_for


@pytest.fixture
def full_disk(jobs_world: JobsWorld) -> Iterator[Path]:
    """The proposal's processed/ folder on a 64 KiB tmpfs, almost filled up."""
    folder = jobs_world.folder / "processed"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        with open(folder / "filler.bin", "wb") as fh:
            fh.write(b"\0" * (60 * 1024))
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_disk_full_while_writing_fails_cleanly(  # type: ignore[no-untyped-def]
    jobs_client: TestClient, jobs_world: JobsWorld, full_disk: Path, sessions
) -> None:
    pi = jobs_world.token("pi")
    r = jobs_client.post(SUBMIT, json={"input": MAP, "config_file": "raw/fit.cfg"}, headers=pi)
    assert r.status_code == 201, r.text
    job = wait_for(jobs_client, r.json()["id"], pi, timeout=120)
    assert job["state"] == "failed", job
    assert "disk" in job["message"] and "full" in job["message"]
    assert "Traceback" not in job["message"]
    # nothing half-written left behind, nothing registered
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler.bin"]
    with sessions() as db:
        assert db.scalars(select(Dataset).where(Dataset.kind == "processed")).all() == []
    # and the service goes on: the API still answers
    assert jobs_client.get(f"/api/jobs/{job['id']}", headers=pi).status_code == 200


def _scheduler(port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-dashboard",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _worker(address: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_worker",
            address,
            "--nthreads",
            "1",
            "--no-dashboard",
            "--death-timeout",
            "60",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_port(port: int, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


@pytest.mark.slow
def test_scheduler_gone_jobs_wait_then_run(  # type: ignore[no-untyped-def]
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    """With an external scheduler that dies, submitted jobs wait, the portal keeps
    serving, and they run once the cluster is back on its address."""
    from beamdesk.web.app import create_app

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [_scheduler(port)]
    _wait_port(port)
    procs.append(_worker(address))
    ours = settings.changed(jobs={"dask_scheduler": address})
    world = build_world(ours, sessions)
    app = create_app(ours, run_jobs=True)
    pi = world.token("pi")
    try:
        with TestClient(app) as client:
            r = client.post(SUBMIT, json={"input": MAP, "config_file": "raw/fit.cfg"}, headers=pi)
            first = wait_for(client, r.json()["id"], pi, timeout=120)
            assert first["state"] == "done", first
            for proc in procs:  # the cluster goes away
                os.killpg(proc.pid, 9)
                proc.wait()
            r = client.post(SUBMIT, json={"input": MAP, "config_file": "raw/fit.cfg"}, headers=pi)
            assert r.status_code == 201, r.text
            job_id = r.json()["id"]
            time.sleep(5)
            waiting = client.get(f"/api/jobs/{job_id}", headers=pi).json()
            assert waiting["state"] in ("queued", "running"), waiting
            assert client.get("/api/health").status_code == 200
            assert client.get(f"/api/proposals/{NUMBER}/datasets", headers=pi).status_code == 200
            procs = [_scheduler(port)]  # the cluster comes back on the same address
            _wait_port(port)
            procs.append(_worker(address))
            final = wait_for(client, job_id, pi, timeout=180)
            print(f"after the scheduler came back: {final['state']}: {final['message']}")
            # the runner's client reconnects to the address: the waiting job runs, none lost
            assert final["state"] == "done", final
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
        app.state.engine.dispose()
