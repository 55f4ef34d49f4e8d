"""``beamdesk jobs list|show|cancel``: the operator's view of analysis jobs (no access filter:
whoever can run this command can read the database anyway)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from beamdesk.cli.output import console, fail

if TYPE_CHECKING:  # the base install has no SQLAlchemy: imported where used
    from sqlalchemy.orm import Session, sessionmaker

app = typer.Typer(
    help="Analysis jobs (XRF map fits …) and their state.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _sessions() -> sessionmaker[Session]:
    from beamdesk.db import make_engine, make_sessionmaker
    from beamdesk.settings import settings_from_env

    return make_sessionmaker(make_engine(settings_from_env().database_url))


@app.command("list")
def list_cmd(
    state: Annotated[
        str | None, typer.Option(help="queued, running, done, failed or cancelled.")
    ] = None,
    proposal: Annotated[str | None, typer.Option(help="Only this proposal number.")] = None,
    user: Annotated[str | None, typer.Option(help="Only jobs of this username.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """List jobs, newest first."""
    from beamdesk.db import session_scope
    from beamdesk.jobs import service
    from beamdesk.jobs.models import JobState

    try:
        wanted = JobState(state) if state else None
    except ValueError:
        fail(f"unknown state {state!r}; use {', '.join(s.value for s in JobState)}")
    with session_scope(_sessions()) as db:
        jobs = [
            service.summary(j)
            for j in service.list_jobs(db, state=wanted, proposal=proposal, owner=user, limit=limit)
        ]
    if as_json:
        print(json.dumps(jobs, indent=1))
        return
    table = Table()
    for col in ("id", "proposal", "owner", "kind", "state", "progress", "input", "message"):
        table.add_column(col, justify="right" if col in ("id", "progress") else "left")
    for j in jobs:
        table.add_row(
            str(j["id"]),
            j["proposal"],
            j["owner"],
            j["kind"],
            j["state"],
            f"{j['progress']:.0%}",
            str(j["input"]),
            j["message"],
        )
    console.print(table)


@app.command()
def show(job_id: int) -> None:
    """Everything about one job as JSON (state, progress, parameters, outputs, log)."""
    from beamdesk.db import session_scope
    from beamdesk.jobs import service

    with session_scope(_sessions()) as db:
        job = db.get(service.Job, job_id)
        if job is None:
            fail(f"no job {job_id}")
        print(json.dumps(service.detail(job), indent=1))


@app.command()
def cancel(job_id: int) -> None:
    """Cancel a queued job at once, or ask the runner to stop a running one."""
    from beamdesk.db import session_scope
    from beamdesk.jobs import service

    with session_scope(_sessions()) as db:
        job = db.get(service.Job, job_id)
        if job is None:
            fail(f"no job {job_id}")
        try:
            service.cancel(db, job, by="operator (command line)")
        except service.JobConflict as exc:
            fail(str(exc))
        state = job.state.value
    console.print(f"job {job_id}: {'cancelled' if state == 'cancelled' else 'stopping'}")


@app.command()
def run(
    retry: Annotated[
        float, typer.Option(help="Seconds between attempts while the cluster is unreachable.")
    ] = 5.0,
) -> None:
    """Run the analysis jobs in this process, until SIGTERM: the job runner as its own
    service (with BEAMDESK_JOBS_IN_SERVER=false for the portal; docs/deployment.md)."""
    import logging
    import logging.config
    import signal
    import threading

    from beamdesk.jobs.runner import start_runner
    from beamdesk.logs import logging_config
    from beamdesk.migrate import SchemaError, check_current
    from beamdesk.settings import settings_from_env

    settings = settings_from_env()
    logging.config.dictConfig(logging_config(settings.operations.log_format))
    log = logging.getLogger("beamdesk.jobs")
    try:
        check_current(settings.database_url)
    except SchemaError as exc:
        fail(str(exc))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    runner = None
    while runner is None and not stop.is_set():
        # None: another process holds the runner's lock, or the scheduler is not up yet
        runner = start_runner(settings)
        if runner is None:
            log.info("jobs: not running jobs yet; trying again in %.0f s", retry)
            stop.wait(retry)
    if runner is None:
        return
    cluster = settings.jobs.dask_scheduler or "a local dask cluster"
    log.info("jobs: the job runner is running jobs on %s", cluster)
    stop.wait()
    log.info("jobs: stopping; running jobs are re-attached or re-queued at the next start")
    runner.stop()
