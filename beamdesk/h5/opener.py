"""The one opener of a proposal's HDF5 content.

Everything that reads HDF5 on behalf of a user goes through :class:`ProposalFiles`: a file
name is resolved once, by the kernel, beneath the proposal folder (``paths.open_beneath``),
the handle comes from the cache of read-only, lock-free opens (a beamline writer is never
blocked) and must read that very inode (a folder swapped for a symlink between the two
cannot redirect a read), links are
walked by ``content.resolve`` (external links only to files inside the proposal) and a
dataset whose virtual sources or external raw storage may lie elsewhere is refused.

It runs inside the sandboxed reader workers (``beamdesk.sandbox``), whose file system holds
only this proposal's folder, so a trick it misses still finds nothing to read.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from beamdesk.errors import BeamDeskError, Forbidden, Invalid, NotFound
from beamdesk.h5 import content
from beamdesk.h5.handles import FileCache
from beamdesk.h5.paths import PathNotFound, open_beneath, resolve_beneath


def _file_not_found(relfile: str) -> BeamDeskError:
    # "File not found" is what H5Web's h5grove provider recognises (and h5grove says).
    return NotFound(f"File not found: no file {relfile!r} in this proposal.")


class ProposalFiles:
    def __init__(self, folder: Path, capacity: int = 32) -> None:
        self.folder = Path(folder).resolve()
        self.cache = FileCache(capacity)
        self.links = content.confined_opener(self.folder, self._open_inside)

    def path(self, relfile: str) -> Path:
        """The resolved path of a regular file of the proposal; 404 otherwise."""
        try:
            target = resolve_beneath(self.folder, relfile)
        except PathNotFound as exc:
            raise _file_not_found(relfile) from exc
        if not target.is_file():
            raise _file_not_found(relfile)
        return target

    def file(self, relfile: str) -> h5py.File:
        """The open file ``relfile``, resolved once, by the kernel, beneath the folder.

        ``openat2(RESOLVE_BENEATH)`` opens it (no symlink or ``..`` out); libhdf5 opens the
        path that descriptor names, and must be reading that very inode: a folder swapped for
        a symlink in between (or since a handle was cached) is refused, never followed.
        """
        try:
            fd = open_beneath(self.folder, relfile)
        except PathNotFound as exc:
            # absent or outside: 404; there but unreadable: h5grove's 403, which H5Web shows
            target = self.path(relfile)
            if not os.access(target, os.R_OK):
                raise Forbidden(f"Cannot read file {target.name}: Permission denied.") from exc
            raise _file_not_found(relfile) from exc
        try:
            expected = os.fstat(fd)
            where = Path(os.readlink(f"/proc/self/fd/{fd}"))
        finally:
            os.close(fd)
        handle = self.cache.get(where)
        opened = os.fstat(handle.id.get_vfd_handle())
        if (opened.st_dev, opened.st_ino) != (expected.st_dev, expected.st_ino):
            raise NotFound(f"{relfile} changed while it was being opened; try again.")
        return handle

    def _open_inside(self, target: Path) -> h5py.File:
        """An external link's target (a resolved path inside the folder), opened the same way."""
        return self.file(target.relative_to(self.folder).as_posix())

    def node(
        self, relfile: str, h5path: str | None, links: str = content.ONLY_VALID
    ) -> content.Node:
        return content.resolve(self.file(relfile), h5path, self.links, links)

    def resolve(self, handle: h5py.File, h5path: str | None) -> content.Node:
        return content.resolve(handle, h5path, self.links)

    def dataset(self, relfile: str, h5path: str | None) -> h5py.Dataset:
        """A dataset whose every byte lies inside the proposal."""
        dataset = content.dataset_of(self.node(relfile, h5path))
        content.check_storage(dataset, self.folder)
        return dataset

    def group(self, relfile: str, h5path: str | None) -> h5py.Group:
        node = self.node(relfile, h5path)
        if not isinstance(node.entity, h5py.Group):
            raise Invalid(f"{node.path} is not a group.")
        return node.entity

    def child(self, group: h5py.Group, name: str) -> h5py.Dataset | None:
        """The dataset ``name`` of ``group`` (links walked safely, storage checked) or None."""
        try:
            node = self.resolve(group.file, f"{(group.name or '').rstrip('/')}/{name}")
        except BeamDeskError:
            return None
        if not isinstance(node.entity, h5py.Dataset):
            return None
        content.check_storage(node.entity, self.folder)
        return node.entity
