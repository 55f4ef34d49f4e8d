"""Attack from a notebook kernel: an outsider's server, started by a real JupyterHub with
BeamDesk's default spawner, reads her own proposal and nothing else of the machine's; losing
a proposal ends her server and its token at once."""

from __future__ import annotations

import json
import os
import pwd
import time
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest

from beamdesk.jupyter.accounts import account_name
from beamdesk.jupyter.hubapi import HubClient
from beamdesk.jupyter.layout import service_token
from beamdesk.settings import Settings
from tests.conftest import make_settings
from tests.jupyter.conftest import FILE, NUMBER, OTHER, JWorld, RunningHub
from tests.jupyter.kernel import run_in_kernel

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 and not os.environ.get("CI"),
        reason="the notebook sandbox makes Unix accounts: the hub must run as root",
    ),
]

MEMORY = 3 << 30
PROCESSES = 300

# Run in the kernel: every outcome is reported, nothing is assumed.
PROBE = r"""
import json, os, pwd, resource
import h5py

def outcome(path):
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as fh:
                fh.read(1)
        return "read"
    except OSError as exc:
        return type(exc).__name__

def write(path):
    try:
        with open(path, "w") as fh:
            fh.write("x")
        return "written"
    except OSError as exc:
        return type(exc).__name__

paths = json.loads(PATHS)
with h5py.File("/proposals/" + paths["own_number"] + "/raw/other.nxs", "r") as f:
    own_sum = float(f["entry/data/counts"][()].astype(float).sum())
print(json.dumps({
    "uid": os.getuid(), "euid": os.geteuid(), "name": pwd.getpwuid(os.getuid()).pw_name,
    "groups": os.getgroups(),
    "proposals": sorted(os.listdir(os.environ["BEAMDESK_PROPOSALS"])),
    "own_sum": own_sum,
    "forbidden": {p: outcome(p) for p in paths["forbidden"]},
    "write_raw": write("/proposals/" + paths["own_number"] + "/raw/planted.txt"),
    "write_home": write(os.path.expanduser("~/written-by-kernel.txt")),
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "environ": dict(os.environ),
    "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
    "address_space": resource.getrlimit(resource.RLIMIT_AS)[0],
    "cpus": len(os.sched_getaffinity(0)),
}))
"""


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str, hub_ports: dict[str, str]) -> Settings:
    limits = {
        "mem_limit": str(MEMORY),
        "cpu_limit": 1.0,
        "max_processes": PROCESSES,
    }
    return make_settings(tmp_path, sqlite_url, hub={**hub_ports, **limits})


def probe(hub: RunningHub, username: str, forbidden: list[str]) -> dict:  # type: ignore[type-arg]
    paths = json.dumps({"own_number": OTHER, "forbidden": forbidden})
    code = f"PATHS = {paths!r}\n{PROBE}"
    out = run_in_kernel(f"{hub.url}/user/{username}", service_token(hub.settings), code)
    return json.loads(out.strip().splitlines()[-1])


def start(hub: RunningHub, username: str) -> None:
    with HubClient(hub.settings, timeout=60) as api:
        api.ensure_user(username)
        try:
            api.start_server(username, timeout=90)
        except Exception as exc:
            raise AssertionError(f"server did not start:\n{hub.log_text()}") from exc


def server_running(hub: RunningHub, username: str) -> bool:
    with HubClient(hub.settings) as api:
        user = api._call("GET", f"/hub/api/users/{username}", (200,)).json()
    return bool(user.get("servers"))


