"""A proposal with a real NeXus file, people with tokens, and (for the slow tests) a real
JupyterHub with configurable-http-proxy on loopback ports, sharing the test's database."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest

from beamdesk.jupyter.hub_config import hub_command
from beamdesk.jupyter.hubapi import HubClient
from beamdesk.jupyter.layout import HubLayout, default_proxy_command, hub_layout
from beamdesk.portal.catalogue import index_data_root
from beamdesk.portal.models import ProposalState
from beamdesk.settings import Settings
from tests.conftest import free_port, make_settings
from tests.factories import make_proposal, make_world
from tests.nexus import nx_data, nx_entry, nx_root

NUMBER = "20260011"
OTHER = "20260012"  # the same people, but outsider is a member here and pi is not
FILE = "raw/scan_0001.nxs"
DATASET = "/entry/data/counts"


def write_scan(path: Path) -> np.ndarray:
    """A NeXus scan: 5 frames of 24×32 counts, plus an energy axis; returns the counts."""
    rng = np.random.default_rng(2026)
    counts = rng.poisson(50.0, size=(5, 24, 32)).astype("float32")
    counts[2, 3, 4] = 1e6  # a hot pixel, so sums differ by frame
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        nx_root(f, default="entry")
        entry = nx_entry(f, default="data", fields={"title": "test scan"})
        data = nx_data(
            entry,
            "data",
            "counts",
            counts,
            signal_options={"chunks": (1, 24, 32), "compression": "gzip"},
        )
        data["energy"] = np.linspace(1.0, 20.0, 32)  # not named in @axes
    return counts


@pytest.fixture
def hub_ports() -> dict[str, str]:
    public = free_port()
    return {
        "url": f"http://127.0.0.1:{public}",
        "port": free_port(),
        "proxy_api_port": free_port(),
    }


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str, hub_ports: dict[str, str]) -> Settings:
    """The portal's settings, knowing where the test's hub listens."""
    return make_settings(tmp_path, sqlite_url, hub=hub_ports)


@dataclass
class JWorld:
    tokens: dict[str, str]
    counts: np.ndarray
    file: Path


@pytest.fixture
def jworld(sessions, settings: Settings) -> JWorld:  # type: ignore[no-untyped-def]
    with sessions() as db:
        world = make_world(db, tokens=True)
        make_proposal(db, world, NUMBER, ProposalState.data_collected)
        other = make_proposal(db, world, OTHER, ProposalState.data_collected)
        other.members[0].user_id = world.users["outsider"].id  # outsider is PI of OTHER
        db.commit()
        tokens = dict(world.tokens)
    counts = write_scan(settings.data_root / NUMBER / FILE)
    write_scan(settings.data_root / OTHER / "raw" / "other.nxs")
    with sessions() as db:
        index_data_root(db, settings.data_root)
        db.commit()
    return JWorld(tokens, counts, settings.data_root / NUMBER / FILE)


@dataclass
class RunningHub:
    settings: HubLayout
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return self.settings.url

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture
def hub(settings: Settings, live_server, tmp_path: Path) -> Iterator[RunningHub]:  # type: ignore[no-untyped-def]
    """``beamdesk hub``'s command, run against the test's database and live portal."""
    if not Path(default_proxy_command()).exists():
        if os.environ.get("CI"):
            pytest.fail("configurable-http-proxy missing: run 'make jupyter-proxy'")
        pytest.skip("configurable-http-proxy not installed (make jupyter-proxy)")
    argv, env, folder = hub_command(settings)
    env.update(
        {
            "BEAMDESK_VAR": str(settings.var_dir),
            "BEAMDESK_DATA": str(settings.data_root),
            "BEAMDESK_DATABASE_URL": settings.database_url,
            "BEAMDESK_SECRET_KEY": settings.secret_key,
            "BEAMDESK_BASE_URL": live_server.url,
        }
    )
    log = tmp_path / "jupyterhub.log"
    with log.open("wb") as out:
        # Own session: teardown stops the hub, its proxy and the servers it spawned, and
        # nothing else on the machine.
        process = subprocess.Popen(
            argv, env=env, cwd=folder, stdout=out, stderr=out, start_new_session=True
        )
    running = RunningHub(hub_layout(settings), process, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{running.url}/hub/api/", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"JupyterHub did not start:\n{running.log_text()}")
        time.sleep(0.3)
    yield running
    # Servers run in sessions of their own: stop them through the hub first, so none
    # outlives the test even if the hub is slow to shut down.
    with contextlib.suppress(Exception), HubClient(running.settings, timeout=20) as api:
        for user in api.users():
            api.stop_server(user)
    process.send_signal(signal.SIGTERM)  # the hub stops its proxy itself
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever of this group is left
