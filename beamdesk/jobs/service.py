"""Jobs as the API, the pages and the command line see them: submit, look up, list, cancel.

Everything here is database work (the computation is in ``runner.py`` and ``tasks.py``), so
any process may call it: a web worker inserts a ``queued`` row and the one runner process
picks it up. Access is decided by ``beamdesk.portal.access`` (action ``run_job``: members,
beamline staff, user office); a proposal or job the caller may not see is "not found".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session, selectinload

from beamdesk.errors import BeamDeskError, Conflict, Forbidden, Invalid, NotFound, TooMany
from beamdesk.h5.paths import PathNotFound, clean_relative, proposal_root, resolve_in_proposal
from beamdesk.jobs import states
from beamdesk.jobs.models import ACTIVE_STATES, Job, JobState
from beamdesk.portal import access
from beamdesk.portal.access import Action, Identity
from beamdesk.portal.models import MemberRole, Proposal, User
from beamdesk.portal.proposals import load_proposal
from beamdesk.settings import Settings

KINDS = ("xrf_map",)


class JobError(BeamDeskError):
    """A refusal with a sentence for the caller; each subclass is also the kind
    (:mod:`beamdesk.errors`) that gives its HTTP answer."""


class JobNotFound(JobError, NotFound):
    pass


class JobForbidden(JobError, Forbidden):
    pass


class QuotaExceeded(JobError, TooMany):
    pass


class JobConflict(JobError, Conflict):
    pass


class InvalidJob(JobError, Invalid):
    pass


@dataclass(frozen=True)
class JobRequest:
    """What a caller asks for (the body of ``POST /api/proposals/{number}/jobs``)."""

    kind: str
    input: str
    config: dict[str, Any] | None = None
    config_file: str | None = None


def runnable_proposal(db: Session, identity: Identity, number: str, now: datetime) -> Proposal:
    """The proposal if the identity may run jobs on it; JobNotFound/JobForbidden otherwise."""
    proposal = load_proposal(db, number)
    if proposal is None:
        raise JobNotFound(f"No proposal {number}, or you may not see it.")
    rel = access.relation(identity, proposal, now)
    if access.may(rel, Action.run_job):
        return proposal
    if access.may(rel, Action.view_proposal):
        # e.g. a reviewer, or anyone on released data: they know it exists
        raise JobForbidden(f"You may not run jobs on proposal {number}.")
    raise JobNotFound(f"No proposal {number}, or you may not see it.")


def _split_input(spec: str) -> tuple[str, str]:
    if "::" not in spec:
        raise InvalidJob(
            "'input' must be '<file>::<HDF5 path>', e.g. 'raw/scan_0001.nxs::/entry/data/spectra'."
        )
    file, inner = spec.split("::", 1)
    inner = "/" + inner.strip().lstrip("/")
    if not file.strip() or inner == "/":
        raise InvalidJob("'input' must name a file and a dataset inside it ('<file>::<path>').")
    return file.strip(), inner


def _resolve(settings: Settings, number: str, relpath: str, what: str) -> Path:
    try:
        path = resolve_in_proposal(settings.data_root, number, relpath)
    except PathNotFound:
        raise InvalidJob(f"No {what} {relpath!r} in proposal {number}.") from None
    if not path.is_file():
        raise InvalidJob(f"The {what} {relpath!r} is a folder, not a file.")
    return path


def _config(settings: Settings, number: str, request: JobRequest) -> tuple[dict[str, Any], str]:
    """The configuration as a TOML-shaped dict (validated), and the file it came from."""
    from beamdesk.xrf.config import ConfigError, from_toml_dict, load_config, to_toml_dict

    if (request.config is None) == (request.config_file is None):
        raise InvalidJob(
            "Give either 'config' (an object) or 'config_file' (a file of the "
            "proposal, .toml or PyMca .cfg), not both or neither."
        )
    try:
        if request.config is not None:
            cfg = from_toml_dict(request.config, source="config")
            return to_toml_dict(cfg), ""
        rel = clean_relative(str(request.config_file))
        cfg = load_config(_resolve(settings, number, rel, "configuration file"))
        return to_toml_dict(cfg), rel
    except PathNotFound:
        raise InvalidJob(f"No configuration file {request.config_file!r}.") from None
    except ConfigError as exc:
        folder = str(settings.data_root / number) + "/"
        first = str(exc).splitlines()[0].replace(folder, "")
        raise InvalidJob(f"Invalid configuration: {first}") from None


def output_name(job: Job) -> str:
    """``processed/<id>-<input stem>_xrf.nxs``: unique per job, recognisable by its input."""
    stem = Path(str(job.parameters.get("file", "map"))).stem or "map"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80]
    return f"processed/{job.id}-{safe}_xrf.nxs"


def active_jobs_of(db: Session, owner_id: int) -> int:
    return (
        db.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.owner_id == owner_id, Job.state.in_(list(ACTIVE_STATES)))
        )
        or 0
    )


def lock_quota(db: Session, owner_id: int) -> None:
    """Serialise the quota check and insert of one user's submissions until the commit.

    PostgreSQL: the user's row ``FOR UPDATE`` (a second submission waits at this line, and
    its count, a new statement under READ COMMITTED, then sees the first one's job).
    SQLite has no row locks, and its driver starts a transaction only at the first write,
    so two requests could both count under the quota before either inserts: a no-op
    ``UPDATE`` of the row makes this transaction the database's one writer before the
    count (what ``BEGIN IMMEDIATE`` does); the others wait for the commit (busy timeout).
    """
    if db.get_bind().dialect.name == "sqlite":
        users = cast(Table, User.__table__)
        db.execute(
            update(users).where(users.c.id == owner_id).values(failed_logins=users.c.failed_logins)
        )
    else:
        db.execute(select(User.id).where(User.id == owner_id).with_for_update())


def submit(
    db: Session, settings: Settings, user: User, number: str, request: JobRequest, now: datetime
) -> Job:
    """Check access, quota and input; insert a ``queued`` job (the caller commits)."""
    identity = access.identity_of(user)
    proposal = runnable_proposal(db, identity, number, now)
    if request.kind not in KINDS:
        raise InvalidJob(f"Unknown job kind {request.kind!r}; known: {', '.join(KINDS)}.")
    file, inner = _split_input(request.input)
    try:
        rel = clean_relative(file)
    except PathNotFound:
        raise InvalidJob(f"No file {file!r} in proposal {number}.") from None
    _resolve(settings, number, rel, "file")
    config, config_file = _config(settings, number, request)
    lock_quota(db, user.id)
    if active_jobs_of(db, user.id) >= settings.jobs.max_concurrent_jobs:
        raise QuotaExceeded(
            f"You already have {settings.jobs.max_concurrent_jobs} jobs queued or running (the "
            "limit per user); wait for one to finish or cancel one."
        )
    job = Job(
        owner_id=user.id,
        proposal_id=proposal.id,
        kind=request.kind,
        parameters={
            "input": f"{rel}::{inner}",
            "file": rel,
            "dataset": inner,
            "config": config,
            "config_file": config_file,
        },
        inputs=[rel] + ([config_file] if config_file else []),
        state=JobState.queued,
        created_at=now,
    )
    db.add(job)
    db.flush()
    job.parameters = {**job.parameters, "output": output_name(job)}
    job.append_log(f"queued by {user.username}: {request.kind} of {rel}::{inner}")
    db.flush()
    return job


def _job(db: Session, job_id: int) -> Job | None:
    return db.scalar(
        select(Job)
        .where(Job.id == job_id)
        .options(
            selectinload(Job.owner),
            selectinload(Job.proposal).selectinload(Proposal.members),
            selectinload(Job.proposal).selectinload(Proposal.reviews),
            selectinload(Job.proposal).selectinload(Proposal.beamtimes),
        )
    )


def summary_of(db: Session, job_id: int) -> dict[str, Any] | None:
    """The :func:`summary` of job ``job_id``, or None when there is none (no access
    check: for a stream whose access was checked when it opened)."""
    job = db.get(Job, job_id)
    return None if job is None else summary(job)


def visible_job(db: Session, identity: Identity, job_id: int, now: datetime) -> Job:
    """The job if the identity may see it (its owner, or anyone who may run jobs on its
    proposal); JobNotFound otherwise, whether or not it exists."""
    job = _job(db, job_id)
    if job is None:
        raise JobNotFound(f"No job {job_id}, or you may not see it.")
    if identity.user_id is not None and job.owner_id == identity.user_id:
        return job
    if access.may(access.relation(identity, job.proposal, now), Action.run_job):
        return job
    raise JobNotFound(f"No job {job_id}, or you may not see it.")


def may_cancel(identity: Identity, job: Job, now: datetime) -> bool:
    """The owner, the proposal's PI, its beamline staff and the user office."""
    if identity.user_id is not None and job.owner_id == identity.user_id:
        return True
    rel = access.relation(identity, job.proposal, now)
    return (
        rel.user_office
        or rel.member_role == MemberRole.pi
        or (rel.beamline_staff and access.may(rel, Action.run_job))
    )


