"""Confine every user-supplied path to one proposal's folder under the data root.

A path is accepted only if it is relative, has no ``.``/``..`` components (before or after
Unicode compatibility folding), no control or invisible characters, and resolves, with
every symlink followed, to a place inside the proposal folder. Anything else is
``PathNotFound``, which the web layer answers with 404 so no probing can tell "exists
but forbidden" from "absent".
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from pathlib import Path

PROPOSAL_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
# Control, format (bidi overrides, zero-width), surrogate, private-use and unassigned.
_BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}
MAX_PATH_LENGTH = 4096


class PathNotFound(LookupError):
    """The path does not name a file or folder inside the proposal."""


def _check_component(part: str) -> None:
    folded = unicodedata.normalize("NFKC", part)
    if part in {"", ".", ".."} or folded in {".", ".."}:
        raise PathNotFound(part)
    if "/" in folded or "\\" in folded or "\\" in part:
        raise PathNotFound(part)
    if any(unicodedata.category(ch) in _BAD_CATEGORIES for ch in part):
        raise PathNotFound(part)


def clean_relative(relpath: str) -> str:
    """Validate a relative path's spelling and return it with single forward slashes."""
    if len(relpath) > MAX_PATH_LENGTH or "\x00" in relpath:
        raise PathNotFound(relpath[:80])
    if relpath.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", relpath):
        raise PathNotFound(relpath)
    parts = [p for p in relpath.split("/") if p != ""]
    for part in parts:
        _check_component(part)
    return "/".join(parts)


def proposal_root(data_root: Path, number: str) -> Path:
    """The resolved folder of a proposal; PathNotFound if the number is odd or absent."""
    if not PROPOSAL_NUMBER.match(number):
        raise PathNotFound(number)
    root = Path(data_root).resolve()
    folder = (root / number).resolve()
    if folder.parent != root or not folder.is_dir():
        raise PathNotFound(number)
    return folder


def resolve_in_proposal(data_root: Path, number: str, relpath: str) -> Path:
    """Resolve ``relpath`` inside proposal ``number``; it must exist and stay inside."""
    return resolve_beneath(proposal_root(data_root, number), relpath)


def resolve_beneath(folder: Path, relpath: str) -> Path:
    """Resolve ``relpath`` inside the resolved ``folder``; it must exist and stay inside."""
    rel = clean_relative(relpath)
    try:
        target = (folder / rel).resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # missing, or a symlink loop
        raise PathNotFound(rel) from exc
    if target != folder and not target.is_relative_to(folder):
        raise PathNotFound(rel)
    return target


def relative_to_proposal(data_root: Path, number: str, path: Path) -> str:
    """The forward-slash path of ``path`` relative to its proposal folder."""
    return path.resolve().relative_to(proposal_root(data_root, number)).as_posix()


# --- opening by descriptor ------------------------------------------------------------------

_OPENAT2 = {"x86_64": 437, "aarch64": 437}
_RESOLVE_NO_MAGICLINKS, _RESOLVE_BENEATH = 0x02, 0x08


def _openat2(dir_fd: int, relpath: str) -> int | None:
    """openat2(RESOLVE_BENEATH): the kernel refuses any path, symlink or ``..`` that
    leaves ``dir_fd``, atomically. None where the kernel or libc cannot do it."""
    import ctypes
    import errno
    import platform

    number = _OPENAT2.get(platform.machine())
    if number is None:
        return None

    class OpenHow(ctypes.Structure):
        _fields_ = [
            ("flags", ctypes.c_uint64),
            ("mode", ctypes.c_uint64),
            ("resolve", ctypes.c_uint64),
        ]

    how = OpenHow(
        os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY, 0, _RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS
    )
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(number, dir_fd, relpath.encode(), ctypes.byref(how), ctypes.sizeof(how))
    if fd >= 0:
        return int(fd)
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EPERM) and err != errno.EXDEV:
        return None
    raise PathNotFound(relpath)


def _walk_nofollow(dir_fd: int, relpath: str) -> int:
    """The portable fallback: one component at a time, no symlink followed."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
    current = os.dup(dir_fd)
    try:
        parts = relpath.split("/")
        for part in parts[:-1]:
            nxt = os.open(part, flags | os.O_DIRECTORY, dir_fd=current)
            os.close(current)
            current = nxt
        return os.open(parts[-1], flags, dir_fd=current)
    except OSError as exc:
        raise PathNotFound(relpath) from exc
    finally:
        os.close(current)


def open_beneath(folder: Path, relpath: str) -> int:
    """A read-only descriptor of the regular file ``relpath`` inside ``folder``.

    Resolved and opened in one step by the kernel, so swapping a folder for a symlink
    between a check and a read cannot redirect it: callers stream this descriptor, never
    the path. PathNotFound for anything absent, outside, or not a regular file.
    """
    rel = clean_relative(relpath)
    if not rel:
        raise PathNotFound(relpath)
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise PathNotFound(relpath) from exc
    try:
        fd = _openat2(dir_fd, rel)
        if fd is None:
            fd = _walk_nofollow(dir_fd, rel)
    finally:
        os.close(dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PathNotFound(relpath)
    return fd
