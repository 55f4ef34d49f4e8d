"""Load test: simulated users browse, view slices and submit small jobs against PostgreSQL.

    python bench/load.py                       # 100 users, 5 minutes, 3 uvicorn workers
    python bench/load.py --users 20 --seconds 60

Sets up a fresh PostgreSQL database on the private server of ``tools/postgres.sh`` (or
``--database-url``), the demo facility (real NeXus files, the 1 GB stack), one account and
API token per simulated user (each a participant of the demo XRF proposal), then starts
``uvicorn --workers N`` in its own process group. The users run in a second process (an
asyncio loop with httpx), each repeating a browsing session with 0.2–1.5 s think time:
proposal lists, the proposal page, dataset lists and searches, HDF5 metadata, downsampled
stack frames, single spectra, and now and then a small XRF map job followed until it ends.

Prints, per endpoint: requests, throughput, median and 99th percentile latency, errors
(any 5xx, transport error or unexpected 4xx; a 429 from the per-user job quota is counted
apart, it is the service working as documented); the jobs submitted and their end states
(none may be lost); and the peak memory of every server process (uvicorn workers, the dask
scheduler and workers, PostgreSQL backends).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
NUMBER = "20260008"
MAP = "raw/xrf/mussel_shell_map.nxs"
STACK = "raw/tomo/projections.nxs"


def fresh_database(base_url: str, name: str) -> str:
    import sqlalchemy as sa

    admin = sa.create_engine(base_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return base_url.rsplit("/", 1)[0] + f"/{name}"


def prepare(url: str, tmp: Path, users: int) -> list[str]:
    """Demo facility plus one participant and token per simulated user; their tokens."""
    from sqlalchemy import select

    from beamdesk.db import make_engine, make_sessionmaker
    from beamdesk.demo import create_demo
    from beamdesk.migrate import upgrade
    from beamdesk.portal.auth import create_api_token, create_user
    from beamdesk.portal.models import GlobalRole, MemberRole, Proposal, ProposalMember
    from beamdesk.settings import settings_from_env

    upgrade(url)
    settings = settings_from_env(tmp / "data")
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    create_demo(settings, sessions)
    tokens = []
    with sessions() as db:
        proposal = db.scalar(select(Proposal).where(Proposal.number == NUMBER))
        for i in range(users):
            user = create_user(db, f"load{i:03d}", GlobalRole.user)
            db.add(
                ProposalMember(
                    proposal_id=proposal.id, user_id=user.id, role=MemberRole.participant
                )
            )
            tokens.append(create_api_token(db, user, name="load").token)
        db.commit()
    engine.dispose()
    return tokens


def session_steps(rng: random.Random) -> list[tuple[str, str, str, dict | None]]:
    """One user's browsing session: (endpoint name, method, path, JSON body)."""
    h5 = f"/api/proposals/{NUMBER}/h5"
    frame = rng.randrange(520)
    y, x = rng.randrange(60), rng.randrange(80)
    steps = [
        ("proposal list", "GET", "/api/proposals", None),
        ("proposal page", "GET", f"/proposals/{NUMBER}", None),
        ("dataset list", "GET", f"/api/proposals/{NUMBER}/datasets?limit=50", None),
        ("dataset search", "GET", f"/api/datasets?q={rng.choice(['xanes', 'map', 'saxs'])}", None),
        ("h5 meta", "GET", f"{h5}/meta?file={MAP}&path=/entry/spectra/data", None),
        (
            "stack frame (downsampled)",
            "GET",
            f"{h5}/data?file={STACK}&path=/entry/data/data&selection={frame}"
            "&downsample=256x256&format=bin&dtype=safe",
            None,
        ),
        (
            "spectrum of a pixel",
            "GET",
            f"{h5}/data?file={MAP}&path=/entry/spectra/data&selection={y},{x},:&format=bin",
            None,
        ),
    ]
    if rng.random() < 0.1:
        steps.append(
            (
                "job submit",
                "POST",
                f"/api/proposals/{NUMBER}/jobs",
                {
                    "kind": "xrf_map",
                    "input": f"{MAP}::/entry/spectra/data",
                    "config_file": "config/xrf_map.toml",
                },
            )
        )
    return steps


async def user_loop(
    k: int, base: str, token: str, until: float, stats: dict, jobs: list[int]
) -> None:
    rng = random.Random(k)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as client:
        while time.monotonic() < until:
            for name, method, path, body in session_steps(rng):
                if time.monotonic() >= until:
                    return
                t0 = time.perf_counter()
                try:
                    r = await client.request(method, path, json=body)
                    status = r.status_code
                except httpx.HTTPError:
                    status = 0
                elapsed = time.perf_counter() - t0
                entry = stats[name]
                entry["latency"].append(elapsed)
                if status == 429 and name == "job submit":
                    entry["quota"] += 1
                elif status == 0 or status >= 500 or (status >= 400 and status != 429):
                    entry["errors"] += 1
                    entry.setdefault("examples", []).append(status)
                elif name == "job submit":
                    jobs.append(r.json()["id"])
                await asyncio.sleep(rng.uniform(0.2, 1.5))


async def drive(base: str, tokens: list[str], seconds: float) -> tuple[dict, list[int]]:
    stats: dict = defaultdict(lambda: {"latency": [], "errors": 0, "quota": 0})
    jobs: list[int] = []
    until = time.monotonic() + seconds
    await asyncio.gather(*(user_loop(k, base, t, until, stats, jobs) for k, t in enumerate(tokens)))
    return dict(stats), jobs


