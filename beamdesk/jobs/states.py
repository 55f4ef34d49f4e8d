"""The life of a job as a table of named transitions (pure: no database session, no cluster).

A job is queued when a user submits it; the runner claims it for the cluster (running); it
ends done, failed or cancelled, or goes back to the queue when the cluster loses it or the
server restarts. :func:`move` is the only code that changes a job's state, and what goes with
it (message, times, progress, the log line), so the runner and the service cannot disagree.
The runner's claim is a compare-and-set in SQL (two runners must not both take a job): it
reads :func:`sources` and :func:`target` of ``claim`` from the same table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from beamdesk.db import utcnow
from beamdesk.jobs.models import FINAL_STATES, Job
from beamdesk.jobs.models import JobState as S


@dataclass(frozen=True)
class JobTransition:
    name: str
    sources: frozenset[S]
    target: S
    meaning: str


def _rule(name: str, sources: set[S], target: S, meaning: str) -> JobTransition:
    return JobTransition(name, frozenset(sources), target, meaning)


TRANSITIONS: dict[str, JobTransition] = {
    t.name: t
    for t in [
        _rule("claim", {S.queued}, S.running, "the runner hands it to the cluster"),
        _rule("complete", {S.running}, S.done, "its result is registered as a dataset"),
        _rule("fail", {S.running}, S.failed, "it cannot finish (bad input, disk full, a bug)"),
        _rule("cancel", {S.queued, S.running}, S.cancelled, "a user or the runner stops it"),
        _rule(
            "requeue",
            {S.running},
            S.queued,
            "the cluster lost it, or could not be reached, or the server restarted",
        ),
    ]
}


class IllegalJobTransition(ValueError):
    """A transition that the table does not allow from the job's state."""


def sources(name: str) -> frozenset[S]:
    return TRANSITIONS[name].sources


def target(state: S, name: str) -> S:
    """Where ``name`` takes a job in ``state``, or :class:`IllegalJobTransition`."""
    rule = TRANSITIONS[name]
    if state not in rule.sources:
        raise IllegalJobTransition(f"A {state.value} job cannot {name}.")
    return rule.target


def move(
    job: Job, name: str, message: str, *, log: str | None = None, now: datetime | None = None
) -> None:
    """Take ``job`` through transition ``name``: its state, message, times, progress, and a
    line in its log (``"<new state>: <message>"`` unless ``log`` says another, or ``""``)."""
    job.state = target(job.state, name)
    job.message = message
    when = now or utcnow()
    if name == "claim":
        job.started_at = when
        job.progress = 0.0
    elif name == "requeue":
        job.progress = 0.0
        job.dask_key = ""
    elif name == "complete":
        job.progress = 1.0
    if job.state in FINAL_STATES:
        job.finished_at = when
    line = f"{job.state.value}: {message}" if log is None else log
    if line:
        job.append_log(line)
