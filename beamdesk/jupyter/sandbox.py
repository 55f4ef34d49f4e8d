"""The notebook sandbox: each user's server runs in bubblewrap, as their own Unix account.

What a server and its kernels see, and nothing else:

- the system (``/usr``) and BeamDesk's Python, read-only;
- their home, read-write, at ``/home/<username>``;
- read-only, exactly the proposals ``beamdesk.portal.access`` lets the user read when the
  server starts, at ``/proposals/<number>`` (``$BEAMDESK_PROPOSALS``);
- a private ``/tmp``, the ``/proc`` of their own PID namespace, a minimal ``/dev``, and an
  ``/etc`` with the few files programs need and a ``passwd`` naming only their account.

Their environment holds JupyterHub's variables for this server and their own short-lived
portal token; no setting or secret of BeamDesk's. Limits from settings: address space per
process (``BEAMDESK_HUB_MEM_LIMIT``), processes and threads of the account
(``BEAMDESK_HUB_MAX_PROCESSES``), CPU cores (``BEAMDESK_HUB_CPU_LIMIT``). The network is the
host's: the server must reach the hub and the portal (docs/jupyter.md says what that means).

bubblewrap is started by the hub (root), mounts all this, and runs ``setpriv`` inside, which
becomes the user's account with every capability dropped and ``no_new_privs`` set, so
nothing in the sandbox can regain root.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner
from jupyterhub.utils import random_port
from traitlets import Dict, Integer, Unicode, default

from beamdesk.jupyter.accounts import Account, AccountError, ensure_account, give_home
from beamdesk.jupyter.workspace import home_name
from beamdesk.sandbox.pool import software_binds, software_paths

PROPOSALS_INSIDE = "/proposals"
ETC_PASSWD = Path("/etc/passwd")
TMP_BYTES = 1 << 30  # a private /tmp, in memory, of at most 1 GiB
# What of /etc programs in a notebook need (name resolution, time zone, certificates).
ETC_ENTRIES = (
    "alternatives",
    "ca-certificates",
    "fonts",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "resolv.conf",
    "ssl",
)


def parents(paths: list[Path]) -> list[Path]:
    """Every folder above ``paths``, top down, without ``/``."""
    found = {parent for path in paths for parent in path.parents if parent != Path("/")}
    return sorted(found, key=lambda p: (len(p.parts), str(p)))


def home_inside(username: str) -> str:
    return f"/home/{home_name(username)}"


@dataclass(frozen=True)
class SandboxLimits:
    memory_bytes: int = 0  # address space per process; 0: none
    cpus: int = 0  # cores the server may run on; 0: all
    max_processes: int = 0  # processes and threads of the account; 0: none


def apply_limits(limits: SandboxLimits, spread: int = 0) -> None:
    """Set the limits on the process about to become the sandbox (runs before exec)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if limits.memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    if limits.max_processes:
        # Counted per real uid: each user has their own account, so this is theirs alone.
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))
    if limits.cpus:
        cpus = sorted(os.sched_getaffinity(0))
        if limits.cpus < len(cpus):
            start = spread % len(cpus)  # users spread over the cores
            os.sched_setaffinity(0, (cpus + cpus)[start : start + limits.cpus])


