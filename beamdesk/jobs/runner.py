"""The job runner: moves jobs from the database onto dask.distributed and back.

One runner per installation (a lock file in ``$BEAMDESK_VAR`` makes sure; with several
uvicorn workers the others only insert and read rows). It has one thread that

1. *dispatches*: claims ``queued`` rows (``UPDATE … WHERE state = 'queued'``, so a row is
   claimed once) while the cluster has free threads, and submits the job's driver task
   (``tasks.py``) with ``retries=`` so an exception on a flaky worker is retried; a worker
   that dies is rescheduled by the scheduler itself;
2. *listens*: progress events from the driver arrive through the scheduler's event topic
   (``Client.subscribe_topic``) and are written to the row at most a few times a second;
3. *finishes*: when a driver future completes, renames ``<id>-<name>.nxs.part`` to its final
   name, registers it in the catalogue (``portal.catalogue.index_file``) with its
   provenance, and marks the job done — or failed with a sentence the user understands
   (the traceback goes to the server log only);
4. *cancels*: rows with ``cancel_requested`` (set by the API or ``beamdesk jobs cancel``)
   get their ``distributed.Event`` set, which stops the driver between two blocks.

Recovery on start: a ``running`` row whose future is gone (the LocalCluster died with the
old server) is re-queued and its partial files are removed; with an external scheduler the
future was published under the job's ``dask_key`` and is re-attached instead. A final
``.nxs`` file exists only after a complete ``.part`` was renamed, so if one is found the
job is completed and registered rather than computed again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

import beamdesk
from beamdesk.db import make_engine, make_sessionmaker, session_scope, utcnow
from beamdesk.h5.paths import PathNotFound, proposal_root, resolve_in_proposal
from beamdesk.jobs import cluster, states
from beamdesk.jobs.models import Job, JobState
from beamdesk.jobs.tasks import TASKS, TOPIC, cancel_event_name
from beamdesk.portal.models import Dataset, Proposal
from beamdesk.settings import Settings

log = logging.getLogger("beamdesk.jobs")

POLL_SECONDS = 0.5  # database poll for rows inserted by other processes
PROGRESS_INTERVAL = 0.2  # at most this often a progress write per job
RETRIES = 2  # dask retries of a driver task that raised


def runner_sessions(url: str) -> tuple[Engine, sessionmaker[Session]]:
    """The runner's own engine. On SQLite every transaction starts with BEGIN IMMEDIATE:
    the runner reads a row and then writes it, and in WAL mode a transaction that read
    before another connection committed cannot upgrade to a writer ("database is locked"
    at once, without waiting); taking the write lock first makes it wait its turn instead.
    """
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _driver_autocommit(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event starts them

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine, make_sessionmaker(engine)


class JobRunner:
    """See the module docstring. ``start()`` once, ``stop()`` at shutdown."""

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        self.settings = settings
        self.engine, self.sessions = runner_sessions(settings.database_url)
        self.client = client
        self._own_client = client is None
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.futures: dict[int, Any] = {}
        self._started_keys: set[str] = set()
        self._subscribed_to: str | None = None  # the scheduler's id when we subscribed
        self._subscription_checked = 0.0
        self._pending: dict[int, float] = {}
        self._written: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_poll = 0.0
        self._lock_fd: int | None = None

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> JobRunner:
        if self.client is None:
            self.client = cluster.start_client(self.settings)
        self._subscribe()
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="beamdesk-jobs", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop dispatching; running jobs stay ``running`` and are recovered at next start."""
        self._stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic(TOPIC)
            if self._own_client:
                cluster.close_client(self.client)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self.engine.dispose()

    def wake(self) -> None:
        """Look at the database now (a job was submitted or cancelled in this process)."""
        self.events.put(("wake",))

    # --- the loop -----------------------------------------------------------------------

    def _subscribe(self) -> None:
        """Hear the drivers' events. The subscription lives in the scheduler: a restarted
        scheduler forgets it, so it is made again whenever the scheduler is a new one."""
        assert self.client is not None
        now = time.monotonic()
        if self._subscribed_to is not None and now - self._subscription_checked < 5.0:
            return
        self._subscription_checked = now
        try:
            scheduler = self.client.scheduler_info(n_workers=1).get("id")
        except Exception:
            return  # not reachable now (restarting): asked again in a few seconds
        if scheduler != self._subscribed_to:
            self.client.subscribe_topic(TOPIC, self._on_event)
            self._subscribed_to = scheduler

    def _on_event(self, event: tuple[float, Any]) -> None:
        # called on the client's event loop: hand over, never block it
        self.events.put(("event", event[1]))

    def _loop(self) -> None:
        while not self._stop.is_set():
            items: list[tuple[Any, ...]] = []
            try:
                items.append(self.events.get(timeout=POLL_SECONDS))
                while True:
                    items.append(self.events.get_nowait())
            except queue.Empty:
                pass
            poll = any(i[0] == "wake" for i in items)
            for item in items:
                try:
                    if item[0] == "event":
                        self._handle_event(item[1])
                    elif item[0] == "done":
                        self._finish(item[1], item[2])
                except Exception:
                    log.exception("jobs: error while handling %s", item[0])
            try:
                self._flush_progress()
                if poll or time.monotonic() - self._last_poll >= POLL_SECONDS:
                    self._last_poll = time.monotonic()
                    self._subscribe()
                    self._cancel_requested()
                    self._dispatch()
            except Exception:
                log.exception("jobs: error in the runner loop")

    # --- events from the drivers --------------------------------------------------------

    def _handle_event(self, msg: dict[str, Any]) -> None:
        job_id = int(msg.get("job", 0))
        key = str(msg.get("key", ""))
        if job_id not in self.futures or self.futures[job_id].key != key:
            return  # an old attempt (before a restart) still talking: ignore
        if msg.get("event") == "progress":
            total = max(int(msg.get("total", 1)), 1)
            self._pending[job_id] = min(int(msg.get("done", 0)) / total, 1.0)
        elif msg.get("event") == "started":
            self._started_keys.add(key)
            with session_scope(self.sessions) as db:
                job = db.get(Job, job_id)
                if job is None or job.is_final:
                    return
                job.attempts += 1
                note = "" if job.attempts == 1 else " (the previous attempt was lost)"
                job.append_log(
                    f"attempt {job.attempts} started on worker {msg.get('worker')} "
                    f"(pid {msg.get('pid')}){note}"
                )
                job.message = (
                    "Running."
                    if job.attempts == 1
                    else f"Running again (attempt {job.attempts}): a worker was lost."
                )

    def _flush_progress(self) -> None:
        now = time.monotonic()
        due = {
            j: p
            for j, p in self._pending.items()
            if now - self._written.get(j, 0.0) >= PROGRESS_INTERVAL
        }
        if not due:
            return
        with session_scope(self.sessions) as db:
            for job_id, value in due.items():
                db.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.state == JobState.running)
                    .values(progress=value)
                )
                self._written[job_id] = now
                del self._pending[job_id]

    # --- dispatch -----------------------------------------------------------------------

    def _dispatch(self) -> None:
        assert self.client is not None
        with session_scope(self.sessions) as db:
            queued = list(
                db.scalars(
                    select(Job.id).where(Job.state == JobState.queued).order_by(Job.id).limit(50)
                )
            )
        if not queued:
            return
        free = cluster.worker_threads(self.client) - len(self.futures)
        for job_id in queued[: max(free, 0)]:
            self._submit(job_id)

    def _submit(self, job_id: int) -> None:
        assert self.client is not None
        key = f"beamdesk-job-{job_id}-{secrets.token_hex(4)}"
        with session_scope(self.sessions) as db:
            claimed = db.execute(
                update(Job)
                .where(Job.id == job_id, Job.state.in_(states.sources("claim")))
                .values(
                    state=states.TRANSITIONS["claim"].target,
                    dask_key=key,
                    progress=0.0,
                    started_at=utcnow(),
                    message="Waiting for a worker.",
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return  # cancelled or taken meanwhile
        with session_scope(self.sessions) as db:
            job = self._load(db, job_id)
            try:
                spec = self._spec(job, key)
            except PathNotFound:
                self._fail(
                    job,
                    f"The input file {job.parameters.get('file')!r} no longer "
                    "exists in the proposal.",
                )
                return
            short = space_shortfall(spec)
            if short:
                self._fail(job, DISK_FULL_MESSAGE + f" ({short} more needed)")
                return
            task = TASKS[job.kind]
            try:
                future = self.client.submit(task, spec, key=key, retries=RETRIES, pure=False)
                if self.settings.jobs.dask_scheduler:
                    # keeps the computation alive on the scheduler if this server dies,
                    # so a restarted server can re-attach to it
                    self.client.publish_dataset(future, name=key, override=True)
            except Exception:
                log.exception("jobs: could not submit job %d", job_id)
                states.move(job, "requeue", "Waiting: the compute cluster is not reachable.")
                return
            job.append_log(f"submitted to the cluster as {key}")
        self._watch(job_id, future)

    def _watch(self, job_id: int, future: Any) -> None:
        self.futures[job_id] = future
        future.add_done_callback(lambda f, j=job_id: self.events.put(("done", j, f)))

    def _spec(self, job: Job, key: str) -> dict[str, Any]:
        number = job.proposal.number
        source = resolve_in_proposal(self.settings.data_root, number, job.parameters["file"])
        final = self._output_path(job)
        final.parent.mkdir(parents=True, exist_ok=True)
        return {
            "job": job.id,
            "key": key,
            "input": str(source),
            "file": source.relative_to(proposal_root(self.settings.data_root, number)).as_posix(),
            "dataset": job.parameters["dataset"],
            "config": job.parameters["config"],
            "output": str(part_path(final)),
            "folder": str(proposal_root(self.settings.data_root, number)),
        }

    def _output_path(self, job: Job) -> Path:
        folder = proposal_root(self.settings.data_root, job.proposal.number)
        return folder / job.parameters["output"]

    @staticmethod
    def _load(db: Session, job_id: int) -> Job:
        job = db.scalar(
            select(Job)
            .where(Job.id == job_id)
            .options(selectinload(Job.proposal), selectinload(Job.owner))
        )
        assert job is not None
        return job

    # --- completion ---------------------------------------------------------------------

    def _finish(self, job_id: int, future: Any) -> None:
        if self.futures.get(job_id) is not future or future is None:
            return
        del self.futures[job_id]
        self._pending.pop(job_id, None)
        key = future.key
        self._started_keys.discard(key)
        with session_scope(self.sessions) as db:
            job = self._load(db, job_id)
            if job.is_final or job.dask_key != key:
                return
            status = future.status
            if status == "finished":
                result = future.result()
                if result.get("ok"):
                    try:
                        with db.begin_nested():  # a failed registration must not stick
                            self._complete(db, job, result)
                    except Exception:
                        log.exception("jobs: job %d computed but not registered", job.id)
                        self._fail(
                            job,
                            "The result was computed but could not be registered in the "
                            f"catalogue; the staff can find the details in the server log "
                            f"under job {job.id}.",
                        )
                elif result.get("cancelled"):
                    self._cancelled(job)
                else:
                    self._fail(job, str(result.get("message", "The job failed.")))
            elif status in ("cancelled", "lost"):
                if job.cancel_requested:
                    self._cancelled(job)
                else:  # the scheduler dropped it (restart): compute again
                    self._requeue(job, "Re-queued: the compute cluster lost the job.")
            else:
                exc = future.exception()
                log.error(
                    "jobs: job %d (%s) failed",
                    job.id,
                    key,
                    exc_info=(type(exc), exc, future.traceback()),
                )
                self._fail(job, failure_message(exc, job.id))
        if self.settings.jobs.dask_scheduler:
            with contextlib.suppress(Exception):
                assert self.client is not None
                self.client.unpublish_dataset(key)

    def _complete(self, db: Session, job: Job, result: dict[str, Any]) -> None:
        final = self._output_path(job)
        part = part_path(final)
        if part.exists():
            os.replace(part, final)  # atomic: the final name means "complete"
        if not final.exists():
            self._fail(job, "The result file disappeared before it could be registered.")
            return
        register(db, self.settings, job, result)
        job.append_log(
            f"done: {result.get('pixels')} pixels in "
            f"{float(result.get('seconds', 0)):.1f} s → {job.parameters['output']}"
        )
        self._cleanup(job)

    def _fail(self, job: Job, message: str) -> None:
        states.move(job, "fail", message)
        self._cleanup(job, remove_part=True)

    def _cancelled(self, job: Job) -> None:
        states.move(job, "cancel", "Cancelled.", log="cancelled")
        self._cleanup(job, remove_part=True)

    def _requeue(self, job: Job, message: str) -> None:
        states.move(job, "requeue", message, log=message)
        self._cleanup(job, remove_part=True)

    def _cleanup(self, job: Job, *, remove_part: bool = False) -> None:
        """Remove partial files: ``.part`` of this job and the engine's hidden temporaries."""
        try:
            final = self._output_path(job)
        except PathNotFound:
            return
        if remove_part:
            part_path(final).unlink(missing_ok=True)
        for tmp in final.parent.glob(f".{final.name}.part.*.tmp"):
            tmp.unlink(missing_ok=True)
        if self.client is not None and job.is_final and job.cancel_requested:
            with contextlib.suppress(Exception):
                from distributed import Event

                Event(cancel_event_name(job.id), client=self.client).clear()

    # --- cancellation -------------------------------------------------------------------

    def _cancel_requested(self) -> None:
        with session_scope(self.sessions) as db:
            ids = list(
                db.scalars(
                    select(Job.id).where(
                        Job.state == JobState.running, Job.cancel_requested.is_(True)
                    )
                )
            )
        for job_id in ids:
            future = self.futures.get(job_id)
            if future is None:
                with session_scope(self.sessions) as db:
                    job = self._load(db, job_id)
                    if not job.is_final:
                        self._cancelled(job)
                continue
            from distributed import Event

            Event(cancel_event_name(job_id), client=self.client).set()
            if future.key not in self._started_keys:
                future.cancel()  # still waiting for a worker: drop it at once

    # --- recovery -----------------------------------------------------------------------

    def recover(self) -> None:
        """Re-attach or re-queue every ``running`` job (see the module docstring)."""
        assert self.client is not None
        published: set[str] = set()
        if self.settings.jobs.dask_scheduler:
            with contextlib.suppress(Exception):
                published = {str(k) for k in self.client.list_datasets()}
        with session_scope(self.sessions) as db:
            jobs = list(
                db.scalars(
                    select(Job)
                    .where(Job.state == JobState.running)
                    .options(selectinload(Job.proposal), selectinload(Job.owner))
                )
            )
            for job in jobs:
                if job.cancel_requested:
                    self._cancelled(job)
                elif job.dask_key and job.dask_key in published:
                    future = self.client.get_dataset(job.dask_key)
                    job.append_log("re-attached to its computation after a server restart")
                    self._watch(job.id, future)
                elif self._output_exists(job):
                    register(db, self.settings, job, {})
                    job.append_log("completed: its result was found after a server restart")
                    self._cleanup(job)
                else:
                    self._requeue(job, "Re-queued after a server restart.")
                    log.info("jobs: re-queued job %d after a restart", job.id)

    def _output_exists(self, job: Job) -> bool:
        try:
            return self._output_path(job).is_file()
        except PathNotFound:
            return False


def part_path(final: Path) -> Path:
    return final.with_name(final.name + ".part")


DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
DISK_FULL_MESSAGE = (
    "The result could not be written: the disk holding the proposal's processed data is "
    "full. Nothing was saved; ask the staff to free space and run the job again."
)


def space_shortfall(spec: dict[str, Any]) -> str:
    """'' if the output folder has room for the result, else how much is missing.

    Checked before the job starts: HDF5 does not fail gracefully when the disk fills in
    the middle of a write (the library can crash the worker), so a job that cannot fit
    must not start. The estimate: per pixel, four float32 values per peak group
    (area, σ, mass fraction, its σ) plus χ², doubled for HDF5 overhead, plus 1 MiB.
    """
    import shutil

    from beamdesk.sandbox.pool import ReaderError, shared_pool

    try:
        info = shared_pool().call(
            Path(spec["folder"]), "map.info", spec["file"], path=spec["dataset"]
        )
    except ReaderError:
        return ""  # the driver reports unreadable input in its own words
    shape = info["shape"]
    pixels = 1
    for n in shape[:-1]:
        pixels *= int(n)
    groups = max(len((spec.get("config") or {}).get("peaks", {})), 1) * 2
    need = 2 * pixels * 4 * (4 * groups + 1) + 2**20
    free = shutil.disk_usage(Path(spec["output"]).parent).free
    if free >= need:
        return ""
    return f"{(need - free) / 2**20:.1f} MiB"


def failure_message(exc: BaseException | None, job_id: int) -> str:
    """A sentence for the user; the details are in the server log."""
    name = type(exc).__name__ if exc is not None else ""
    if name == "KilledWorker":
        return (
            "The computation was interrupted: the worker running it stopped several "
            "times (for example out of memory). Try again or ask the beamline staff."
        )
    if isinstance(exc, MemoryError):
        return "The computation ran out of memory; ask the beamline staff for a larger worker."
    if isinstance(exc, OSError) and (exc.errno in DISK_FULL or "No space left" in str(exc)):
        return DISK_FULL_MESSAGE
    return (
        f"The job failed because of an internal error (not your input); the staff can "
        f"find the details in the server log under job {job_id}."
    )


def register(db: Session, settings: Settings, job: Job, result: dict[str, Any]) -> None:
    """Catalogue the final output with its provenance and mark the job done."""
    from beamdesk.portal.catalogue import index_file

    rel = job.parameters["output"]
    inputs = list(
        db.scalars(
            select(Dataset).where(
                Dataset.proposal_id == job.proposal_id, Dataset.path.in_(list(job.inputs or []))
            )
        )
    )
    provenance = {
        "job": job.id,
        "kind": job.kind,
        "program": f"beamdesk {beamdesk.__version__}",
        "owner": job.owner.username,
        "input": job.parameters.get("input"),
        "inputs": [{"path": d.path, "dataset_id": d.id} for d in inputs]
        or [{"path": p} for p in job.inputs or []],
        "config_file": job.parameters.get("config_file") or None,
        "config": job.parameters.get("config"),
    }
    proposal = db.get(Proposal, job.proposal_id)
    assert proposal is not None
    dataset = index_file(
        db, proposal, settings.data_root, rel, kind="processed", provenance=provenance
    )
    job.outputs = [
        {
            "path": rel,
            "dataset_id": dataset.id,
            "kind": "xrf_fit",
            "groups": result.get("groups", []),
        }
    ]
    if result:
        done = f"Fitted {result.get('pixels')} pixels in {float(result.get('seconds', 0)):.1f} s."
    else:
        done = "Done (result recovered after a server restart)."
    states.move(job, "complete", done, log="")  # the caller logs what it knows


def start_runner(settings: Settings, client: Any | None = None) -> JobRunner | None:
    """Start the runner unless another process of this installation already runs one."""
    import fcntl

    settings.var_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.var_dir / "jobs-runner.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        log.info("jobs: another process runs the jobs; this one only serves")
        return None
    runner = JobRunner(settings, client)
    runner._lock_fd = fd
    try:
        return runner.start()
    except Exception:
        # the portal must keep serving when the compute cluster is down: jobs stay queued
        log.exception("jobs: cannot start the job runner; jobs stay queued until a restart")
        runner.stop()
        return None