def test_outsider_kernel_sees_only_her_proposal(
    live_server, hub: RunningHub, jworld: JWorld, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    state = hub.settings.state_dir
    secret_file = settings.var_dir / "secret_key"
    secret_file.write_text(settings.secret_key)
    start(hub, "pi")  # another user's server, running beside hers
    start(hub, "outsider")
    forbidden = [
        str(settings.data_root / NUMBER / FILE),  # pi's embargoed scan, by its real path
        str(settings.data_root),
        f"/proposals/{NUMBER}",
        str(settings.var_dir / "beamdesk.db"),
        str(secret_file),
        str(hub.settings.service_token_file),
        str(state / "jupyterhub_cookie_secret"),
        str(state / "jupyterhub.sqlite"),
        str(hub.settings.home_of("pi")),
        f"/proc/{hub.process.pid}/environ",
        "/etc/shadow",
    ]
    seen = probe(hub, "outsider", forbidden)

    account = pwd.getpwnam(account_name("outsider"))
    assert seen["uid"] == seen["euid"] == account.pw_uid != 0
    assert seen["name"] == account.pw_name and 0 not in seen["groups"]
    assert seen["proposals"] == [OTHER]
    with h5py.File(settings.data_root / OTHER / "raw" / "other.nxs", "r") as f:
        reference = float(np.sum(f["entry/data/counts"][()].astype(float)))
    assert seen["own_sum"] == pytest.approx(reference, rel=1e-12)

    leaked = {path: how for path, how in seen["forbidden"].items() if how == "read"}
    assert leaked == {}
    assert seen["write_raw"] != "written"
    assert not (settings.data_root / OTHER / "raw" / "planted.txt").exists()
    assert seen["write_home"] == "written"
    written = hub.settings.home_of("outsider") / "written-by-kernel.txt"
    assert written.stat().st_uid == account.pw_uid

    # No other process of the machine (the hub, pi's server) is visible from her sandbox.
    assert hub.process.pid not in seen["pids"] and len(seen["pids"]) < 30
    env = seen["environ"]
    secrets = {settings.secret_key, service_token(hub.settings), settings.database_url}
    assert not secrets & set(env.values())
    assert not [
        k
        for k in env
        if k.startswith("BEAMDESK_")
        and k not in {"BEAMDESK_URL", "BEAMDESK_TOKEN", "BEAMDESK_PROPOSALS", "BEAMDESK_LINKED"}
    ]
    assert "CONFIGPROXY_AUTH_TOKEN" not in env
    assert env["HDF5_USE_FILE_LOCKING"] == "FALSE"  # never a lock a beamline writer waits on
    # The one portal token in there is hers, and reads only what she may read.
    with httpx.Client(base_url=live_server.url, timeout=30) as portal:
        bearer = {"Authorization": f"Bearer {env['BEAMDESK_TOKEN']}"}
        assert portal.get("/api/me", headers=bearer).json()["username"] == "outsider"
        mine = portal.get(
            f"/api/proposals/{OTHER}/h5/meta",
            params={"file": "raw/other.nxs", "path": "/"},
            headers=bearer,
        )
        theirs = portal.get(
            f"/api/proposals/{NUMBER}/h5/meta", params={"file": FILE, "path": "/"}, headers=bearer
        )
        assert mine.status_code == 200 and theirs.status_code == 404

    assert seen["nproc"] == PROCESSES
    assert seen["address_space"] == MEMORY
    assert seen["cpus"] == 1


def test_losing_a_proposal_ends_the_server_and_its_token(
    live_server, hub: RunningHub, jworld: JWorld, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    pi = {"Authorization": f"Bearer {jworld.tokens['pi']}"}
    with httpx.Client(base_url=live_server.url, timeout=60) as portal:
        added = portal.post(
            f"/api/proposals/{NUMBER}/members", json={"username": "outsider"}, headers=pi
        )
        assert added.status_code == 200, added.text
        start(hub, "outsider")
        seen = probe(hub, "outsider", [])
        assert seen["proposals"] == [NUMBER, OTHER]
        token = {"Authorization": f"Bearer {seen['environ']['BEAMDESK_TOKEN']}"}
        assert portal.get("/api/me", headers=token).status_code == 200

        removed = portal.delete(f"/api/proposals/{NUMBER}/members/outsider", headers=pi)
        assert removed.status_code == 200, removed.text
        # At once: the token is dead when the answer arrives, the server within seconds.
        assert portal.get("/api/me", headers=token).status_code == 401
        deadline = time.monotonic() + 30
        while server_running(hub, "outsider"):
            assert time.monotonic() < deadline, f"server still running:\n{hub.log_text()}"
            time.sleep(0.5)
    start(hub, "outsider")
    assert probe(hub, "outsider", [])["proposals"] == [OTHER]


def test_a_disabled_account_loses_its_server_at_once(
    live_server, hub: RunningHub, jworld: JWorld, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    office = {"Authorization": f"Bearer {jworld.tokens['office']}"}
    start(hub, "outsider")
    token = {"Authorization": f"Bearer {probe(hub, 'outsider', [])['environ']['BEAMDESK_TOKEN']}"}
    with httpx.Client(base_url=live_server.url, timeout=60) as portal:
        assert portal.get("/api/me", headers=token).status_code == 200
        disabled = portal.post("/api/users/outsider/disable", headers=office)
        assert disabled.status_code == 200, disabled.text
        assert portal.get("/api/me", headers=token).status_code == 401
    deadline = time.monotonic() + 30
    while server_running(hub, "outsider"):
        assert time.monotonic() < deadline, f"server still running:\n{hub.log_text()}"
        time.sleep(0.5)
    with HubClient(hub.settings, timeout=60) as api:  # and the hub cannot start it again
        api._call("POST", "/hub/api/users/outsider/server", (201, 202, 400, 500))
    deadline = time.monotonic() + 30  # the pre-spawn hook refuses a disabled account
    while server_running(hub, "outsider"):
        assert time.monotonic() < deadline, f"a disabled account's server runs:\n{hub.log_text()}"
        time.sleep(0.5)
