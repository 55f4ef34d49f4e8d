"""Portal latency under load: 1,000 proposals, 100,000 datasets, 32 concurrent clients.

Measures median and 99th-percentile latency of the dataset list, the dataset search and
the proposal page, next to the bare health endpoint in the same run (same server, same
client, same concurrency), and prints the ratios. Run: ``.venv/bin/python bench/portal.py``
(``--database-url postgresql+psycopg://…`` for PostgreSQL, ``--workers 2`` for more
uvicorn processes, ``--seconds`` per endpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert, select

from beamdesk.db import make_engine, make_sessionmaker
from beamdesk.migrate import upgrade
from beamdesk.portal.auth import create_api_token, create_user
from beamdesk.portal.models import (
    Beamline,
    Dataset,
    GlobalRole,
    MemberRole,
    Proposal,
    ProposalMember,
    ProposalState,
)

WORDS = [
    "iron",
    "zinc",
    "copper",
    "root",
    "glass",
    "catalyst",
    "battery",
    "cathode",
    "soil",
    "pigment",
    "bone",
    "tissue",
    "alloy",
    "perovskite",
    "nanoparticle",
    "meteorite",
]


def seed(url: str, n_proposals: int, n_datasets: int) -> tuple[str, str, str]:
    """Fill an empty database; return (token of a PI, token of the user office, a number)."""
    upgrade(url)
    engine = make_engine(url)
    rng = random.Random(7)
    now = datetime.now(UTC)
    with make_sessionmaker(engine)() as db:
        beamlines = [Beamline(name="XRF"), Beamline(name="SAXS")]
        db.add_all(beamlines)
        pi = create_user(db, "pi", GlobalRole.user, password="bench-password-1")
        office = create_user(db, "office", GlobalRole.user_office, password="bench-password-1")
        db.flush()
        states = list(ProposalState)
        db.execute(
            insert(Proposal),
            [
                {
                    "number": f"2026{i:04d}",
                    "title": f"{rng.choice(WORDS)} {rng.choice(WORDS)} {i}",
                    "abstract": "",
                    "state": states[i % len(states)],
                    "beamline_id": beamlines[i % 2].id,
                    "category": "new",
                    "shifts_requested": 3,
                    "embargo_extended": False,
                    "doi": "",
                    "created_at": now,
                    "updated_at": now,
                    "release_date": now - timedelta(days=1) if i % 10 == 0 else None,
                }
                for i in range(n_proposals)
            ],
        )
        ids = dict(db.execute(select(Proposal.number, Proposal.id)).all())
        # The PI is a member of every 20th proposal (50 of 1,000).
        db.execute(
            insert(ProposalMember),
            [
                {"proposal_id": ids[f"2026{i:04d}"], "user_id": pi.id, "role": MemberRole.pi}
                for i in range(0, n_proposals, 20)
            ],
        )
        per = n_datasets // n_proposals
        rows = []
        for i in range(n_proposals):
            for j in range(per):
                rows.append(
                    {
                        "proposal_id": ids[f"2026{i:04d}"],
                        "path": f"raw/scan_{j:04d}.nxs",
                        "size": 1000 + j,
                        "mtime": now,
                        "sha256": "0" * 64,
                        "is_hdf5": True,
                        "title": (title := f"{rng.choice(WORDS)} scan {j}"),
                        "instrument": "XRF",
                        "search_text": f"raw/scan_{j:04d}.nxs {title} xrf",
                        "nx_classes": "NXentry/NXdata",
                        "error": "",
                        "kind": "raw",
                        "start_time": now - timedelta(hours=j),
                        "indexed_at": now,
                    }
                )
            if len(rows) >= 20000:
                db.execute(insert(Dataset), rows)
                rows = []
        if rows:
            db.execute(insert(Dataset), rows)
        pi_token = create_api_token(db, pi).token
        office_token = create_api_token(db, office).token
        db.commit()
    engine.dispose()
    return pi_token, office_token, "20260000"


async def hammer(
    base: str,
    paths: list[str],
    token: str,
    seconds: float,
    clients: int,
) -> list[float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base, limits=limits, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as client:

        async def one_client(k: int) -> None:
            nonlocal errors
            i = k
            while time.perf_counter() < deadline:
                path = paths[i % len(paths)]
                i += clients
                t0 = time.perf_counter()
                r = await client.get(path)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors += 1

        await asyncio.gather(*(one_client(k) for k in range(clients)))
    if errors:
        print(f"  !! {errors} non-200 answers", file=sys.stderr)
    return latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", default="")
    ap.add_argument("--proposals", type=int, default=1000)
    ap.add_argument("--datasets", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="beamdesk-bench-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    t0 = time.perf_counter()
    pi_token, office_token, _ = seed(url, args.proposals, args.datasets)
    print(
        f"seeded {args.proposals} proposals, {args.datasets} datasets "
        f"in {time.perf_counter() - t0:.1f} s ({url.split(':')[0]})"
    )

    port = 18000 + os.getpid() % 1000
    env = {
        **os.environ,
        "BEAMDESK_VAR": str(tmp),
        "BEAMDESK_DATABASE_URL": url,
        "BEAMDESK_DATA": str(tmp / "data"),
        "BEAMDESK_SECRET_KEY": "bench",
    }
    (tmp / "data").mkdir()
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
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/api/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        member_numbers = [f"2026{i:04d}" for i in range(0, args.proposals, 20)]
        cases = [
            ("health", ["/api/health"], pi_token),
            (
                "dataset list (PI, 50 per page)",
                [f"/api/proposals/{n}/datasets?limit=50" for n in member_numbers],
                pi_token,
            ),
            (
                "dataset search (PI, text)",
                [f"/api/datasets?q={w}&limit=50" for w in WORDS],
                pi_token,
            ),
            (
                "dataset search (user office, all)",
                [f"/api/datasets?q={w}&limit=50" for w in WORDS],
                office_token,
            ),
            ("proposal page (HTML)", [f"/proposals/{n}" for n in member_numbers], pi_token),
        ]
        asyncio.run(hammer(base, ["/api/health"], pi_token, 1.0, args.clients))  # warm up
        results = {}
        for name, paths, token in cases:
            lat = asyncio.run(hammer(base, paths, token, args.seconds, args.clients))
            results[name] = (statistics.median(lat) * 1000, pct(lat, 99), len(lat) / args.seconds)
        h_med, _, _ = results["health"]
        print(
            f"\n{args.clients} concurrent clients, {args.workers} uvicorn worker(s), "
            f"{args.seconds:.0f} s per endpoint\n"
        )
        print(f"{'endpoint':38} {'median ms':>10} {'p99 ms':>9} {'req/s':>8} {'× health':>9}")
        for name, (med, p99, rps) in results.items():
            print(f"{name:38} {med:10.1f} {p99:9.1f} {rps:8.0f} {med / h_med:9.2f}")
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
