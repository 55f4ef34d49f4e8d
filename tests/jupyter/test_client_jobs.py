"""``beamdesk.client``'s job methods against a running server with a real job runner
(thread LocalCluster); the fitted Fe map is checked against the synthetic map's known
amplitudes (tests/xrf/xrf_synth.py), not against BeamDesk's own output."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from beamdesk.client import BeamDeskError, Client
from tests.conftest import LiveServer
from tests.jobs import conftest as jobs_fixtures
from tests.jobs.conftest import DS, NUMBER, JobsWorld

# The jobs tests' fixtures (a world with a synthetic map, an app with a job runner).
thread_settings = jobs_fixtures.thread_settings
jobs_world = jobs_fixtures.jobs_world
jobs_app = jobs_fixtures.jobs_app

pytestmark = pytest.mark.slow


@pytest.fixture
def jobs_server(jobs_app, jobs_world: JobsWorld) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    with LiveServer(jobs_app) as server:
        yield server


def test_submit_wait_and_read_the_results(jobs_server: LiveServer, jobs_world: JobsWorld) -> None:
    with Client(jobs_server.url, jobs_world.world.tokens["pi"]) as bd:
        job = bd.submit_xrf_job(NUMBER, "raw/map.h5", DS, config_file="raw/fit.cfg")
        done = bd.wait(job, timeout=240, poll=0.5)
        assert done["state"] == "done" and done["progress"] == 1.0
        assert [j["id"] for j in bd.jobs(NUMBER)] == [job]
        [out] = bd.results(job)
        fe = bd.open(NUMBER, out["path"], "/entry/xrf_fit/results/parameters/Fe_K")
    truth = jobs_world.truth["Fe"]
    assert fe.shape == truth.shape
    # Poisson: each pixel within 5σ (σ ≈ √area) of the amplitude the map was made with.
    assert np.all(np.abs(fe - truth) < 5 * np.sqrt(truth) + 50)


def test_a_bad_job_request_says_why(jobs_server: LiveServer, jobs_world: JobsWorld) -> None:
    with Client(jobs_server.url, jobs_world.world.tokens["outsider"]) as bd:
        with pytest.raises(BeamDeskError) as err:
            bd.submit_xrf_job(NUMBER, "raw/map.h5", DS, config_file="raw/fit.cfg")
        assert err.value.status == 404


def test_job_notebook_reruns_the_fit(
    jobs_server: LiveServer, jobs_world: JobsWorld, sessions, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    import json

    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell

    from beamdesk.jobs.models import Job
    from beamdesk.jupyter.notebooks import xrf_job_notebook

    with Client(jobs_server.url, jobs_world.world.tokens["pi"]) as bd:
        first = bd.submit_xrf_job(NUMBER, "raw/map.h5", DS, config_file="raw/fit.cfg")
        bd.wait(first, timeout=240, poll=0.5)
    with sessions() as db:
        job = db.get(Job, first)
        nb = xrf_job_notebook(
            NUMBER,
            job.parameters["file"],
            job.parameters["dataset"],
            job.parameters["config"],
            kind=job.kind,
        )
    nb.cells.append(new_code_cell("print(json.dumps(fe.tolist()))"))
    path = tmp_path / "job.ipynb"
    nbformat.write(nb, path)
    env = {"BEAMDESK_URL": jobs_server.url, "BEAMDESK_TOKEN": jobs_world.world.tokens["pi"]}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)  # the kernel inherits this process's environment
        NotebookClient(nb, timeout=240, kernel_name="python3").execute()
    fe = np.array(json.loads(nb.cells[-1].outputs[0]["text"]))
    truth = jobs_world.truth["Fe"]
    assert fe.shape == truth.shape
    assert np.all(np.abs(fe - truth) < 5 * np.sqrt(truth) + 50)


def _csrf(http, base: str, username: str) -> str:  # type: ignore[no-untyped-def]
    import re

    from tests.conftest import PASSWORD

    find = re.compile(r'name="csrf_token" value="([^"]+)"')
    token = find.search(http.get(f"{base}/login").text).group(1)
    http.post(
        f"{base}/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    return find.search(http.get(f"{base}/tokens").text).group(1)


def test_job_notebook_route_checks_access(jobs_server: LiveServer, jobs_world: JobsWorld) -> None:
    import httpx

    with Client(jobs_server.url, jobs_world.world.tokens["pi"]) as bd:
        job = bd.submit_xrf_job(NUMBER, "raw/map.h5", DS, config_file="raw/fit.cfg")
    base = jobs_server.url
    with httpx.Client(timeout=60) as pi:
        csrf = _csrf(pi, base, "pi")
        # Everything checks out; only the hub is missing in this test.
        assert pi.post(f"{base}/jobs/{job}/notebook", data={"csrf_token": csrf}).status_code == 503
        assert (
            pi.post(f"{base}/jobs/{job + 99}/notebook", data={"csrf_token": csrf}).status_code
            == 404
        )
    with httpx.Client(timeout=60) as outsider:
        csrf = _csrf(outsider, base, "outsider")
        answer = outsider.post(f"{base}/jobs/{job}/notebook", data={"csrf_token": csrf})
        assert answer.status_code == 404
