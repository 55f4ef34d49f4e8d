"""Sandboxed reader workers: every user-controlled file is parsed outside the server.

libhdf5 was not written for hostile input, so the server never opens a proposal's files
itself. It asks a :class:`ReaderPool`, which keeps a few worker processes per proposal
folder (``python -m beamdesk.sandbox.worker``). With ``sandbox="bwrap"`` (the default)
each worker runs under bubblewrap: no network, new PID/IPC/UTS/user namespaces, all
capabilities dropped, a file system holding only the software (read-only) and that one
proposal's folder (read-only) — no database, no ``$BEAMDESK_VAR``, no other proposal.
``sandbox="process"`` keeps the separate process (crash isolation) without bubblewrap,
for machines that lack it; it is not a confinement and says so in the log.

A worker that crashes, hangs past ``reply_timeout`` or runs out of memory is killed and
replaced; the caller gets a :class:`ReaderError` ("could not be read safely"), the event
goes to ``on_incident`` (the server audits it) and the file is remembered as bad until
its size, mtime or inode change. Workers keep their open handles between requests, so
viewing a big file costs one open, as in-process serving did.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beamdesk.errors import KINDS, BeamDeskError, kind_of
from beamdesk.sandbox import codec

log = logging.getLogger("beamdesk.sandbox")

Incident = Callable[[Path, str, str], None]  # (proposal folder, file, what happened)


class ReaderError(BeamDeskError):
    """A refusal or failure of a reader worker: catch this for any of them. Each one raised
    is also the kind of :mod:`beamdesk.errors` of the worker's status (see
    :func:`reader_error`), so the web answers with that status and the worker's sentence."""


# One ReaderError class per kind, e.g. ReaderNotFound(ReaderError, NotFound): module-level
# names, so they pickle like any other exception.
_BY_KIND: dict[type[BeamDeskError], type[ReaderError]] = {}
for _kind in KINDS.values():
    _name = f"Reader{_kind.__name__}"
    _BY_KIND[_kind] = globals()[_name] = type(_name, (ReaderError, _kind), {"__module__": __name__})


def reader_error(status: int, detail: str) -> ReaderError:
    """The :class:`ReaderError` of the kind answering ``status`` (a plain one, a 500, for a
    status no kind has: the worker's own failures)."""
    return _BY_KIND.get(kind_of(status), ReaderError)(detail)


UNSAFE = (
    "This file could not be read safely: reading it {what}. It has been set aside "
    "until it changes; ask the beamline staff if it should be readable."
)


@dataclass(frozen=True)
class ReaderLimits:
    sandbox: str = "bwrap"  # "bwrap" or "process"
    memory_bytes: int = 3 * 2**30  # address space of one worker
    reply_timeout: float = 60.0  # seconds a worker may stay silent in one request
    workers_per_folder: int = 2
    max_workers: int = 8
    idle_seconds: float = 300.0
    max_message_bytes: int = 2**31

    @classmethod
    def of(cls, settings: Any) -> ReaderLimits:
        """The limits a :class:`beamdesk.settings.Settings` asks for."""
        return cls(
            sandbox=settings.limits.sandbox,
            memory_bytes=settings.limits.reader_memory_bytes,
            reply_timeout=settings.limits.reader_timeout,
        )


@dataclass
class Signature:
    mtime_ns: int
    size: int
    inode: int


def _signature(path: Path) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return Signature(st.st_mtime_ns, st.st_size, st.st_ino)


def software_paths() -> list[Path]:
    """What a worker needs to run Python and BeamDesk, bound read-only."""
    import beamdesk

    paths = {Path(sys.base_prefix), Path(sys.prefix), Path(beamdesk.__file__).parent}
    return sorted(p.resolve() for p in paths)


def software_binds() -> list[str]:
    """bubblewrap options binding the system and BeamDesk's Python read-only.

    Shared by the reader workers and the notebook sandbox (``beamdesk.jupyter.sandbox``).
    """
    argv = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib32", "lib64", "sbin"):
        root = Path("/") / name
        if root.is_symlink():
            argv += ["--symlink", os.readlink(root), str(root)]
        elif root.is_dir():
            argv += ["--ro-bind", str(root), str(root)]
    for path in software_paths():
        argv += ["--ro-bind", str(path), str(path)]
    return argv


def bwrap_argv(folder: Path) -> list[str]:
    """bubblewrap options: software and `folder` read-only, nothing else, no network."""
    argv = [
        "bwrap",
        "--die-with-parent",
        "--new-session",
        "--unshare-all",
        "--cap-drop",
        "ALL",
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--hostname",
        "reader",
        *software_binds(),
    ]
    argv += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--ro-bind",
        str(folder),
        str(folder),
        "--chdir",
        str(folder),
    ]
    return argv