def cancel(db: Session, job: Job, *, by: str) -> Job:
    """Cancel at once if queued; ask the runner to stop it if running (the caller commits)."""
    if job.is_final:
        raise JobConflict(f"Job {job.id} has already ended ({job.state.value}).")
    if job.state == JobState.queued:
        message = f"Cancelled by {by} before it started."
        states.move(job, "cancel", message, log=f"cancelled by {by}")
    else:
        job.cancel_requested = True
        job.append_log(f"cancellation requested by {by}")
    db.flush()
    return job


def list_for_proposal(db: Session, proposal: Proposal, limit: int = 100) -> list[Job]:
    return list(
        db.scalars(
            select(Job)
            .where(Job.proposal_id == proposal.id)
            .options(selectinload(Job.owner))
            .order_by(Job.id.desc())
            .limit(limit)
        )
    )


def list_jobs(
    db: Session,
    *,
    state: JobState | None = None,
    proposal: str | None = None,
    owner: str | None = None,
    limit: int = 100,
) -> list[Job]:
    """For the operator's command line: no access filter."""
    stmt = select(Job).options(selectinload(Job.owner), selectinload(Job.proposal))
    if state is not None:
        stmt = stmt.where(Job.state == state)
    if proposal:
        stmt = stmt.join(Proposal, Job.proposal_id == Proposal.id).where(
            Proposal.number == proposal
        )
    if owner:
        stmt = stmt.join(User, Job.owner_id == User.id).where(User.username == owner)
    return list(db.scalars(stmt.order_by(Job.id.desc()).limit(limit)))


def summary(job: Job) -> dict[str, Any]:
    """The job as the API shows it (no server paths, no tracebacks)."""

    def iso(t: datetime | None) -> str | None:
        return t.isoformat() if t else None

    return {
        "id": job.id,
        "kind": job.kind,
        "proposal": job.proposal.number,
        "owner": job.owner.username,
        "state": job.state.value,
        "progress": round(float(job.progress), 4),
        "message": job.message,
        "input": job.parameters.get("input"),
        "config_file": job.parameters.get("config_file") or None,
        "inputs": list(job.inputs or []),
        "outputs": list(job.outputs or []),
        "attempts": job.attempts,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "cancel_requested": job.cancel_requested,
    }


def detail(job: Job) -> dict[str, Any]:
    return {
        **summary(job),
        "log": job.log,
        "parameters": {
            k: v
            for k, v in job.parameters.items()
            if k in ("input", "config", "config_file", "output")
        },
    }


def proposal_folder(settings: Settings, number: str) -> Path:
    return proposal_root(settings.data_root, number)