def write_identity(folder: Path, account: Account, username: str) -> Path:
    """``passwd`` and ``group`` files naming only root, nobody and the account."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o755)
    home = home_inside(username)
    (folder / "passwd").write_text(
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        f"{account.name}:x:{account.uid}:{account.gid}:{username}:{home}:/bin/bash\n"
    )
    (folder / "group").write_text(f"root:x:0:\nnogroup:x:65534:\n{account.name}:x:{account.gid}:\n")
    return folder


def sandbox_argv(
    *,
    account: Account,
    username: str,
    home: Path,
    proposals: Mapping[str, Path],
    identity: Path,
) -> list[str]:
    """bubblewrap and setpriv options that run a command as described in this module."""
    inside = home_inside(username)
    argv = [
        "bwrap",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "notebook",
    ]
    # bubblewrap run as root makes missing parents 0700; the user must pass through them.
    for folder in parents([*software_paths(), Path(inside), Path(PROPOSALS_INSIDE), ETC_PASSWD]):
        argv += ["--perms", "0755", "--dir", str(folder)]
    argv += software_binds()
    for name in ETC_ENTRIES:
        path = Path("/etc") / name
        if path.exists():
            argv += ["--ro-bind", str(path), str(path)]
    argv += ["--ro-bind", str(identity / "passwd"), "/etc/passwd"]
    argv += ["--ro-bind", str(identity / "group"), "/etc/group"]
    argv += ["--proc", "/proc", "--dev", "/dev", "--bind", str(home), inside]
    argv += ["--perms", "1777", "--size", str(TMP_BYTES), "--tmpfs", "/tmp"]
    argv += ["--perms", "0755", "--tmpfs", PROPOSALS_INSIDE]
    for number, folder in sorted(proposals.items()):
        argv += ["--ro-bind", str(folder), f"{PROPOSALS_INSIDE}/{number}"]
    argv += ["--remount-ro", PROPOSALS_INSIDE, "--chdir", inside, "--"]
    argv += [
        "/usr/bin/setpriv",
        f"--reuid={account.uid}",
        f"--regid={account.gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]
    return argv


class SandboxSpawner(LocalProcessSpawner):
    """JupyterHub's local-process spawner, each server in its user's sandbox."""

    home_root = Unicode(help="Folder holding one home per user (the hub's, mode 0700).").tag(
        config=True
    )
    identity_root = Unicode(help="Folder for each account's passwd and group files.").tag(
        config=True
    )
    max_processes = Integer(
        512, help="Processes and threads a user's account may have at once (0: no limit)."
    ).tag(config=True)
    # Set by BeamDesk's pre_spawn_hook before each start: proposal number -> its folder.
    proposal_folders = Dict()
    port: int  # Spawner's trait (0: pick one), annotated for the type checker only

    @default("env_keep")
    def _env_keep_default(self) -> list[str]:
        return ["LANG", "LC_ALL"]

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        bin_dirs = sorted({str(p / "bin") for p in software_paths() if (p / "bin").is_dir()})
        env.update(
            USER=self.user.name,
            HOME=home_inside(self.user.name),
            SHELL="/bin/bash",
            PATH=":".join([*bin_dirs, "/usr/local/bin", "/usr/bin", "/bin"]),
            BEAMDESK_PROPOSALS=PROPOSALS_INSIDE,
            # glibc's per-thread arenas would spend the address-space limit on nothing.
            MALLOC_ARENA_MAX="2",
            # Raw data may be being written: h5py in a notebook must never hold HDF5's
            # file lock, which would stop the beamline's writer from appending.
            HDF5_USE_FILE_LOCKING="FALSE",
        )
        return env

    def limits(self) -> SandboxLimits:
        cpus = int(self.cpu_limit or 0)
        return SandboxLimits(
            memory_bytes=int(self.mem_limit or 0),
            cpus=max(1, cpus) if self.cpu_limit else 0,
            max_processes=int(self.max_processes),
        )

    async def start(self) -> tuple[str, int]:
        if os.geteuid() != 0:
            raise AccountError("The notebook sandbox needs the hub to run as root.")
        account = await asyncio.to_thread(ensure_account, self.user.name)
        home = Path(self.home_root) / home_name(self.user.name)
        give_home(home, account)
        identity = write_identity(Path(self.identity_root) / account.name, account, self.user.name)
        if self.port == 0:
            self.port = random_port()
        argv = sandbox_argv(
            account=account,
            username=self.user.name,
            home=home,
            proposals=dict(self.proposal_folders),
            identity=identity,
        )
        argv += [*self.cmd, *self.get_args()]
        self.log.info(
            "BeamDesk: %s's server runs as %s, sees proposals %s",
            self.user.name,
            account.name,
            ", ".join(sorted(self.proposal_folders)) or "none",
        )
        self.proc = subprocess.Popen(
            argv,
            env=self.get_env(),
            cwd="/",
            stdin=subprocess.DEVNULL,
            preexec_fn=partial(apply_limits, self.limits(), account.uid),
            start_new_session=True,
        )
        self.pid = self.proc.pid
        return (self.ip or "127.0.0.1", self.port)

    async def _signal(self, sig: int) -> bool:
        """Signal the whole sandbox: bubblewrap, its init and the server share one group.

        (Signalling bubblewrap alone would leave the sandbox running.)
        """
        if sig == 0:
            result: Any = await super()._signal(0)
            return bool(result)
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            return False
        return True
