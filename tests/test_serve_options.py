"""``beamdesk serve`` behind a reverse proxy: --forwarded-allow-ips, --root-path, --workers.

The installed command runs as a subprocess. Which proxies are trusted is seen through
``/metrics``, which answers loopback clients only: a trusted proxy's ``X-Forwarded-For``
makes the request come from the forwarded address (403), an untrusted one is ignored (200).
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

BIN = Path(sys.executable).parent
ELSEWHERE = {"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https"}


@contextmanager
def serve(
    tmp_path: Path,
    sqlite_url: str,
    *options: str,
    env: dict[str, str] | None = None,
    banner: bool = True,
) -> Iterator[tuple[str, Path]]:
    """The server's base URL and its log file, while it runs; ``env`` adds variables, and
    without ``banner`` the log holds only the log lines (stderr), not the start-up banner."""
    var = tmp_path / "var"
    var.mkdir(exist_ok=True)
    # another "process" runs the jobs: this server only serves (no dask needed)
    lock = os.open(var / "jobs-runner.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    port = free_port()
    variables = os.environ | {
        "BEAMDESK_DATABASE_URL": sqlite_url,
        "BEAMDESK_VAR": str(var),
        "BEAMDESK_DATA": str(tmp_path / "data"),
        **(env or {}),
    }
    log = tmp_path / f"serve-{port}.log"
    with log.open("w") as sink:
        server = subprocess.Popen(
            [str(BIN / "beamdesk"), "serve", "--port", str(port), *options],
            env=variables,
            cwd=tmp_path,
            stdout=sink if banner else subprocess.DEVNULL,
            stderr=sink,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while True:
                try:
                    httpx.get(f"{base}/api/health", timeout=2)
                    break
                except httpx.TransportError:
                    assert server.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.2)
            yield base, log
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
            os.close(lock)


@pytest.mark.slow
def test_trusted_proxy_root_path_and_workers(tmp_path: Path, sqlite_url: str) -> None:
    opts = ("--forwarded-allow-ips", "127.0.0.1", "--root-path", "/beamdesk", "--workers", "2")
    with serve(tmp_path, sqlite_url, *opts) as (base, log):
        assert httpx.get(f"{base}/metrics").status_code == 200  # loopback itself
        # the proxy on 127.0.0.1 is trusted: the client is the forwarded address
        assert httpx.get(f"{base}/metrics", headers=ELSEWHERE).status_code == 403
        # the proxy strips the prefix; the app knows it (OpenAPI's server URL)
        spec = httpx.get(f"{base}/api/openapi.json").json()
        assert spec["servers"] == [{"url": "/beamdesk"}]
        assert httpx.get(f"{base}/api/health").json()["status"] == "ok"
    text = log.read_text()
    assert text.count("Started server process") == 2, text  # two uvicorn workers
    assert "http://127.0.0.1:" in text and "/beamdesk" in text


@pytest.mark.slow
def test_default_trusts_only_loopback_and_other_addresses_are_ignored(
    tmp_path: Path, sqlite_url: str
) -> None:
    with serve(tmp_path, sqlite_url) as (base, _):
        assert httpx.get(f"{base}/metrics", headers=ELSEWHERE).status_code == 403
        assert httpx.get(f"{base}/api/openapi.json").json().get("servers") is None
    # a proxy elsewhere is trusted: the same headers from loopback are not believed
    with serve(tmp_path, sqlite_url, "--forwarded-allow-ips", "192.0.2.7") as (base, _):
        assert httpx.get(f"{base}/metrics", headers=ELSEWHERE).status_code == 200


def test_bad_root_path_is_one_line(tmp_path: Path, sqlite_url: str) -> None:
    env = os.environ | {"BEAMDESK_DATABASE_URL": sqlite_url, "BEAMDESK_VAR": str(tmp_path)}
    out = subprocess.run(
        [str(BIN / "beamdesk"), "serve", "--root-path", "beamdesk/"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: --root-path starts with / and does not end with one, e.g. /beamdesk"
    ]
