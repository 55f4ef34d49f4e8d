"""The notebook sandbox without a hub: the limits hold against a fork bomb and a memory
hog, the hub refuses to run unconfined by accident, and the configuration follows settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
from traitlets.config import Config

from beamdesk.jupyter.accounts import Account, account_name
from beamdesk.jupyter.hub_config import UnsafeHub, configure
from beamdesk.jupyter.sandbox import (
    SandboxLimits,
    SandboxSpawner,
    apply_limits,
    sandbox_argv,
    write_identity,
)
from tests.conftest import make_settings

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 and not os.environ.get("CI"), reason="bubblewrap as root makes the sandbox"
)
NOBODY = Account("nobody", 65534, 65534)

HOG = r"""
import json, os, time
children, refused = [], None
for _ in range(200):
    try:
        pid = os.fork()
    except OSError as exc:
        refused = type(exc).__name__
        break
    if pid == 0:
        time.sleep(5)
        os._exit(0)
    children.append(pid)
try:
    block = bytearray(1 << 30)  # 1 GiB, over the address-space limit
    memory = "allocated"
except MemoryError:
    memory = "MemoryError"
print(json.dumps({"forked": len(children), "refused": refused, "memory": memory}))
"""


def run_sandboxed(tmp_path: Path, code: str, limits: SandboxLimits) -> dict:  # type: ignore[type-arg]
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, NOBODY.uid, NOBODY.gid)
    argv = sandbox_argv(
        account=NOBODY,
        username="alice",
        home=home,
        proposals={},
        identity=write_identity(tmp_path / "id", NOBODY, "alice"),
    )
    done = subprocess.run(
        [*argv, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin", "HOME": "/home/alice"},
        preexec_fn=partial(apply_limits, limits),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_root
def test_fork_bomb_and_memory_hog_stop_at_the_limits(tmp_path: Path) -> None:
    seen = run_sandboxed(tmp_path, HOG, SandboxLimits(memory_bytes=512 << 20, max_processes=40))
    # The account's process count includes the interpreter itself (and its threads).
    assert seen["refused"] == "BlockingIOError" and seen["forked"] < 40
    assert seen["memory"] == "MemoryError"


@needs_root
def test_limits_as_the_kernel_reports_them(tmp_path: Path) -> None:
    code = (
        "import json, os; print(json.dumps({'limits': open('/proc/self/limits').read(),"
        " 'cpus': len(os.sched_getaffinity(0))}))"
    )
    limits = SandboxLimits(memory_bytes=3 << 30, cpus=1, max_processes=77)
    seen = run_sandboxed(tmp_path, code, limits)
    rows = {line[:26].strip(): line[26:].split() for line in seen["limits"].splitlines()[1:]}
    assert rows["Max address space"][:2] == [str(3 << 30)] * 2
    assert rows["Max processes"][:2] == ["77", "77"]
    assert rows["Max core file size"][:2] == ["0", "0"]
    assert seen["cpus"] == 1


def test_hub_runs_the_sandbox_by_default_and_follows_the_limits(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = {"mem_limit": "2G", "cpu_limit": 2.0, "max_processes": 99}
    settings = make_settings(tmp_path, sqlite_url, hub=limits)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    c = Config()
    configure(c, settings)
    assert c.JupyterHub.spawner_class is SandboxSpawner
    assert c.Spawner.mem_limit == "2G" and c.Spawner.cpu_limit == 2.0
    assert c.SandboxSpawner.max_processes == 99
    assert "--allow-root" not in c.Spawner.args

    simple = make_settings(tmp_path, sqlite_url, hub={"spawner": "simple"})
    c = Config()
    configure(c, simple)
    assert c.JupyterHub.spawner_class == "simple"


def test_hub_refuses_the_sandbox_without_root(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(UnsafeHub, match="must run as root"):
        configure(Config(), make_settings(tmp_path, sqlite_url))
    with pytest.raises(UnsafeHub, match="'sandbox' or 'simple'"):
        configure(Config(), make_settings(tmp_path, sqlite_url, hub={"spawner": "docker"}))


def test_account_names_are_short_stable_and_distinct() -> None:
    names = {account_name(u) for u in ["pi", "Pi", "a@b.org", "x" * 64]}
    assert len(names) == 4
    assert all(len(n) <= 32 and n.startswith("bd-") and n == n.lower() for n in names)
    assert account_name("pi") == account_name("pi")
