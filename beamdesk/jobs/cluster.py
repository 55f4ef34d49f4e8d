"""The dask.distributed client the job runner submits to.

By default ``beamdesk serve`` starts a LocalCluster next to the web server
(``BEAMDESK_DASK_WORKERS`` worker processes, one thread each: the XRF engine's numpy work
releases the GIL, but HDF5 reads and the driver's writes do not, so processes scale better
for several jobs at once). ``BEAMDESK_DASK_SCHEDULER=tcp://host:8786`` connects to an
existing cluster instead, e.g. a ``dask-scheduler`` whose workers come from SLURM through
dask-jobqueue (docs/jobs.md); then the data root must be mounted at the same path on every
worker.
"""

from __future__ import annotations

import logging
from typing import Any

from beamdesk.settings import Settings

log = logging.getLogger("beamdesk.jobs")


def use_processes(settings: Settings) -> bool:
    """Local workers as processes unless ``BEAMDESK_DASK_PROCESSES=false`` (tests)."""
    return settings.jobs.dask_processes


def start_client(settings: Settings) -> Any:
    """A connected ``distributed.Client``: to the configured scheduler, or a new LocalCluster."""
    from distributed import Client, LocalCluster

    if settings.jobs.dask_scheduler:
        client = Client(settings.jobs.dask_scheduler, timeout="30s")
        log.info("jobs: connected to dask scheduler %s", settings.jobs.dask_scheduler)
        return client
    cluster = LocalCluster(
        n_workers=max(settings.jobs.dask_workers, 1),
        threads_per_worker=1,
        processes=use_processes(settings),
        dashboard_address=":0",  # any free port: several servers may share a host
        # workers must not outlive a server that was killed: they stop once the scheduler
        # (inside the server process) is gone for this long
        death_timeout="10s",
    )
    client = Client(cluster)
    log.info(
        "jobs: local dask cluster with %d workers (%s)",
        max(settings.jobs.dask_workers, 1),
        "processes" if use_processes(settings) else "threads",
    )
    return client


def close_client(client: Any) -> None:
    """Close the client and, if it started one, its LocalCluster."""
    cluster = getattr(client, "cluster", None)
    try:
        client.close()
    finally:
        if cluster is not None:
            cluster.close()


def worker_threads(client: Any) -> int:
    """Threads in the cluster right now (workers can come and go on a batch cluster)."""
    try:
        return max(sum(client.nthreads().values()), 1)
    except Exception:  # scheduler briefly unreachable: keep going with one slot
        return 1
