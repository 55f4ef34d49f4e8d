"""Jobs through the HTTP API on a real dask LocalCluster: fit, access, quota, cancel, failures."""

from __future__ import annotations

import json
import time
from typing import Any

import h5py
import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from beamdesk.portal.models import Dataset
from tests.jobs.conftest import CU_LEVEL, DS, NUMBER, JobsWorld, cfg_text, write_slow_map

SUBMIT = f"/api/proposals/{NUMBER}/jobs"
MAP = f"raw/map.h5::{DS}"


def wait_for(
    client: Any,
    job_id: int,
    headers: dict[str, str],
    timeout: float = 60,
    states: tuple[str, ...] = ("done", "failed", "cancelled"),
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}", headers=headers).json()
        if job["state"] in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


def test_member_fits_a_map_and_the_fe_map_matches_the_amplitudes(
    jobs_client: TestClient, jobs_world: JobsWorld, sessions: sessionmaker[Session]
) -> None:
    pi = jobs_world.token("pi")
    r = jobs_client.post(
        SUBMIT, json={"kind": "xrf_map", "input": MAP, "config_file": "raw/fit.cfg"}, headers=pi
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert r.headers["location"] == f"/api/jobs/{job['id']}"
    assert job["state"] in ("queued", "running") and job["owner"] == "pi"
    done = wait_for(jobs_client, job["id"], pi)
    assert done["state"] == "done", done
    assert done["progress"] == 1.0 and done["attempts"] == 1
    [out] = done["outputs"]
    assert out["path"] == f"processed/{job['id']}-map_xrf.nxs" and "Fe K" in out["groups"]

    # the file: complete, at its final name, no partial files left
    result = jobs_world.folder / out["path"]
    assert result.is_file()
    assert not list(result.parent.glob("*.part")) and not list(result.parent.glob(".*"))
    with h5py.File(result) as f:
        fe = f["entry/xrf_fit/results/parameters/Fe_K"][()]
        fe_sigma = f["entry/xrf_fit/results/uncertainties/Fe_K"][()]
        cu = f["entry/xrf_fit/results/parameters/Cu_K"][()]
    truth = jobs_world.truth
    # Poisson tolerance: pulls (fit − truth)/σ are standard normal, their mean over n pixels
    # is within 4/√n of 0 and σ itself is about √area
    pulls = (fe - truth["Fe"]) / fe_sigma
    assert abs(pulls.mean()) < 4 / np.sqrt(pulls.size)
    assert 0.8 < pulls.std() < 1.25
    assert np.all(np.abs(fe - truth["Fe"]) < 5 * np.sqrt(truth["Fe"]) + 50)
    assert np.all(fe_sigma < 3 * np.sqrt(truth["Fe"]))
    assert abs(np.median(cu[truth["Cu"] == CU_LEVEL]) / CU_LEVEL - 1) < 0.05

    # the catalogue knows it, as a processed dataset pointing back at its input and job
    with sessions() as db:
        row = db.get(Dataset, out["dataset_id"])
        assert row is not None and row.path == out["path"] and row.kind == "processed"
        assert row.provenance["job"] == job["id"]
        assert row.provenance["input"] == MAP
        assert row.provenance["config_file"] == "raw/fit.cfg"
        assert "Fe" in json.dumps(row.provenance["config"])

    # the proposal's job list and the event stream show it too
    listed = jobs_client.get(SUBMIT, headers=pi).json()
    assert [j["id"] for j in listed] == [job["id"]]
    with jobs_client.stream("GET", f"/api/jobs/{job['id']}/events", headers=pi) as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        text = "".join(events.iter_text())
    assert "event: end" in text and '"state": "done"' in text


def test_inline_config_and_staff_may_run(jobs_client: TestClient, jobs_world: JobsWorld) -> None:
    from beamdesk.xrf.config import from_pymca_dict, read_pymca_dict, to_toml_dict

    config = to_toml_dict(from_pymca_dict(read_pymca_dict(cfg_text())))
    for who in ("scientist", "office"):
        headers = jobs_world.token(who)
        r = jobs_client.post(
            SUBMIT, json={"kind": "xrf_map", "input": MAP, "config": config}, headers=headers
        )
        assert r.status_code == 201, r.text
        assert wait_for(jobs_client, r.json()["id"], headers)["state"] == "done"


def test_outsiders_see_nothing_and_cannot_start_jobs(
    jobs_client: TestClient, jobs_world: JobsWorld
) -> None:
    body = {"kind": "xrf_map", "input": MAP, "config_file": "raw/fit.cfg"}
    r = jobs_client.post(SUBMIT, json=body, headers=jobs_world.token("pi"))
    job_id = r.json()["id"]
    for who in ("outsider", "other_scientist"):
        headers = jobs_world.token(who)
        assert jobs_client.post(SUBMIT, json=body, headers=headers).status_code == 404
        assert jobs_client.get(SUBMIT, headers=headers).status_code == 404
        assert jobs_client.get(f"/api/jobs/{job_id}", headers=headers).status_code == 404
        assert jobs_client.get(f"/api/jobs/{job_id}/events", headers=headers).status_code == 404
        assert jobs_client.delete(f"/api/jobs/{job_id}", headers=headers).status_code == 404
        assert jobs_client.get(f"/proposals/{NUMBER}/jobs", headers=headers).status_code == 404
    # a reviewer sees the proposal but may not use the facility's compute on it
    r = jobs_client.post(SUBMIT, json=body, headers=jobs_world.token("reviewer"))
    assert r.status_code == 403
    # anonymous callers: no session, no CSRF token, no job
    assert jobs_client.post(SUBMIT, json=body).status_code in (401, 403)
    assert jobs_client.get(f"/api/jobs/{job_id}").status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    wait_for(jobs_client, job_id, jobs_world.token("pi"))


def test_quota_of_concurrent_jobs_per_user(jobs_world: JobsWorld) -> None:
    """With no runner the jobs stay queued, so the count is exact: the quota holds, is per user,
    and a cancelled job frees its place."""
    from beamdesk.web.app import create_app

    pi, participant = jobs_world.token("pi"), jobs_world.token("participant")
    body = {"kind": "xrf_map", "input": MAP, "config_file": "raw/fit.cfg"}
    limit = jobs_world.settings.jobs.max_concurrent_jobs
    with TestClient(create_app(jobs_world.settings, run_jobs=False)) as client:
        ids = [client.post(SUBMIT, json=body, headers=pi).json()["id"] for _ in range(limit)]
        assert all(
            client.get(f"/api/jobs/{i}", headers=pi).json()["state"] == "queued" for i in ids
        )
        r = client.post(SUBMIT, json=body, headers=pi)
        assert r.status_code == 429, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert f"{limit} jobs" in r.json()["detail"]
        # the quota is per user: a colleague may still start one
        assert client.post(SUBMIT, json=body, headers=participant).status_code == 201
        assert client.delete(f"/api/jobs/{ids[0]}", headers=pi).status_code == 200
        assert client.get(f"/api/jobs/{ids[0]}", headers=pi).json()["state"] == "cancelled"
        assert client.post(SUBMIT, json=body, headers=pi).status_code == 201
        assert client.post(SUBMIT, json=body, headers=pi).status_code == 429


def test_bad_requests_answer_422_with_a_reason(
    jobs_client: TestClient, jobs_world: JobsWorld
) -> None:
    pi = jobs_world.token("pi")
    cases = [
        ({"input": "raw/nothing.h5::/x", "config_file": "raw/fit.cfg"}, "No file"),
        ({"input": "raw/map.h5", "config_file": "raw/fit.cfg"}, "<file>::<HDF5 path>"),
        ({"input": "../20260002/raw/map.h5::/x", "config_file": "raw/fit.cfg"}, "No file"),
        ({"input": MAP, "config_file": "raw/none.cfg"}, "No configuration file"),
        (
            {"input": MAP, "config": {"detector": {"gain": "lots"}, "bogus": 1}},
            "Invalid configuration",
        ),
        ({"input": MAP}, "either 'config'"),
        ({"kind": "tomography", "input": MAP, "config_file": "raw/fit.cfg"}, "Unknown job kind"),
    ]
    for body, words in cases:
        r = jobs_client.post(SUBMIT, json={"kind": "xrf_map", **body}, headers=pi)
        assert r.status_code == 422, (body, r.text)
        assert words in r.json()["detail"], (body, r.json()["detail"])
        assert "Traceback" not in r.text and str(jobs_world.settings.data_root) not in r.text


def test_a_job_that_fails_says_why(
    jobs_client: TestClient, jobs_world: JobsWorld, sessions: sessionmaker[Session]
) -> None:
    pi = jobs_world.token("pi")
    r = jobs_client.post(
        SUBMIT,
        json={"input": "raw/line.h5::/entry/data/spectra", "config_file": "raw/fit.cfg"},
        headers=pi,
    )
    assert r.status_code == 201
    job = wait_for(jobs_client, r.json()["id"], pi)
    assert job["state"] == "failed"
    assert job["message"] == (
        "raw/line.h5::/entry/data/spectra: a map needs at least 2 axes (pixels, channels)"
    )
    assert "Traceback" not in job["log"] and str(jobs_world.folder) not in job["log"]
    assert not (jobs_world.folder / "processed").exists() or not any(
        (jobs_world.folder / "processed").iterdir()
    )
    with sessions() as db:
        assert db.scalars(select(Dataset).where(Dataset.kind == "processed")).all() == []


def test_cancel_a_running_job(
    jobs_client: TestClient, jobs_world: JobsWorld, sessions: sessionmaker[Session]
) -> None:
    # a map big enough to be caught while running
    write_slow_map(jobs_world.folder / "raw" / "big.h5")
    pi, participant = jobs_world.token("pi"), jobs_world.token("participant")
    r = jobs_client.post(
        SUBMIT, json={"input": f"raw/big.h5::{DS}", "config_file": "raw/fit.cfg"}, headers=pi
    )
    job_id = r.json()["id"]
    wait_for(jobs_client, job_id, pi, states=("running", "done"))
    # a participant may not cancel somebody else's job; the owner may
    assert jobs_client.delete(f"/api/jobs/{job_id}", headers=participant).status_code == 403
    r = jobs_client.delete(f"/api/jobs/{job_id}", headers=pi)
    assert r.status_code == 200, r.text
    job = wait_for(jobs_client, job_id, pi)
    assert job["state"] == "cancelled", job
    processed = jobs_world.folder / "processed"
    assert not processed.exists() or list(processed.iterdir()) == []
    assert jobs_client.delete(f"/api/jobs/{job_id}", headers=pi).status_code == 409


def test_queued_job_is_cancelled_at_once_without_a_runner(
    client: TestClient, jobs_world: JobsWorld
) -> None:
    # the plain app runs no jobs: the row stays queued, as behind a busy cluster
    pi = jobs_world.token("pi")
    r = client.post(SUBMIT, json={"input": MAP, "config_file": "raw/fit.cfg"}, headers=pi)
    assert r.status_code == 201 and r.json()["state"] == "queued"
    r = client.delete(f"/api/jobs/{r.json()['id']}", headers=pi)
    assert r.status_code == 200
    assert r.json()["state"] == "cancelled" and "before it started" in r.json()["message"]


def test_progress_is_streamed_per_block(jobs_client: TestClient, jobs_world: JobsWorld) -> None:
    # big enough (several seconds) that progress is seen between blocks on a fast machine,
    # and on a busy one (480 rows once went by in one progress interval under a full run)
    write_slow_map(jobs_world.folder / "raw" / "slow.h5", rows=960, cols=160)
    pi = jobs_world.token("pi")
    r = jobs_client.post(
        SUBMIT, json={"input": f"raw/slow.h5::{DS}", "config_file": "raw/fit.cfg"}, headers=pi
    )
    events: list[tuple[str, dict[str, Any]]] = []
    with jobs_client.stream("GET", f"/api/jobs/{r.json()['id']}/events", headers=pi) as stream:
        kind = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
    progress = [e["progress"] for _, e in events]
    assert events[-1][0] == "end" and events[-1][1]["state"] == "done"
    assert all(k == "progress" for k, _ in events[:-1])
    assert progress == sorted(progress) and progress[-1] == 1.0
    # at least one report between the blocks, not only 0 and 1
    assert any(0 < p < 1 for p in progress), progress


def test_input_deleted_before_the_job_runs(
    client: TestClient, jobs_world: JobsWorld, sessions: sessionmaker[Session]
) -> None:
    from beamdesk.jobs.runner import start_runner

    pi = jobs_world.token("pi")
    (jobs_world.folder / "raw" / "gone.h5").write_bytes(
        (jobs_world.folder / "raw" / "map.h5").read_bytes()
    )
    r = client.post(
        SUBMIT, json={"input": f"raw/gone.h5::{DS}", "config_file": "raw/fit.cfg"}, headers=pi
    )
    assert r.status_code == 201 and r.json()["state"] == "queued"  # no runner in this app
    (jobs_world.folder / "raw" / "gone.h5").unlink()
    runner = start_runner(jobs_world.settings)
    assert runner is not None
    try:
        job = wait_for(client, r.json()["id"], pi)
    finally:
        runner.stop()
    assert job["state"] == "failed"
    assert job["message"] == "The input file 'raw/gone.h5' no longer exists in the proposal."
