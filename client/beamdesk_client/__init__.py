"""A small Python client for BeamDesk's REST API, for notebooks and scripts.

Its own distribution, ``beamdesk-client`` (httpx and numpy only), so a notebook environment
can install it without the server; with the server installed it is also ``beamdesk.client``.

In a notebook started by BeamDesk's JupyterHub the address and a personal token are in the
environment, so::

    from beamdesk_client import Client

    bd = Client.from_env()
    bd.proposals()                                   # what you may see
    bd.datasets("20260001")                          # the files of one proposal
    frame = bd.open("20260001", "raw/scan.nxs", "/entry/data/data", "0,:,:")  # numpy
    job = bd.submit_xrf_job("20260001", "raw/map.nxs", "/entry/data/spectra",
                            config_file="raw/fit.cfg")
    bd.wait(job)
    bd.results(job)

Elsewhere create a token on the portal's ``/tokens`` page and set ``BEAMDESK_URL`` and
``BEAMDESK_TOKEN``, or pass them to :class:`Client`. Errors from the server raise
:class:`BeamDeskError` with the server's explanation (problem details).
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import numpy as np

__all__ = ["BeamDeskError", "Client"]

FINAL_JOB_STATES = frozenset({"done", "failed", "cancelled"})


class BeamDeskError(RuntimeError):
    """The server refused a request; ``status`` is the HTTP status, ``detail`` its reason."""

    def __init__(self, status: int, detail: str, url: str = "") -> None:
        super().__init__(f"{status}: {detail}" + (f" ({url})" if url else ""))
        self.status = status
        self.detail = detail
        self.url = url


class Client:
    """A connection to one BeamDesk server as one user (a personal API token).

    Args:
        url: the portal's address, e.g. ``http://127.0.0.1:8000``.
        token: a personal API token (``bd_…``); None for anonymous access to open data.
        timeout: seconds to wait for each response.
    """

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    @classmethod
    def from_env(cls, *, timeout: float = 60.0) -> Client:
        """A client from ``BEAMDESK_URL`` and ``BEAMDESK_TOKEN`` (set by BeamDesk's hub)."""
        url = os.environ.get("BEAMDESK_URL")
        if not url:
            raise BeamDeskError(0, "BEAMDESK_URL is not set; pass url= to Client instead")
        return cls(url, os.environ.get("BEAMDESK_TOKEN") or None, timeout=timeout)

    # -- plumbing ---------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
                detail = str(body.get("detail") or body.get("title") or response.text)
            except ValueError:
                detail = response.text[:500] or response.reason_phrase
            raise BeamDeskError(response.status_code, detail, str(response.url))
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def _pages(
        self, path: str, params: Mapping[str, Any] | None = None, page_size: int = 500
    ) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list (``{items, total, limit, offset}``)."""
        offset = 0
        while True:
            page = self._json(
                "GET", path, params={**(params or {}), "limit": page_size, "offset": offset}
            )
            if isinstance(page, list):  # an unpaginated list
                yield from page
                return
            items = page.get("items", [])
            yield from items
            offset += len(items)
            if not items or offset >= int(page.get("total", offset)):
                return

    # -- proposals and files ----------------------------------------------------------
    def me(self) -> dict[str, Any]:
        """Who the token belongs to."""
        return self._json("GET", "/api/me")

    def proposals(self, *, state: str | None = None) -> list[dict[str, Any]]:
        """The proposals you may see, newest first (each a dict with ``number``, ``title``…)."""
        params = {"state": state} if state else {}
        return list(self._pages("/api/proposals", params, page_size=500))

    def proposal(self, number: str) -> dict[str, Any]:
        """One proposal's details."""
        return self._json("GET", f"/api/proposals/{number}")

    def datasets(self, number: str) -> list[dict[str, Any]]:
        """The catalogued files of a proposal (each with ``path``, size, title…)."""
        return list(self._pages(f"/api/proposals/{number}/datasets"))

    files = datasets

    def download(self, number: str, path: str, dest: str | Path) -> Path:
        """Save one file of the proposal to ``dest`` (a file or a folder); returns the file."""
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / Path(path).name
        with self._http.stream("GET", f"/api/proposals/{number}/files/{path}") as response:
            if response.status_code >= 400:
                response.read()
                self._request("GET", f"/api/proposals/{number}/files/{path}")  # raises
            with dest.open("wb") as fh:
                for chunk in response.iter_bytes(1 << 20):
                    fh.write(chunk)
        return dest

    # -- HDF5 content -----------------------------------------------------------------
    def meta(self, number: str, file: str, path: str = "/") -> dict[str, Any]:
        """An HDF5 object's metadata: kind, shape, type, attributes, children."""
        return self._json(
            "GET", f"/api/proposals/{number}/h5/meta", params={"file": file, "path": path}
        )

    def attrs(self, number: str, file: str, path: str = "/") -> dict[str, Any]:
        """An HDF5 object's attributes as a dict."""
        return self._json(
            "GET", f"/api/proposals/{number}/h5/attr", params={"file": file, "path": path}
        )

    def stats(
        self, number: str, file: str, path: str, selection: str | None = None
    ) -> dict[str, float]:
        """min, max, mean, std of the finite values of a dataset (or a selection of it)."""
        params = {"file": file, "path": path}
        if selection:
            params["selection"] = selection
        return self._json("GET", f"/api/proposals/{number}/h5/stats", params=params)

    def open(self, number: str, file: str, path: str, selection: str | None = None) -> np.ndarray:
        """A dataset, or a selection of it, as a numpy array with the file's dtype.

        Args:
            number: the proposal number.
            file: the file, relative to the proposal folder (``raw/scan_0001.nxs``).
            path: the dataset inside the file (``/entry/data/data``).
            selection: h5py-style, one member per dimension, e.g. ``"0,:,10:20"``;
                None reads everything.
        """
        params = {"file": file, "path": path, "format": "npy"}
        if selection:
            params["selection"] = selection
        response = self._request("GET", f"/api/proposals/{number}/h5/data", params=params)
        return np.load(io.BytesIO(response.content), allow_pickle=False)

    # -- analysis jobs ----------------------------------------------------------------
    def submit_xrf_job(
        self,
        number: str,
        file: str,
        dataset: str,
        config: Mapping[str, Any] | None = None,
        *,
        config_file: str | None = None,
        kind: str = "xrf_map",
    ) -> int:
        """Start an XRF analysis of one dataset; returns the job's id (see :meth:`wait`).

        Args:
            number: the proposal number.
            file: the input file, relative to the proposal folder.
            dataset: the spectra inside it, e.g. ``/entry/data/spectra``.
            config: the fit configuration as BeamDesk's TOML structure (docs/xrf.md), or
            config_file: a configuration file of the proposal (``.toml`` or PyMca ``.cfg``).
            kind: the analysis; ``xrf_map`` fits every pixel.
        """
        body: dict[str, Any] = {"kind": kind, "input": f"{file}::{dataset}"}
        if config is not None:
            body["config"] = dict(config)
        if config_file is not None:
            body["config_file"] = config_file
        return int(self._json("POST", f"/api/proposals/{number}/jobs", json=body)["id"])

    def jobs(self, number: str) -> list[dict[str, Any]]:
        """The analysis jobs of a proposal that you may see."""
        return self._json("GET", f"/api/proposals/{number}/jobs")

    def job(self, job_id: int) -> dict[str, Any]:
        """A job's state, progress (0…1) and outputs."""
        return self._json("GET", f"/api/jobs/{job_id}")

    def wait(self, job_id: int, *, timeout: float = 3600.0, poll: float = 1.0) -> dict[str, Any]:
        """Wait until the job is done, failed or cancelled; returns its last state.

        Raises:
            BeamDeskError: the job failed or was cancelled.
            TimeoutError: still running after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job.get("state") in FINAL_JOB_STATES:
                if job["state"] != "done":
                    raise BeamDeskError(
                        0, f"job {job_id} {job['state']}: {job.get('message', '')}".rstrip(": ")
                    )
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.get('state')} after {timeout} s")
            time.sleep(poll)

    def results(self, job_id: int) -> list[dict[str, Any]]:
        """The outputs of a finished job (each with the ``path`` of a file in the proposal)."""
        return list(self.job(job_id).get("outputs") or [])
