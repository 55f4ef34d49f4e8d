"""The production topology of docs/deployment.md, on this host, from the deploy/ templates.

nginx (TLS with a self-signed certificate) in front of the portal and JupyterHub; a dask
scheduler and a worker, the job runner and the hub as their own programs; all of them
supervised by one supervisord configuration; PostgreSQL (a fresh database on the test
server; SQLite when none is configured). Through HTTPS only, with the certificate as the one
trusted authority: Secure cookies and HSTS, a sign-in, a viewer read compared with h5py, a
map-fit job to ``done``; then ``supervisorctl restart`` of every program in turn, after each
the portal and the hub answer again, the user and the job row are still there, and after
each compute program's restart a new job completes.
"""

from __future__ import annotations

import html
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np
import pytest
from websockets.sync.client import connect as ws_connect

from beamdesk.db import make_engine, make_sessionmaker
from beamdesk.settings import Settings
from tests.conftest import PASSWORD, _fresh_postgres_database, free_port
from tests.jobs.conftest import DS, NUMBER, build_world

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SUPERVISORD = shutil.which("supervisord") or "/usr/bin/supervisord"
SUPERVISORCTL = shutil.which("supervisorctl") or "/usr/bin/supervisorctl"
GROUP = "beamdesk"
PROGRAMS = [
    "nginx",
    f"{GROUP}:beamdesk-portal",
    f"{GROUP}:beamdesk-dask-scheduler",
    f"{GROUP}:beamdesk-dask-worker",
    f"{GROUP}:beamdesk-jobs",
    f"{GROUP}:beamdesk-hub",
]
COMPUTE = {"beamdesk-dask-scheduler", "beamdesk-dask-worker", "beamdesk-jobs"}
MAP = f"raw/map.h5::{DS}"
OPENSSL = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
OPENSSL += ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]


