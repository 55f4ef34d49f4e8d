"""The job state table, without a database or a cluster: every state and transition."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from beamdesk.jobs import states
from beamdesk.jobs.models import ACTIVE_STATES, FINAL_STATES, Job, JobState

NOW = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)
ALLOWED = {
    (JobState.queued, "claim"): JobState.running,
    (JobState.queued, "cancel"): JobState.cancelled,
    (JobState.running, "complete"): JobState.done,
    (JobState.running, "fail"): JobState.failed,
    (JobState.running, "cancel"): JobState.cancelled,
    (JobState.running, "requeue"): JobState.queued,
}


def a_job(state: JobState) -> Job:
    return Job(state=state, message="", log="", progress=0.4, dask_key="k", attempts=1)


@pytest.mark.parametrize(("state", "name"), itertools.product(JobState, states.TRANSITIONS))
def test_every_state_and_transition(state: JobState, name: str) -> None:
    expected = ALLOWED.get((state, name))
    if expected is None:
        with pytest.raises(states.IllegalJobTransition, match=f"A {state.value} job cannot"):
            states.target(state, name)
        job = a_job(state)
        with pytest.raises(states.IllegalJobTransition):
            states.move(job, name, "no")
        assert job.state == state and job.log == ""  # nothing half-done
    else:
        assert states.target(state, name) == expected


def test_ended_jobs_never_move_and_active_ones_can_always_end() -> None:
    for state in FINAL_STATES:
        assert not [n for n, t in states.TRANSITIONS.items() if state in t.sources]
    for state in ACTIVE_STATES:
        assert any(states.target(state, n) in FINAL_STATES for n in ("cancel",))
    reachable = {JobState.queued}
    for _ in range(3):
        reachable |= {t.target for t in states.TRANSITIONS.values() if t.sources & reachable}
    assert reachable == set(JobState)


def test_what_goes_with_each_move() -> None:
    job = a_job(JobState.queued)
    states.move(job, "claim", "Waiting for a worker.", now=NOW)
    assert (job.state, job.started_at, job.progress, job.finished_at) == (
        JobState.running,
        NOW,
        0.0,
        None,
    )
    job.progress = 0.7
    states.move(job, "requeue", "Re-queued: the compute cluster lost the job.", now=NOW)
    assert (job.state, job.progress, job.dask_key, job.finished_at) == (
        JobState.queued,
        0.0,
        "",
        None,
    )
    states.move(job, "claim", "Waiting for a worker.", now=NOW)
    states.move(job, "complete", "Fitted 12 pixels in 1.0 s.", log="", now=NOW)
    assert (job.state, job.progress, job.finished_at) == (JobState.done, 1.0, NOW)
    assert job.message == "Fitted 12 pixels in 1.0 s."
    lines = [line.split("  ", 1)[1] for line in job.log.splitlines()]
    assert lines == [
        "running: Waiting for a worker.",
        "queued: Re-queued: the compute cluster lost the job.",
        "running: Waiting for a worker.",
    ]


@pytest.mark.parametrize("name", ["fail", "cancel"])
def test_ending_sets_the_finish_time(name: str) -> None:
    job = a_job(JobState.running)
    states.move(job, name, "Stopped.", now=NOW)
    assert job.finished_at == NOW and job.state in FINAL_STATES
