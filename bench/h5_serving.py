"""Time the HDF5 content API over loopback HTTP against raw h5py and stock h5grove.

"HTTP floor" is the same number of bytes sent from memory by a trivial route, so
BD/(h5py+floor) shows what the API adds beyond reading and moving the bytes.

Prints a table; asserts nothing. Run: .venv/bin/python bench/h5_serving.py [--keep DIR]
With BENCH_BASELINE=DIR (a checkout of an earlier BeamDesk, e.g. ``git worktree add DIR
<commit>``) a third server runs that code on the same files, and "BD/before" compares.
Builds ~2 GiB of HDF5 in a temporary folder (4096^2 images, a 100x2048x2048 stack), starts
BeamDesk and a bare h5grove FastAPI app in subprocesses and samples the BeamDesk server's
RSS from /proc during a 1 GiB npy download.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import h5py
import hdf5plugin
import httpx
import numpy as np

NUMBER = "20260001"
REPEAT = 5
MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    image = (np.add.outer(np.arange(4096), np.arange(4096)) % 1000).astype("f4")
    image += np.random.default_rng(1).random(image.shape, dtype="f4")
    with h5py.File(folder / "images.h5", "w") as f:
        f.create_dataset("contiguous", data=image)
        f.create_dataset("gzip", data=image, chunks=(256, 4096), compression="gzip")
        f.create_dataset("lz4", data=image, chunks=(256, 4096), **hdf5plugin.LZ4())
    if (folder / "stack.h5").exists():
        return
    with h5py.File(folder / "stack.h5", "w") as f:
        d = f.create_dataset("frames", shape=(100, 2048, 2048), dtype="f4", chunks=(1, 256, 2048))
        frame = image[:2048, :2048]
        for i in range(100):
            d[i] = frame + i


def setup_db(var: Path) -> tuple[str, str]:
    from beamdesk.db import make_engine, make_sessionmaker
    from beamdesk.migrate import upgrade
    from beamdesk.portal.auth import create_api_token, create_user
    from beamdesk.portal.models import GlobalRole
    from beamdesk.portal.proposals import create_proposal

    url = f"sqlite:///{var / 'beamdesk.db'}"
    upgrade(url)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as db:
        pi = create_user(db, "pi", GlobalRole.user, password="bench password 1")
        create_proposal(db, pi, title="Bench", number=NUMBER, now=datetime.now(UTC))
        token = create_api_token(db, pi, name="bench").token
        db.commit()
    engine.dispose()
    return url, token


BEAMDESK_SERVER = """
import uvicorn
from beamdesk.settings import settings_from_env
from beamdesk.web.app import create_app
uvicorn.run(create_app(settings_from_env()), host="127.0.0.1", port={port}, log_level="warning")
"""
H5GROVE_SERVER = """
import uvicorn
from fastapi import FastAPI
from h5grove.fastapi_utils import router, settings
settings.base_dir = {base!r}
app = FastAPI()
app.include_router(router)
from fastapi import Response
BLOB = bytes(64 * 1024 * 1024)

@app.get("/floor")
def floor(n: int) -> Response:  # the HTTP floor: n bytes already in memory
    return Response(memoryview(BLOB)[:n], media_type="application/octet-stream")
uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning")
"""


def start_baseline(env: dict[str, str]) -> tuple[subprocess.Popen | None, str]:
    """The earlier BeamDesk of BENCH_BASELINE (its package first on the path), or None."""
    baseline = os.environ.get("BENCH_BASELINE")
    if not baseline:
        return None, ""
    port = free_port()
    proc = start(BEAMDESK_SERVER.format(port=port), {**env, "PYTHONPATH": baseline}, port)
    return proc, f"http://127.0.0.1:{port}/api/proposals/{NUMBER}/h5/data"


def start(code: str, env: dict[str, str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **env})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


def median_time(fn: Callable[[], object]) -> float:
    fn()  # warm the page cache and the file handle cache
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def fetch(client: httpx.Client, url: str, params: dict[str, str]) -> int:
    with client.stream("GET", url, params=params) as r:
        r.raise_for_status()
        return sum(len(b) for b in r.iter_raw(1 << 20))


def rss_during(pid: int, fn: Callable[[], object]) -> tuple[float, float]:
    """(baseline, peak) RSS in MiB of process ``pid`` while ``fn`` runs."""

    def rss() -> float:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    base, peak, done = rss(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.005)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    return base, peak[0]


def main() -> None:
    keep = Path(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[1] == "--keep" else None
    work = keep or Path(tempfile.mkdtemp(prefix="bd-bench-"))
    data, var = work / "data", work / "var"
    var.mkdir(parents=True, exist_ok=True)
    print(f"building files in {work} …", flush=True)
    build_files(data / NUMBER)
    if (var / "beamdesk.db").exists():
        (var / "beamdesk.db").unlink()
    url, token = setup_db(var)
    bd_port, hg_port = free_port(), free_port()
    env = {
        "BEAMDESK_DATA": str(data),
        "BEAMDESK_DATABASE_URL": url,
        "BEAMDESK_VAR": str(var),
        "BEAMDESK_SECRET_KEY": "bench-secret-not-for-production",
    }
    bd = start(BEAMDESK_SERVER.format(port=bd_port), env, bd_port)
    try:
        hg = start(H5GROVE_SERVER.format(port=hg_port, base=str(data / NUMBER)), {}, hg_port)
    except RuntimeError:
        bd.terminate()
        raise
    before, before_url = start_baseline(env)
    client = httpx.Client(timeout=600, headers={"Authorization": f"Bearer {token}"})
    bd_url = f"http://127.0.0.1:{bd_port}/api/proposals/{NUMBER}/h5/data"
    hg_base = f"http://127.0.0.1:{hg_port}"
    hg_url = f"{hg_base}/data"
    files = {name: h5py.File(data / NUMBER / name, "r") for name in ("images.h5", "stack.h5")}
    cases = [
        ("4096² f4 contiguous", "images.h5", "/contiguous", None, np.s_[()]),
        ("4096² f4 gzip chunked", "images.h5", "/gzip", None, np.s_[()]),
        ("4096² f4 LZ4 chunked", "images.h5", "/lz4", None, np.s_[()]),
        ("1 frame of 100x2048²", "stack.h5", "/frames", "7", np.s_[7]),
    ]
    try:
        print(
            f"\n{'selection':26} {'fmt':4} {'h5py ms':>8} {'HTTP floor':>10} {'BeamDesk':>9} "
            f"{'h5grove':>8} {'BD/h5py':>8} {'BD/(h5py+floor)':>15} {'BD/h5grove':>10}"
            f"{' BD/before':>10}"
        )
        for label, file, path, sel, key in cases:
            raw = median_time(lambda f=file, p=path, k=key: files[f][p][k])
            nbytes = files[file][path][key].nbytes
            floor = median_time(lambda n=nbytes: fetch(client, hg_base + "/floor", {"n": str(n)}))
            for fmt in ("bin", "npy"):
                params = {"file": file, "path": path, "format": fmt}
                if sel:
                    params["selection"] = sel
                ours = median_time(lambda p=params: fetch(client, bd_url, p))
                stock = median_time(lambda p=params: fetch(client, hg_url, p))
                old = (
                    median_time(lambda p=params: fetch(client, before_url, p))
                    if before
                    else float("nan")
                )
                print(
                    f"{label:26} {fmt:4} {raw:8.1f} {floor:10.1f} {ours:9.1f} {stock:8.1f} "
                    f"{ours / raw:8.2f} {ours / (raw + floor):15.2f} {ours / stock:10.2f}"
                    f"{ours / old:10.2f}"
                )

        tile = {
            "file": "stack.h5",
            "path": "/frames",
            "selection": "7,0:1024,0:1024",
            "format": "bin",
        }
        view = {
            "file": "stack.h5",
            "path": "/frames",
            "selection": "7",
            "format": "bin",
            "downsample": "512x512",
            "downsample_method": "mean",
        }
        t_tile = median_time(lambda: fetch(client, bd_url, tile))
        t_view = median_time(lambda: fetch(client, bd_url, view))
        t_dec = median_time(
            lambda: fetch(client, bd_url, {**view, "downsample_method": "decimate"})
        )
        print(
            f"\n1.6 GiB stack, frame 7: full-res 1024² tile {t_tile:.1f} ms; "
            f"2048²→512² mean view {t_view:.1f} ms ({t_view / t_tile:.2f}x, goal < 3x); "
            f"decimate {t_dec:.1f} ms ({t_dec / t_tile:.2f}x)"
        )
        # What the handle cache saves: the same small reads while the file is unchanged
        # (handle reused) and with its mtime bumped before each request (the signature
        # changes, so every request reopens the file, as it would with no cache at all).
        corner = {"file": "stack.h5", "path": "/frames", "selection": "7,0:16,0:16"}
        meta_url = bd_url.removesuffix("/data") + "/meta"
        stack_path = data / NUMBER / "stack.h5"

        def reopened(url: str, params: dict[str, str]) -> Callable[[], object]:
            def run() -> object:
                os.utime(stack_path, ns=(time.time_ns(), time.time_ns()))
                return fetch(client, url, params)

            return run

        print()
        for name, url, params in (
            ("16² frame corner", bd_url, {**corner, "format": "bin"}),
            ("meta of /frames", meta_url, {"file": "stack.h5", "path": "/frames"}),
        ):
            warm = median_time(lambda u=url, p=params: fetch(client, u, p))
            cold = median_time(reopened(url, params))
            print(
                f"{name:28} handle reused {warm:6.2f} ms, reopened each time {cold:6.2f} ms "
                f"(not caching costs {cold / warm:.2f}x)"
            )

        if before:
            small = {
                "file": "stack.h5",
                "path": "/frames",
                "selection": "7,0:16,0:16",
                "format": "bin",
            }
            for name, params in (
                ("1024² tile", tile),
                ("512² view", view),
                ("16² frame corner (overhead)", small),
            ):
                ours = median_time(lambda p=params: fetch(client, bd_url, p))
                old = median_time(lambda p=params: fetch(client, before_url, p))
                print(f"{name:28} now {ours:7.2f} ms, before {old:7.2f} ms, ratio {ours / old:.2f}")
            before.terminate()
            before.wait(timeout=10)

        # Memory is measured on freshly started servers: the figure is what one 1 GiB
        # download costs, not what the timing runs above left in the allocator.
        for proc in (bd, hg):
            proc.terminate()
            proc.wait(timeout=10)
        bd_port, hg_port = free_port(), free_port()
        bd = start(BEAMDESK_SERVER.format(port=bd_port), env, bd_port)
        hg = start(H5GROVE_SERVER.format(port=hg_port, base=str(data / NUMBER)), {}, hg_port)
        bd_url = f"http://127.0.0.1:{bd_port}/api/proposals/{NUMBER}/h5/data"
        hg_url = f"http://127.0.0.1:{hg_port}/data"
        big = {"file": "stack.h5", "path": "/frames", "selection": "0:64", "format": "npy"}
        size = [0]
        t0 = time.perf_counter()
        base, peak = rss_during(bd.pid, lambda: size.__setitem__(0, fetch(client, bd_url, big)))
        secs = time.perf_counter() - t0
        print(
            f"\n1 GiB npy download ({size[0] / MiB:.0f} MiB in {secs:.1f} s, "
            f"{size[0] / MiB / secs:.0f} MiB/s): BeamDesk server RSS {base:.0f} MiB before, "
            f"peak {peak:.0f} MiB (+{peak - base:.0f}; goal peak < 200 MiB)"
        )
        base, peak = rss_during(hg.pid, lambda: fetch(client, hg_url, big))
        print(f"same download from stock h5grove: RSS {base:.0f} MiB before, peak {peak:.0f} MiB")
    finally:
        client.close()
        for proc in (bd, hg):
            proc.terminate()
            proc.wait(timeout=10)
        for f in files.values():
            f.close()
    if not keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
