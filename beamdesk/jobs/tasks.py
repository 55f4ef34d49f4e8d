"""What runs on the dask workers: one driver task per job, no database, no web.

The driver task runs the engine (``beamdesk.xrf.mapfit.fit_map``) with a ``worker_client``,
so the map's blocks fan out over the whole cluster while the driver streams their results
into the output file. It talks to the server only through the scheduler:

- progress: ``Worker.log_event(TOPIC, {...})`` after every block; the server subscribes to
  the topic (``Client.subscribe_topic``) and writes the row. Workers therefore need no
  database access, which matters on a batch cluster where they cannot reach it.
- cancellation: a ``distributed.Event`` named after the job; the progress hook checks it
  and stops the fit between two blocks (dask cannot interrupt a running Python thread).

The output goes to ``…/<id>-<name>.nxs.part`` (the engine itself writes a hidden temporary
file and renames it, so a ``.part`` file is always complete); the server renames it to the
final name and only then registers it in the catalogue.

Errors the user can fix (missing file, wrong shape, bad configuration) are *returned* as
``{"ok": False, "message": …}`` so dask does not retry them; anything else is raised and
retried by dask (``retries=`` on submit), and a worker that dies is rescheduled by the
scheduler.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

TOPIC = "beamdesk-jobs"


class JobCancelled(Exception):
    """Raised inside the driver when the user cancelled the job."""


def cancel_event_name(job_id: int) -> str:
    return f"beamdesk-job-{job_id}-cancel"


def _user_message(exc: BaseException, folder: str) -> str:
    """The first line of an engine error, with the proposal folder's absolute path removed."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if folder:
        text = text.replace(folder.rstrip("/") + "/", "")
    return text


def run_xrf_map(spec: dict[str, Any]) -> dict[str, Any]:
    """Driver task of an ``xrf_map`` job (see the module docstring).

    ``spec``: job (id), key (the dask key, sent back with every event), input (absolute
    file), dataset, config (TOML-shaped dict), output (absolute ``.part`` path), folder (the
    proposal folder, to shorten messages).
    """
    from distributed import Event, get_worker, worker_client

    from beamdesk.sandbox.maps import SandboxedMap
    from beamdesk.xrf.config import ConfigError, from_toml_dict
    from beamdesk.xrf.fit import FitError
    from beamdesk.xrf.mapfit import MapFitError, fit_map
    from beamdesk.xrf.physics import PhysicsError
    from beamdesk.xrf.quant import QuantError

    job_id, key = int(spec["job"]), str(spec["key"])
    worker = get_worker()
    worker.log_event(
        TOPIC,
        {
            "job": job_id,
            "key": key,
            "event": "started",
            "worker": worker.address,
            "pid": os.getpid(),
        },
    )
    folder = str(spec.get("folder", ""))
    try:
        cfg = from_toml_dict(spec["config"], source="configuration")
    except ConfigError as exc:
        return {"ok": False, "message": f"Invalid configuration: {_user_message(exc, folder)}"}

    with worker_client() as client:
        cancelled = Event(cancel_event_name(job_id), client=client)

        def progress(done: int, total: int) -> None:
            worker.log_event(
                TOPIC,
                {"job": job_id, "key": key, "event": "progress", "done": done, "total": total},
            )
            if cancelled.is_set():
                raise JobCancelled

        try:
            result = fit_map(
                SandboxedMap(spec["folder"], spec["file"]),
                spec["dataset"],
                cfg,
                spec["output"],
                client=client,
                progress=progress,
            )
        except JobCancelled:
            return {"ok": False, "cancelled": True, "message": "Cancelled."}
        except (MapFitError, ConfigError, FitError, PhysicsError, QuantError) as exc:
            return {"ok": False, "message": _user_message(exc, folder)}
    return {
        "ok": True,
        "output": str(Path(result.output_file)),
        "pixels": int(result.pixels),
        "seconds": float(result.seconds),
        "groups": list(result.groups),
        "refitted_pixels": int(result.refitted_pixels),
        "map_shape": [int(n) for n in result.map_shape],
        "worker": worker.address,
    }


TASKS = {"xrf_map": run_xrf_map}