def worker_env() -> dict[str, str]:
    """A bare environment: no secrets, no HDF5 prefixes but the file's own folder."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HDF5_USE_FILE_LOCKING": "FALSE",
        "HDF5_VDS_PREFIX": "${ORIGIN}",
        "HDF5_EXTFILE_PREFIX": "${ORIGIN}",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # machine quirks, not secrets
        if name in os.environ:
            env[name] = os.environ[name]
    return env


class Worker:
    """One worker process for one proposal folder, used by one request at a time."""

    def __init__(self, folder: Path, limits: ReaderLimits) -> None:
        self.folder = folder
        self.limits = limits
        ours, theirs = socket.socketpair()
        self.sock = ours
        argv = [
            sys.executable,
            "-I",
            "-m",
            "beamdesk.sandbox.worker",
            str(folder),
            str(theirs.fileno()),
            str(limits.memory_bytes),
        ]
        if limits.sandbox == "bwrap":
            argv = bwrap_argv(folder) + argv
        self.process = subprocess.Popen(
            argv,
            pass_fds=[theirs.fileno()],
            env=worker_env(),
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        theirs.close()
        self.last_used = time.monotonic()
        self._stderr = threading.Thread(target=self._log_stderr, daemon=True)
        self._stderr.start()
        ready = self.receive(timeout=max(30.0, limits.reply_timeout))
        if not isinstance(ready, dict) or "ready" not in ready:
            self.kill()
            raise reader_error(503, "A reader process did not start.")

    def _log_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            log.info("reader %s: %s", self.process.pid, line.decode(errors="replace").rstrip())

    def send(self, message: Any) -> None:
        self.sock.settimeout(self.limits.reply_timeout)
        codec.send(self.sock, message)

    def receive(self, timeout: float | None = None) -> Any:
        wait = self.limits.reply_timeout if timeout is None else timeout
        ready, _, _ = select.select([self.sock], [], [], wait)
        if not ready:
            raise TimeoutError
        self.sock.settimeout(wait)
        return codec.receive(self.sock, self.limits.max_message_bytes)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.sock.close()


@dataclass
class Streamed:
    """A reply that arrives in chunks; iterate ``chunks`` to the end (or close it)."""

    media_type: str
    headers: dict[str, str]
    chunks: Iterator[bytes | bytearray]


@dataclass
class _Folder:
    idle: list[Worker] = field(default_factory=list)
    busy: int = 0


class ReaderPool:
    def __init__(
        self, limits: ReaderLimits | None = None, on_incident: Incident | None = None
    ) -> None:
        self.limits = limits or ReaderLimits()
        self.on_incident = on_incident
        self._lock = threading.Condition()
        self._folders: dict[Path, _Folder] = {}
        self._bad: dict[tuple[Path, str], tuple[Signature | None, str]] = {}
        self._closed = False
        if self.limits.sandbox == "bwrap" and shutil.which("bwrap") is None:
            raise RuntimeError(
                "bubblewrap (bwrap) is not installed: install it (Debian: "
                "apt-get install bubblewrap) or set BEAMDESK_SANDBOX=process, "
                "which isolates crashes but does not confine reads."
            )
        if self.limits.sandbox == "process":
            log.warning(
                "reader workers run without bubblewrap: crashes are isolated, but "
                "a hostile file is not confined to its proposal"
            )

    # --- workers ---------------------------------------------------------------------

    def _total(self) -> int:
        return sum(len(f.idle) + f.busy for f in self._folders.values())

    def _evict_idle(self) -> bool:
        """Under the lock: stop the least recently used idle worker; False if none."""
        idle = [(w.last_used, key, w) for key, f in self._folders.items() for w in f.idle]
        if not idle:
            return False
        _, key, worker = min(idle, key=lambda t: t[0])
        self._folders[key].idle.remove(worker)
        worker.kill()
        return True

    def _checkout(self, folder: Path) -> Worker:
        deadline = time.monotonic() + self.limits.reply_timeout
        with self._lock:
            while True:
                if self._closed:
                    raise reader_error(503, "The server is shutting down.")
                entry = self._folders.setdefault(folder, _Folder())
                while entry.idle:
                    worker = entry.idle.pop()
                    if worker.alive:
                        entry.busy += 1
                        return worker
                    worker.kill()
                if entry.busy < self.limits.workers_per_folder and (
                    self._total() < self.limits.max_workers or self._evict_idle()
                ):
                    entry.busy += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise reader_error(503, "Every reader is busy; try again in a moment.")
                self._lock.wait(left)
        try:
            return Worker(folder, self.limits)
        except BaseException:
            self._release(folder, None)
            raise

    def _release(self, folder: Path, worker: Worker | None) -> None:
        with self._lock:
            entry = self._folders.setdefault(folder, _Folder())
            entry.busy -= 1
            if worker is not None and worker.alive and not self._closed:
                worker.last_used = time.monotonic()
                entry.idle.append(worker)
            elif worker is not None:
                worker.kill()
            self._reap_idle()
            self._lock.notify_all()

    def _reap_idle(self) -> None:
        now = time.monotonic()
        for entry in self._folders.values():
            for worker in [w for w in entry.idle if now - w.last_used > self.limits.idle_seconds]:
                entry.idle.remove(worker)
                worker.kill()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for entry in self._folders.values():
                for worker in entry.idle:
                    worker.kill()
                entry.idle.clear()
            self._lock.notify_all()

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for f in self._folders.values() for w in f.idle]

    # --- bad files -------------------------------------------------------------------

    def _check_bad(self, folder: Path, file: str | None) -> None:
        if file is None:
            return
        with self._lock:
            known = self._bad.get((folder, file))
        if known is not None:
            signature, detail = known
            if signature == _signature(folder / file):
                raise reader_error(422, detail)
            with self._lock:
                self._bad.pop((folder, file), None)

    def _failed(self, folder: Path, file: str | None, what: str) -> ReaderError:
        detail = UNSAFE.format(what=what)
        if file is not None:
            with self._lock:
                self._bad[(folder, file)] = (_signature(folder / file), detail)
        log.warning("reader failed on %s/%s: %s", folder.name, file, what)
        if self.on_incident is not None:
            try:
                self.on_incident(folder, file or "", what)
            except Exception:  # the answer to the user matters more than the record
                log.exception("could not record a reader incident")
        return reader_error(422, detail)

    # --- requests --------------------------------------------------------------------

    def call(self, folder: Path, op: str, file: str | None = None, **args: Any) -> Any:
        """Run ``op`` on a worker of ``folder``; its value, or a :class:`Streamed`."""
        folder = Path(folder)
        self._check_bad(folder, file)
        if file is not None:
            args["file"] = file
        worker = self._checkout(folder)
        try:
            worker.send({"op": op, "args": args})
            answer = self._receive(worker, folder, file)
        except BaseException:
            self._release(folder, None if worker.alive else worker)
            if worker.alive:
                worker.kill()
            raise
        if "stream" in answer:
            head = answer["stream"]
            return Streamed(head["media_type"], head["headers"], self._chunks(worker, folder, file))
        self._release(folder, worker)
        if "error" in answer:
            raise reader_error(int(answer["error"]["status"]), str(answer["error"]["detail"]))
        if "reply" in answer:
            return answer["reply"]
        return answer["ok"]

    def _receive(self, worker: Worker, folder: Path, file: str | None) -> dict[str, Any]:
        try:
            answer = worker.receive()
        except TimeoutError:
            worker.kill()
            raise self._failed(
                folder, file, f"took longer than {self.limits.reply_timeout:g} s"
            ) from None
        except (EOFError, OSError, codec.CodecError):
            worker.kill()
            code = worker.process.returncode or 0
            # bubblewrap reports its child's fatal signal as 128 + signal
            signum = -code if code < 0 else code - 128 if code > 128 else 0
            what = (
                f"crashed the reader (signal {signum})"
                if signum
                else "stopped the reader"
                if code
                else "confused the reader"
            )
            raise self._failed(folder, file, what) from None
        if not isinstance(answer, dict):
            worker.kill()
            raise self._failed(folder, file, "confused the reader")
        return answer

    def _chunks(
        self, worker: Worker, folder: Path, file: str | None
    ) -> Iterator[bytes | bytearray]:
        finished = False
        try:
            while True:
                answer = self._receive(worker, folder, file)
                if "chunk" in answer:
                    yield answer["chunk"]
                elif "end" in answer:
                    finished = True
                    return
                else:  # an error mid-stream: the status line is gone, cut the body
                    finished = True
                    raise reader_error(
                        int(answer["error"]["status"]), str(answer["error"]["detail"])
                    )
        finally:
            if not finished and worker.alive:  # the client went away mid-download
                worker.kill()
            self._release(folder, worker)


_shared: ReaderPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> ReaderPool:
    """This process's pool, for callers with no server around them (CLI, job workers)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            from beamdesk.settings import get_settings

            _shared = ReaderPool(ReaderLimits.of(get_settings()))
        return _shared
