"""Benchmark: the job service's overhead over the bare XRF engine, and a burst of 20 jobs.

    python bench/jobs.py                 # 200×200×2048 map; 20 jobs of 50×50×2048
    python bench/jobs.py --reps 5 --burst-size 40

1. The same 200×200×2048 map (bench/xrf_map.py's synthetic map, 14 K groups) is fitted
   (a) through the job API of a live ``uvicorn beamdesk.web.asgi:app`` (its own LocalCluster
   of 2 worker processes, as ``beamdesk serve`` starts it): POST, then GET every 20 ms until
   ``done`` — so the time includes HTTP, the database, dispatch, progress events, the final
   rename and the catalogue registration; and
   (b) directly with ``beamdesk.xrf.mapfit.fit_map`` on a warm LocalCluster of the same
   shape (2 worker processes, 1 thread each) in this process.
   Both run alternately ``--reps`` times after one warm-up each; medians are compared.
2. ``--burst-size`` jobs on smaller maps are submitted at once by 4 users (threads), and
   all must end ``done`` with their result on disk and in the catalogue: none lost.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from xrf_map import CFG, ELEMENTS, FANO, GAIN, NOISE, ZERO, write_map

ROOT = Path(__file__).resolve().parents[1]
NUMBER = "20269999"
DS = "/entry/data/spectra"
USERS = ("ana", "ben", "cleo", "dan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setup(tmp: Path, big: tuple[int, int], small: tuple[int, int], burst: int) -> dict[str, Any]:
    """Database, users with tokens, a proposal with the maps and the configuration."""
    from beamdesk.db import make_engine, make_sessionmaker, session_scope
    from beamdesk.migrate import upgrade
    from beamdesk.portal.auth import create_api_token, create_user
    from beamdesk.portal.models import (
        GlobalRole,
        MemberRole,
        Proposal,
        ProposalMember,
        ProposalState,
    )

    url = f"sqlite:///{tmp / 'beamdesk.db'}"
    upgrade(url)
    tokens = {}
    engine = make_engine(url)
    with session_scope(make_sessionmaker(engine)) as db:
        proposal = Proposal(number=NUMBER, title="Job benchmark", state=ProposalState.scheduled)
        db.add(proposal)
        for i, name in enumerate(USERS):
            user = create_user(db, name, GlobalRole.user, password="x" * 16)
            role = MemberRole.pi if i == 0 else MemberRole.participant
            proposal.members.append(ProposalMember(user_id=user.id, role=role))
            tokens[name] = create_api_token(db, user, name="bench").token
    engine.dispose()
    raw = tmp / "data" / NUMBER / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    peaks = "\n".join(f"{el} = K" for el in ELEMENTS)
    (raw / "fit.cfg").write_text(
        CFG.format(peaks=peaks, zero=ZERO, gain=GAIN, noise=NOISE, fano=FANO)
    )
    t0 = time.perf_counter()
    write_map(raw / "big.h5", *big)
    write_map(raw / "small_00.h5", *small)
    for i in range(1, burst):
        # one name per job (hard links: same data, no extra disk)
        os.link(raw / "small_00.h5", raw / f"small_{i:02d}.h5")
    print(f"wrote the maps in {time.perf_counter() - t0:.0f} s", flush=True)
    return {"url": url, "tokens": tokens, "raw": raw}


def start_server(tmp: Path, url: str, quota: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "BEAMDESK_VAR": str(tmp),
        "BEAMDESK_DATA": str(tmp / "data"),
        "BEAMDESK_DATABASE_URL": url,
        "BEAMDESK_DASK_WORKERS": "2",
        "BEAMDESK_MAX_CONCURRENT_JOBS": str(quota),
    }
    log = (tmp / "server.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "beamdesk.web.asgi:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("the server did not start; see server.log")


def run_job(http: httpx.Client, base: str, token: str, source: str) -> dict[str, Any]:
    """Submit and poll every 20 ms until the job ends; returns the job and the wall time."""
    headers = {"Authorization": f"Bearer {token}"}
    t0 = time.perf_counter()
    r = http.post(
        f"{base}/api/proposals/{NUMBER}/jobs",
        headers=headers,
        json={"kind": "xrf_map", "input": source, "config_file": "raw/fit.cfg"},
    )
    r.raise_for_status()
    job_id = r.json()["id"]
    while True:
        job = http.get(f"{base}/api/jobs/{job_id}", headers=headers).json()
        if job["state"] in ("done", "failed", "cancelled"):
            job["wall"] = time.perf_counter() - t0
            return job
        time.sleep(0.02)


def direct(client: Any, raw: Path, out: Path) -> float:
    from beamdesk.xrf.config import load_config
    from beamdesk.xrf.mapfit import fit_map

    t0 = time.perf_counter()
    cfg = load_config(raw / "fit.cfg")  # the job loads it too (at submission)
    fit_map(raw / "big.h5", DS, cfg, out, client=client)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=2, default=(200, 200))
    ap.add_argument("--small", type=int, nargs=2, default=(50, 50))
    ap.add_argument("--burst-size", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tmp", type=Path, default=None)
    args = ap.parse_args()
    from distributed import Client, LocalCluster

    tmp = args.tmp or Path(tempfile.mkdtemp(prefix="jobs-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    ny, nx = args.size
    print(
        f"job service vs engine: {ny}×{nx}×2048 map, {len(ELEMENTS)} groups; "
        f"{os.cpu_count()} cores; in {tmp}",
        flush=True,
    )
    world = setup(tmp, (ny, nx), tuple(args.small), args.burst_size)
    quota = -(-args.burst_size // len(USERS))
    proc, base = start_server(tmp, world["url"], quota)
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    client = Client(cluster)
    token = world["tokens"][USERS[0]]
    try:
        with httpx.Client(timeout=60) as http:
            # warm-up: imports in the workers, first HDF5 opens, SQLite caches
            run_job(http, base, token, f"raw/small_00.h5::{DS}")
            direct(client, world["raw"], tmp / "direct.nxs")
            api_t, direct_t, server_t = [], [], []
            for _ in range(args.reps):
                direct_t.append(direct(client, world["raw"], tmp / "direct.nxs"))
                job = run_job(http, base, token, f"raw/big.h5::{DS}")
                assert job["state"] == "done", job
                api_t.append(job["wall"])
                from datetime import datetime

                server_t.append(
                    (
                        datetime.fromisoformat(job["finished_at"])
                        - datetime.fromisoformat(job["created_at"])
                    ).total_seconds()
                )
            px = ny * nx
            d, a, s = (statistics.median(x) for x in (direct_t, api_t, server_t))
            print(f"\n{'':34s} {'median s':>9s} {'px/s':>8s}   runs")
            print(
                f"{'engine (fit_map, warm cluster)':34s} {d:9.2f} {px / d:8.0f}   "
                + " ".join(f"{x:.2f}" for x in direct_t)
            )
            print(
                f"{'job API (POST → GET done)':34s} {a:9.2f} {px / a:8.0f}   "
                + " ".join(f"{x:.2f}" for x in api_t)
            )
            print(f"{'  of which in the server':34s} {s:9.2f}")
            print(
                f"overhead of the job service: {100 * (a - d) / d:+.1f} % ({a - d:+.2f} s per job)",
                flush=True,
            )

            # --- a burst: every user submits their share at the same moment -------------
            sources = [f"raw/small_{i:02d}.h5::{DS}" for i in range(args.burst_size)]
            owners = [world["tokens"][USERS[i % len(USERS)]] for i in range(args.burst_size)]
            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.burst_size) as pool:
                jobs = list(
                    pool.map(
                        lambda p: run_job(http, base, p[0], p[1]), zip(owners, sources, strict=True)
                    )
                )
            wall = time.perf_counter() - t0
            states = [j["state"] for j in jobs]
            outputs = [
                tmp / "data" / NUMBER / j["outputs"][0]["path"] for j in jobs if j["outputs"]
            ]
            headers = {"Authorization": f"Bearer {token}"}
            listed = http.get(f"{base}/api/proposals/{NUMBER}/jobs", headers=headers).json()
            lat = sorted(j["wall"] for j in jobs)
            sx, sy = args.small
            print(
                f"\nburst: {args.burst_size} jobs of {sx}×{sy}×2048 by {len(USERS)} users "
                f"(quota {quota} each)"
            )
            print(
                f"  all ended in {wall:.1f} s ({args.burst_size / wall:.2f} jobs/s, "
                f"{args.burst_size * sx * sy / wall:.0f} px/s)"
            )
            print(f"  per-job latency: median {statistics.median(lat):.1f} s, max {lat[-1]:.1f} s")
            print(
                f"  done {states.count('done')}, failed {states.count('failed')}, "
                f"cancelled {states.count('cancelled')}; result files "
                f"{sum(p.is_file() for p in outputs)}; catalogued "
                f"{sum(1 for j in jobs if j['outputs'] and j['outputs'][0]['dataset_id'])}; "
                f"jobs listed {len(listed)}"
            )
            lost = args.burst_size - states.count("done")
            print(f"  lost: {lost}")
            return 0 if lost == 0 else 1
    finally:
        client.close()
        cluster.close()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