def wait_for_jobs(base: str, token: str, ids: list[int], limit: float) -> dict[str, int]:
    """End states of the submitted jobs; 'lost' would be one the API no longer knows."""
    states: dict[int, str] = {}
    deadline = time.monotonic() + limit
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        while time.monotonic() < deadline:
            for job_id in ids:
                if states.get(job_id) in ("done", "failed", "cancelled", "lost"):
                    continue
                r = client.get(f"/api/jobs/{job_id}")
                states[job_id] = r.json()["state"] if r.status_code == 200 else "lost"
            if all(s in ("done", "failed", "cancelled", "lost") for s in states.values()):
                break
            time.sleep(2)
    counts: dict[str, int] = defaultdict(int)
    for state in states.values():
        counts[state] += 1
    return dict(counts)


class MemoryWatch:
    """Peak RSS of each process of the server's tree and of PostgreSQL, sampled every 2 s."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.peaks: dict[str, float] = defaultdict(float)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _label(self, proc: psutil.Process) -> str:
        if "postgres" in proc.name():
            return "postgresql (all backends, USS)"
        if proc.pid == self.server_pid:
            return f"uvicorn master pid {proc.pid}"
        if proc.ppid() == self.server_pid:
            return f"uvicorn worker pid {proc.pid}"
        return f"dask (scheduler side/worker) pid {proc.pid}"

    def _run(self) -> None:
        while not self._stop.wait(2.0):
            try:
                root = psutil.Process(self.server_pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            procs += [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]
            sample: dict[str, float] = defaultdict(float)
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    # PostgreSQL backends share their buffers: count each one's own pages.
                    mem = (
                        proc.memory_full_info().uss
                        if "postgres" in proc.name()
                        else proc.memory_info().rss
                    )
                    sample[self._label(proc)] += mem / 2**20
            for label, mib in sample.items():
                self.peaks[label] = max(self.peaks[label], mib)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def report(
    stats: dict,
    seconds: float,
    jobs: dict[str, int],
    submitted: int,
    peaks: dict[str, float],
    args: argparse.Namespace,
) -> None:
    print(f"\n{args.users} users, {seconds:.0f} s, {args.workers} uvicorn workers, PostgreSQL\n")
    print(
        f"{'endpoint':28} {'requests':>9} {'req/s':>7} {'median ms':>10} {'p99 ms':>9} "
        f"{'errors':>7} {'429':>5}"
    )
    total = errors = 0
    for name, entry in stats.items():
        lat = sorted(entry["latency"])
        if not lat:
            continue
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        total += len(lat)
        errors += entry["errors"]
        print(
            f"{name:28} {len(lat):9d} {len(lat) / seconds:7.1f} "
            f"{statistics.median(lat) * 1000:10.1f} {p99 * 1000:9.1f} {entry['errors']:7d} "
            f"{entry['quota']:5d}"
        )
        if entry.get("examples"):
            print(f"{'':28} error statuses: {sorted(set(entry['examples']))}")
    print(f"{'all':28} {total:9d} {total / seconds:7.1f}   errors {errors}")
    print(f"\njobs: {submitted} submitted, end states {jobs}")
    print("\npeak memory (RSS, MiB):")
    for label, mib in sorted(peaks.items()):
        print(f"  {label:40} {mib:8.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--database-url", default="")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="beamdesk-load-"))
    base_url = (
        args.database_url
        or subprocess.run(
            [str(ROOT / "tools" / "postgres.sh"), "start"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    url = fresh_database(base_url, "beamdesk_load") if not args.database_url else base_url
    env = {
        **os.environ,
        "BEAMDESK_VAR": str(tmp),
        "BEAMDESK_DATABASE_URL": url,
        "BEAMDESK_DATA": str(tmp / "data"),
        "BEAMDESK_SECRET_KEY": "load-test",
        "BEAMDESK_DEMO_PASSWORD": "load-test-password",
    }
    os.environ.update(env)
    t0 = time.perf_counter()
    tokens = prepare(url, tmp, args.users)
    print(f"prepared demo data and {args.users} users in {time.perf_counter() - t0:.0f} s")

    port = 19000 + os.getpid() % 1000
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "beamdesk.web.asgi:app",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/api/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        with MemoryWatch(server.pid) as watch:
            started = time.perf_counter()
            stats, job_ids = asyncio.run(drive(base, tokens, args.seconds))
            elapsed = time.perf_counter() - started
            states = wait_for_jobs(base, tokens[0], job_ids, limit=300)
        report(stats, elapsed, states, len(job_ids), dict(watch.peaks), args)
        out = ROOT / "bench" / "results"
        out.mkdir(exist_ok=True)
        (out / "load.json").write_text(
            json.dumps(
                {
                    "users": args.users,
                    "seconds": elapsed,
                    "workers": args.workers,
                    "endpoints": {
                        k: {
                            "requests": len(v["latency"]),
                            "median_ms": statistics.median(v["latency"]) * 1000,
                            "errors": v["errors"],
                            "quota_429": v["quota"],
                        }
                        for k, v in stats.items()
                        if v["latency"]
                    },
                    "jobs": states,
                    "peak_rss_mib": watch.peaks,
                },
                indent=2,
            )
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
