"""Faults under way: PostgreSQL restarted under load, a data file deleted or truncated
while it is being streamed. The portal must answer clearly (503 problem+json during the
outage, a clean end of stream) and recover by itself.

The PostgreSQL test runs a private server (tools/postgres.sh on its own port and folder),
so stopping it disturbs no one else's tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest

from beamdesk.db import make_engine, make_sessionmaker, session_scope
from beamdesk.migrate import upgrade
from beamdesk.portal.models import ProposalState
from tests.conftest import LiveServer, _fresh_postgres_database, make_settings
from tests.factories import make_proposal, make_world

pytestmark = pytest.mark.slow
TOOLS = Path(__file__).resolve().parents[2] / "tools" / "postgres.sh"
PG_ENV = {**os.environ, "BEAMDESK_PG_PORT": "54391", "BEAMDESK_PG_DIR": "/tmp/beamdesk-pg-faults"}


def pg(action: str) -> str:
    done = subprocess.run(
        [str(TOOLS), action], env=PG_ENV, capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[str]:
    if (not shutil.which("runuser") and os.geteuid() == 0) or not list(
        Path("/usr/lib/postgresql").glob("*/bin")
    ):
        pytest.skip("PostgreSQL server binaries not installed (make test installs them)")
    url = pg("start")
    yield url
    pg("stop")


def _loader(
    url: str, token: str, stop: threading.Event, codes: Counter[int], bodies: list[str]
) -> None:
    with httpx.Client(
        base_url=url, timeout=10, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        while not stop.is_set():
            try:
                r = client.get("/api/proposals/20260001")
            except httpx.HTTPError:
                codes[0] += 1
                continue
            codes[r.status_code] += 1
            if r.status_code >= 500:
                bodies.append(r.headers.get("content-type", "") + " " + r.text[:300])


def test_postgres_restart_under_load(private_postgres: str, tmp_path: Path) -> None:
    url = _fresh_postgres_database(private_postgres)
    upgrade(url)
    settings = make_settings(tmp_path, url)
    engine = make_engine(url)
    with session_scope(make_sessionmaker(engine)) as db:
        world = make_world(db, tokens=True)
        make_proposal(db, world, "20260001", ProposalState.scheduled)
    engine.dispose()
    from beamdesk.web.app import create_app

    app = create_app(settings)
    phases: dict[str, Counter[int]] = {"before": Counter(), "outage": Counter(), "after": Counter()}
    bodies: list[str] = []
    with LiveServer(app) as server:
        for phase in phases:
            stop = threading.Event()
            workers = [
                threading.Thread(
                    target=_loader,
                    args=(server.url, world.tokens["pi"], stop, phases[phase], bodies),
                )
                for _ in range(4)
            ]
            if phase == "outage":
                pg("stop")
            elif phase == "after":
                pg("start")
            for w in workers:
                w.start()
            time.sleep(3 if phase != "after" else 1)
            if phase == "after":  # give the pool its reconnection, then measure
                phases["after"].clear()
                time.sleep(3)
            stop.set()
            for w in workers:
                w.join(timeout=15)
    app.state.engine.dispose()
    print({k: dict(v) for k, v in phases.items()})
    assert set(phases["before"]) == {200}
    assert phases["outage"][503] > 0 and set(phases["outage"]) <= {200, 503}, phases["outage"]
    assert all("application/problem+json" in b and "Traceback" not in b for b in bodies)
    # recovered by itself: only successes once the server is back
    assert phases["after"][200] > 20 and set(phases["after"]) == {200}, phases["after"]


# ------------------------------------------------------------------ files changing under us
@pytest.fixture
def big_file_server(settings, sessions, app):  # type: ignore[no-untyped-def]
    with sessions() as db:
        world = make_world(db, tokens=True)
        make_proposal(db, world, "20260001", ProposalState.scheduled)
        db.commit()
    path = settings.data_root / "20260001" / "raw" / "big.h5"
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as f:  # 64 MiB, uncompressed: streamed in 8 MiB slabs
        f.create_dataset("data", data=np.arange(8 * 2**20, dtype="f8").reshape(1024, -1))
    (settings.data_root / "20260001" / "raw" / "good.h5").write_bytes(path.read_bytes()[:0])
    with h5py.File(settings.data_root / "20260001" / "raw" / "good.h5", "w") as f:
        f["x"] = np.arange(5)
    with LiveServer(app) as server:
        yield server, world.tokens["pi"], path


def _stream_then(server: LiveServer, token: str, path: Path, damage: str) -> tuple[int, int]:
    """Start streaming the whole dataset, damage the file after the first MiB."""
    headers = {"Authorization": f"Bearer {token}"}
    got = 0
    expected = 0
    with (
        httpx.Client(base_url=server.url, headers=headers, timeout=30) as client,
        client.stream(
            "GET",
            "/api/proposals/20260001/h5/data",
            params={"file": "raw/big.h5", "path": "/data", "format": "bin"},
        ) as r,
    ):
        assert r.status_code == 200
        expected = int(r.headers["content-length"])
        try:
            for chunk in r.iter_raw(1 << 20):
                if got == 0:
                    if damage == "delete":
                        path.unlink()
                    else:
                        with path.open("r+b") as fh:
                            fh.truncate(4096)
                got += len(chunk)
        except httpx.HTTPError:
            pass  # the server cut the stream: the client can tell from the length
    return got, expected


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_file_damaged_while_streamed(big_file_server, damage: str) -> None:  # type: ignore[no-untyped-def]
    server, token, path = big_file_server
    got, expected = _stream_then(server, token, path, damage)
    if damage == "delete":
        # POSIX: an open file outlives its name, so the stream completes, and is correct
        assert got == expected
    else:
        assert got < expected  # cut short, never padded with garbage
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        r = client.get("/api/proposals/20260001/h5/meta", params={"file": "raw/big.h5"})
        assert r.status_code in (404, 422), r.text  # gone, or refused as truncated
        assert r.headers["content-type"].startswith("application/problem+json")
        if damage == "truncate":  # no zeros from past the new end: refused
            r = client.get(
                "/api/proposals/20260001/h5/data",
                params={"file": "raw/big.h5", "path": "/data", "selection": "1000,0:5"},
            )
            assert r.status_code == 422 and "truncated" in r.json()["detail"], r.text
        ok = client.get(
            "/api/proposals/20260001/h5/data", params={"file": "raw/good.h5", "path": "/x"}
        )
        assert ok.status_code == 200 and ok.json() == [0, 1, 2, 3, 4]
