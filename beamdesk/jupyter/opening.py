""" "Open in a notebook": which notebook, under which name, saved in the user's server.

The routes (``web/routes/notebooks.py``) check access and read the dataset's path and
shape through a reader worker; this module makes the notebook (``jupyter.notebooks``),
checks the selection against the shape, names it, and saves it through the hub's API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from beamdesk.errors import Invalid
from beamdesk.h5.selection import parse_selection
from beamdesk.jupyter.hubapi import HubClient, lab_path
from beamdesk.jupyter.layout import HubLayout
from beamdesk.jupyter.notebooks import dataset_notebook, notebook_name, xrf_job_notebook


@dataclass(frozen=True)
class NotebookToOpen:
    """A notebook's content and its path in the user's Jupyter server."""

    path: str
    content: dict[str, Any]


def dataset_notebook_to_open(
    number: str, file: str, dataset: str, shape: tuple[int, ...], selection: str
) -> NotebookToOpen:
    """The notebook loading ``dataset`` (or a slice); :class:`Invalid` (422) for a bad or
    out-of-range selection, now rather than as an error inside the notebook later."""
    notebook = dataset_notebook(number, file, dataset, selection)  # or BadSelection, 422
    parse_selection(selection or None, shape)  # out-of-range members
    name = notebook_name(number, file, dataset, selection)
    return NotebookToOpen(f"notebooks/{number}/{name}", notebook)


def job_notebook_to_open(
    number: str, job_id: int, kind: str, parameters: Mapping[str, Any] | None
) -> NotebookToOpen:
    """The notebook re-running job ``job_id`` with its configuration; :class:`Invalid`
    when the job has no input file and dataset."""
    params = parameters or {}
    if not params.get("file") or not params.get("dataset"):
        raise Invalid(f"Job {job_id} has no input file and dataset to re-run.")
    notebook = xrf_job_notebook(
        number, params["file"], params["dataset"], params.get("config") or {}, kind=kind
    )
    return NotebookToOpen(f"notebooks/{number}/job_{job_id}_{kind}.ipynb", notebook)


def save_in_server(hub_layout: HubLayout, username: str, notebook: NotebookToOpen) -> str:
    """Save the notebook in the user's server (user and server made if needed); its
    hub-relative JupyterLab address. ``HubUnavailable`` (503) when the hub does not answer."""
    with HubClient(hub_layout) as hub:
        hub.ensure_user(username)
        hub.start_server(username)
        hub.put_notebook(username, notebook.path, notebook.content)
    return lab_path(username, notebook.path)