def render(template: Path, values: dict[str, str]) -> str:
    """A deploy/ template with its @NAME@ placeholders filled; none may be left."""
    text = template.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    settings = [line for line in text.splitlines() if not line.lstrip().startswith(("#", ";"))]
    left = set(re.findall(r"@([A-Z_]+)@", "\n".join(settings)))
    assert not left, f"{template.name}: placeholders without a value: {left}"
    return text


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "tls.crt", folder / "tls.key"
    subprocess.run(
        [*OPENSSL, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


@dataclass
class Topology:
    base: str  # https://127.0.0.1:<port>
    tls: ssl.SSLContext
    conf: Path  # supervisord.conf
    logs: Path
    http_port: int
    settings: Settings  # what the test itself uses to reach the same database and data

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, verify=self.tls, timeout=30)

    def ctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SUPERVISORCTL, "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def log_tail(self) -> str:
        parts = [self.ctl("status").stdout]
        for log in sorted(self.logs.glob("*.log")):
            lines = [line[:300] for line in log.read_text().splitlines()[-25:]]
            parts.append(f"--- {log.name}\n" + "\n".join(lines))
        return "\n".join(parts)


def binaries_or_skip() -> None:
    missing = [b for b in (NGINX, SUPERVISORD, SUPERVISORCTL) if not Path(b).exists()]
    proxy = ROOT / "tools" / "jupyter-proxy" / "node_modules" / ".bin" / "configurable-http-proxy"
    if not proxy.exists() and not shutil.which("configurable-http-proxy"):
        missing.append("configurable-http-proxy (make jupyter-proxy)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"missing {', '.join(missing)}: run 'make system-test-deps'")
        pytest.skip(f"missing {', '.join(missing)} (make system-test-deps installs them)")


def database_url(tmp_path: Path) -> str:
    base = os.environ.get("BEAMDESK_TEST_POSTGRES_URL")
    if base:
        return _fresh_postgres_database(base)
    return f"sqlite:///{tmp_path / 'beamdesk.db'}"


def wait_for(what: str, check, topology: Topology | None = None, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, ssl.SSLError) as exc:
            last = exc
        time.sleep(0.3)
    tail = topology.log_tail() if topology else ""
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})\n{tail}")


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    binaries_or_skip()
    run, logs = tmp_path / "run", tmp_path / "logs"
    for d in (run, logs, tmp_path / "var", tmp_path / "data"):
        d.mkdir()
    cert, key = self_signed(run)
    ports = {
        name: free_port()
        for name in ("https", "http", "portal", "hub", "hub_api", "proxy_api", "dask", "dash")
    }
    base = f"https://127.0.0.1:{ports['https']}"
    url = database_url(tmp_path)
    env = {
        "BEAMDESK_VAR": str(tmp_path / "var"),
        "BEAMDESK_DATA": str(tmp_path / "data"),
        "BEAMDESK_DATABASE_URL": url,
        "BEAMDESK_SECRET_KEY": secrets.token_urlsafe(32),
        "BEAMDESK_BASE_URL": base,
        "BEAMDESK_COOKIE_SECURE": "true",
        "BEAMDESK_DASK_SCHEDULER": f"tcp://127.0.0.1:{ports['dask']}",
        "BEAMDESK_JOBS_IN_SERVER": "false",
        "BEAMDESK_HUB_URL": base,
        "BEAMDESK_HUB_BIND_URL": f"http://127.0.0.1:{ports['hub']}",
        "BEAMDESK_HUB_PORT": str(ports["hub_api"]),
        "BEAMDESK_HUB_PROXY_API_PORT": str(ports["proxy_api"]),
        # one account on a test machine (the sandbox spawner needs root: docs/jupyter.md)
        "BEAMDESK_HUB_SPAWNER": "simple",
        # users' files are parsed in plain processes here (bubblewrap is tested elsewhere)
        "BEAMDESK_SANDBOX": "process",
    }
    env_file = run / "beamdesk.env"
    env_file.write_text("".join(f"{k}='{v}'\n" for k, v in env.items()))
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("BEAMDESK_")} | env

    # the schema and the people, proposal, files of tests/jobs
    upgrade = subprocess.run(
        [str(BIN / "beamdesk"), "db", "upgrade"], env=child_env, capture_output=True, text=True
    )
    assert upgrade.returncode == 0, upgrade.stderr
    settings = Settings(
        var_dir=tmp_path / "var", data_root=tmp_path / "data", database_url=url, base_url=base
    )
    engine = make_engine(url)
    build_world(settings, make_sessionmaker(engine))
    engine.dispose()

    values = {
        "SERVER_NAME": "127.0.0.1 localhost",
        "HTTP_PORT": str(ports["http"]),
        "HTTPS_PORT": str(ports["https"]),
        "TLS_CERT": str(cert),
        "TLS_KEY": str(key),
        "PORTAL_PORT": str(ports["portal"]),
        "HUB_PORT": str(ports["hub"]),
        "BIN": str(BIN),
        "ENV_FILE": str(env_file),
        "DIR": str(tmp_path),
        "LOG_DIR": str(logs),
        "USER": os.environ.get("USER") or subprocess.check_output(["id", "-un"], text=True).strip(),
        "PORTAL_WORKERS": "1",
        "DASK_PORT": str(ports["dask"]),
        "DASK_DASHBOARD_PORT": str(ports["dash"]),
        "DASK_WORKERS": "1",
        "DASK_MEMORY": "2GiB",
    }
    site = run / "beamdesk-site.conf"
    site.write_text(render(ROOT / "deploy" / "nginx" / "beamdesk.conf", values))
    programs = run / "beamdesk-programs.conf"
    programs.write_text(render(ROOT / "deploy" / "supervisord" / "beamdesk.conf", values))
    temp = {name: run / f"nginx-{name}" for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    (run / "nginx.conf").write_text(
        # Debian's /etc/nginx/nginx.conf in small: the site file is included as is.
        f"daemon off;\nworker_processes 1;\npid {run / 'nginx.pid'};\n"
        f"error_log {logs / 'nginx-error.log'} warn;\nevents {{ worker_connections 256; }}\n"
        "http {\n"
        "  log_format ids '$remote_addr \"$request\" $status $request_id';\n"
        f"  access_log {logs / 'nginx-access.log'} ids;\n"
        f"  client_body_temp_path {temp['body']};\n  proxy_temp_path {temp['proxy']};\n"
        f"  fastcgi_temp_path {temp['fastcgi']};\n  uwsgi_temp_path {temp['uwsgi']};\n"
        f"  scgi_temp_path {temp['scgi']};\n"
        f"  include {site};\n}}\n"
    )
    check = subprocess.run(
        [NGINX, "-t", "-e", str(logs / "nginx-error.log"), "-c", str(run / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    conf = run / "supervisord.conf"
    sock = run / "supervisor.sock"
    conf.write_text(
        f"[unix_http_server]\nfile={sock}\nchmod=0700\n\n"
        f"[supervisord]\nlogfile={logs / 'supervisord.log'}\npidfile={run / 'supervisord.pid'}\n"
        f"childlogdir={logs}\nnodaemon=true\n\n"
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
        f"[supervisorctl]\nserverurl=unix://{sock}\n\n"
        # on a server Debian's nginx service runs nginx; here supervisord does
        f"[program:nginx]\ncommand={NGINX} -e {logs / 'nginx-error.log'} -c {run / 'nginx.conf'}\n"
        f"autorestart=true\nstopasgroup=true\nredirect_stderr=true\n"
        f"stdout_logfile={logs / 'nginx.log'}\n\n"
        f"[include]\nfiles={programs}\n"
    )
    supervisord = subprocess.Popen(
        [SUPERVISORD, "-c", str(conf)],
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    tls = ssl.create_default_context(cafile=str(cert))
    top = Topology(base, tls, conf, logs, ports["http"], settings)
    try:
        with top.client() as http:
            wait_for("the portal through nginx", lambda: ok(http.get("/api/health")), top, 180)
            wait_for("the hub through nginx", lambda: ok(http.get("/hub/api/")), top, 180)
        yield top
    finally:
        top.ctl("stop", "all", timeout=90)
        supervisord.terminate()
        try:
            supervisord.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(supervisord.pid, 9)
            supervisord.wait()


def ok(r: httpx.Response) -> bool:
    return r.status_code == 200


def sign_in(http: httpx.Client, username: str = "pi") -> httpx.Response:
    page = http.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text[:300]
    return http.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token.group(1)},
        follow_redirects=False,
    )


def submit_job(top: Topology, token: str) -> int:
    with top.client() as http:
        r = http.post(
            f"/api/proposals/{NUMBER}/jobs",
            json={"kind": "xrf_map", "input": MAP, "config_file": "raw/fit.cfg"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def wait_job(top: Topology, token: str, job_id: int, wanted: str = "done") -> dict[str, Any]:
    """The job's summary once it is in state ``wanted`` (failing at once if it failed)."""
    state: dict[str, Any] = {}
    with top.client() as http:

        def reached() -> bool:
            auth = {"Authorization": f"Bearer {token}"}
            state.update(http.get(f"/api/jobs/{job_id}", headers=auth).json())
            assert state["state"] not in ("failed", "cancelled"), state
            return state["state"] in (wanted, "done")

        wait_for(f"job {job_id} {wanted}", reached, top, 240)
    return state


def run_job(top: Topology, token: str) -> int:
    """Submit a map fit through the API; its id once it is ``done``."""
    job_id = submit_job(top, token)
    job = wait_job(top, token, job_id)
    # the workers' events reached the runner (also after a scheduler restart), and the
    # result has no partial file beside it
    with top.client() as http:
        detail = http.get(f"/api/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"})
    assert "attempt 1 started on worker" in detail.json()["log"], detail.json()["log"]
    for output in job["outputs"]:
        assert not (top.settings.data_root / NUMBER / (output["path"] + ".part")).exists()
    return job_id


def spawn_and_run_code(top: Topology, http: httpx.Client) -> None:
    """As a browser would: the portal's sign-in link to the hub, a server spawned, a kernel
    started and code run over its websocket, all through nginx; then the server stopped."""
    page = http.get("/jupyter", params={"next": "/hub/spawn"})
    anchor = re.search(r'<a [^>]*data-testid="jupyter-link"[^>]*>', page.text)
    link = re.search(r'href="([^"]+)"', anchor.group(0)) if anchor else None
    assert link, page.text[:500]
    landed = http.get(html.unescape(link.group(1)), follow_redirects=True, timeout=120)
    assert landed.status_code == 200, (landed.url, landed.text[:300])

    # the server's page, after its OAuth round trip to the hub (until the server is up the
    # hub answers with its spawn-pending page instead)
    def lab() -> bool:
        r = http.get("/user/pi/lab", follow_redirects=True)
        return r.status_code == 200 and r.url.path == "/user/pi/lab"

    wait_for("pi's server", lab, top, 150)
    # its API wants the _xsrf cookie's value back in a header with cookie authentication
    xsrf = {"X-XSRFToken": http.cookies.get("_xsrf", path="/user/pi/") or ""}
    assert http.get("/user/pi/api/status", headers=xsrf).status_code == 200
    kernel = http.post("/user/pi/api/kernels", json={"name": "python3"}, headers=xsrf)
    assert kernel.status_code == 201, kernel.text
    ws_url = (
        top.base.replace("https://", "wss://")
        + f"/user/pi/api/kernels/{kernel.json()['id']}/channels"
    )
    sent = [c for c in http.cookies.jar if "/user/pi/".startswith(c.path.rstrip("/") + "/")]
    cookie = "; ".join(f"{c.name}={c.value}" for c in sent)
    session = secrets.token_hex(8)
    request = {
        "header": {
            "msg_id": secrets.token_hex(8),
            "username": "pi",
            "session": session,
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {"code": "print(6 * 7)", "silent": False, "store_history": False},
        "channel": "shell",
        "buffers": [],
    }
    printed = ""
    with ws_connect(
        ws_url,
        ssl=top.tls,
        additional_headers={"Cookie": cookie, "Origin": top.base},
        open_timeout=60,
    ) as ws:
        ws.send(json.dumps(request))
        deadline = time.monotonic() + 90
        while "42" not in printed and time.monotonic() < deadline:
            msg = json.loads(ws.recv(timeout=90))
            if msg.get("msg_type") == "stream":
                printed += msg["content"]["text"]
    assert printed == "42\n"
    # stop the server through the hub's API (the portal's service token), and see it gone
    token = (top.settings.var_dir / "jupyter" / "service_token").read_text().strip()
    hub_api = {"Authorization": f"token {token}"}
    assert http.delete("/hub/api/users/pi/server", headers=hub_api).status_code in (202, 204)
    wait_for(
        "pi's server stopped",
        lambda: not http.get("/hub/api/users/pi", headers=hub_api).json()["servers"],
        top,
    )


def test_production_topology(topology: Topology) -> None:
    top = topology
    from sqlalchemy import select

    from beamdesk.portal.auth import create_api_token
    from beamdesk.portal.models import User

    engine = make_engine(top.settings.database_url)
    with make_sessionmaker(engine)() as db:
        pi = db.scalar(select(User).where(User.username == "pi"))
        assert pi is not None
        pi_token = create_api_token(db, pi, name="topology").token
        db.commit()
    engine.dispose()

    with top.client() as http:
        # TLS only: plain HTTP is redirected to the HTTPS address
        plain = httpx.get(f"http://127.0.0.1:{top.http_port}/login?x=1", follow_redirects=False)
        assert plain.status_code == 301
        assert plain.headers["location"] == f"{top.base}/login?x=1"
        # Secure cookies and HSTS, set by the portal, through nginx
        page = http.get("/login")
        assert page.status_code == 200
        hsts = page.headers.get("strict-transport-security", "")
        assert "max-age=" in hsts, page.headers
        login = sign_in(http)
        assert login.status_code == 303, login.text
        cookies = login.headers.get_list("set-cookie")
        session = [c for c in cookies if c.startswith("beamdesk_session=")]
        assert session and all("secure" in c.lower() for c in cookies), cookies
        me = http.get("/api/me").json()
        assert me["username"] == "pi", me
        # the viewer's read, with the session cookie, equals h5py's
        r = http.get(
            f"/api/proposals/{NUMBER}/h5/data",
            params={"file": "raw/map.h5", "path": DS, "selection": "2,3:7"},
        )
        assert r.status_code == 200, r.text
        with h5py.File(top.settings.data_root / NUMBER / "raw" / "map.h5") as f:
            np.testing.assert_array_equal(np.asarray(r.json()), f[DS][2, 3:7])
        # the hub answers through nginx, under the same name
        assert http.get("/hub/api/").json()["version"]
        # nginx's headers reach the portal: its request id comes back (and is in nginx's
        # log), and X-Forwarded-For is the peer's address, not what the client claimed
        request_id = http.get("/api/health").headers["x-request-id"]
        assert request_id in (top.logs / "nginx-access.log").read_text()
        claimed = {"X-Forwarded-For": "203.0.113.9"}
        assert http.get("/metrics", headers=claimed).status_code == 200  # loopback it is

        spawn_and_run_code(top, http)
        assert all(c.secure for c in http.cookies.jar), [
            c.name for c in http.cookies.jar if not c.secure
        ]  # the hub's and its servers' cookies too

    first = run_job(top, pi_token)

    for program in PROGRAMS:
        started = time.monotonic()
        out = top.ctl("restart", program)
        assert out.returncode == 0 and "started" in out.stdout, out.stdout + out.stderr
        with top.client() as http:
            wait_for(
                f"the portal after restarting {program}", lambda: ok(http.get("/api/health")), top
            )
            wait_for(f"the hub after restarting {program}", lambda: ok(http.get("/hub/api/")), top)
            # nothing lost: the signed-in user, the finished job
            assert (
                http.get("/api/me", headers={"Authorization": f"Bearer {pi_token}"}).json()[
                    "username"
                ]
                == "pi"
            )
            row = http.get(f"/api/jobs/{first}", headers={"Authorization": f"Bearer {pi_token}"})
            assert row.json()["state"] == "done", row.text
        if program.split(":")[-1] in COMPUTE:
            run_job(top, pi_token)  # the cluster and the runner work again
        print(f"{program}: back in {time.monotonic() - started:.1f} s")
    # the runner restarted right after a submission: the row waits (or its computation is
    # re-attached) and the job ends done with one result file, no partial one
    late = submit_job(top, pi_token)
    assert top.ctl("restart", f"{GROUP}:beamdesk-jobs").returncode == 0
    job = wait_job(top, pi_token, late)
    outputs = [o["path"] for o in job["outputs"]]
    assert len(outputs) == 1 and (top.settings.data_root / NUMBER / outputs[0]).is_file()
    part = top.settings.data_root / NUMBER / (outputs[0] + ".part")
    assert not part.exists()
    with top.client() as http:
        assert sign_in(http).status_code == 303  # the password still signs in
