"""Resolve paths inside HDF5 files without ever leaving the proposal, and describe entities.

h5py (i.e. libhdf5) follows external links to any file the process can read, so paths
are walked here link by link: hard and soft links are followed inside the file, an
external link only when its target file resolves inside the same proposal folder. Any
other link is returned unresolved and shown as a broken/external link entity, which is
also what h5grove does for links it cannot resolve. Metadata shapes match h5grove 4 so
H5Web's H5GroveProvider reads them unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeAlias

import h5py
import numpy as np
from h5grove.utils import attr_metadata, get_array_stats, get_filters, get_type_metadata

from beamdesk.errors import BeamDeskError, Invalid, NotFound
from beamdesk.h5.handles import refresh

MAX_LINK_HOPS = 16
Entity: TypeAlias = h5py.Dataset | h5py.Group | h5py.Datatype
Link: TypeAlias = h5py.SoftLink | h5py.ExternalLink
# Opens an external link's target: (file holding the link, link filename) -> file or None.
Opener: TypeAlias = Callable[[h5py.File, str], h5py.File | None]


@dataclass(frozen=True)
class Node:
    """What a path names: a resolved entity, or a link that cannot (or may not) be followed."""

    path: str
    entity: Entity | None = None
    link: Link | None = None

    @property
    def name(self) -> str:
        return self.path.rstrip("/").split("/")[-1] if self.path != "/" else ""


def _not_found(path: str) -> BeamDeskError:
    return NotFound(f"{path} is not a valid path in this file.")


def _nameable(name: str) -> bool:
    """Whether libhdf5 can look ``name`` up: no NUL (its names end there; a leading one
    makes h5py raise RuntimeError) and valid UTF-8 (a lone surrogate cannot be encoded)."""
    if "\x00" in name:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _walk(f: h5py.File, path: str, opener: Opener, hops: int) -> Entity | Link:
    if hops > MAX_LINK_HOPS:
        raise _not_found(path)
    node: Entity = f["/"]
    parts = [p for p in path.split("/") if p]
    for i, name in enumerate(parts):
        if name in (".", "..") or not isinstance(node, h5py.Group):
            raise _not_found(path)
        link = node.get(name, getlink=True)
        if link is None:
            raise _not_found(path)
        if isinstance(link, h5py.HardLink):
            node = node[name]
            continue
        target = _follow(node, link, opener, hops)
        if target is None:
            if i == len(parts) - 1:
                return link
            raise _not_found(path)
        node = target
    return node


def _follow(group: h5py.Group, link: Link, opener: Opener, hops: int) -> Entity | None:
    try:
        if isinstance(link, h5py.SoftLink):
            target = link.path
            if not target.startswith("/"):
                target = f"{group.name.rstrip('/')}/{target}"
            found = _walk(group.file, target, opener, hops + 1)
        else:
            other = opener(group.file, link.filename)
            if other is None:
                return None
            found = _walk(other, link.path, opener, hops + 1)
    except (BeamDeskError, KeyError, OSError):
        return None
    return None if isinstance(found, (h5py.SoftLink, h5py.ExternalLink)) else found


def child(group: h5py.Group, path: str, name: str, opener: Opener) -> Node:
    """The member ``name`` of ``group``, which ``path`` names.

    Resolved from the group itself, not by walking ``path`` again from ``group.file``'s
    root: a group reached through an external link lives in another file, where ``path``
    (a path of the file holding the link) names nothing.
    """
    child_path = f"{path.rstrip('/')}/{name}"
    link = group.get(name, getlink=True)
    if isinstance(link, h5py.HardLink):
        return Node(child_path, entity=group[name])
    if not isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
        raise _not_found(child_path)
    target = _follow(group, link, opener, 0)
    return Node(child_path, link=link) if target is None else Node(child_path, entity=target)


# h5grove's ``resolve_links`` values (``true``/``false`` are its older spellings).
ONLY_VALID, ALL, NONE = "only_valid", "all", "none"


def link_resolution(value: str | None) -> str:
    """h5grove 4's ``resolve_links`` query argument; 422 (h5grove's words) otherwise."""
    if value is None:
        return ONLY_VALID
    lowered = value.lower()
    if lowered in ("true", ALL):
        return ALL
    if lowered in ("false", NONE):
        return NONE
    if lowered == ONLY_VALID:
        return ONLY_VALID
    raise Invalid(
        f"{value} is not a valid value for link resolution. "
        f"Accepted values are: {ALL}, {NONE} or {ONLY_VALID}",
    )


def resolve(f: h5py.File, path: str | None, opener: Opener, links: str = ONLY_VALID) -> Node:
    """The entity at ``path`` (default "/"); 404 if there is none.

    ``links`` is h5grove's ``resolve_links`` for the last member of ``path`` (the links
    on the way are always followed): ``only_valid`` follows a soft or external link where
    it can and returns it unresolved otherwise, ``none`` returns it unresolved, ``all``
    answers 404 "Cannot resolve" when it cannot be followed (here: also when its target
    lies outside the proposal).
    """
    path = path or "/"
    if not path.startswith("/"):
        path = "/" + path
    if not _nameable(path):
        raise _not_found(path)
    if links == NONE and path.rstrip("/"):
        parent, _, name = path.rstrip("/").rpartition("/")
        holder = resolve(f, parent or "/", opener).entity
        link = holder.get(name, getlink=True) if isinstance(holder, h5py.Group) else None
        if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
            return Node(path, link=link)
    try:
        found = _walk(f, path, opener, 0)
    except (KeyError, ValueError) as exc:
        raise _not_found(path) from exc
    if isinstance(found, (h5py.SoftLink, h5py.ExternalLink)):
        if links == ALL:
            raise NotFound(
                f"Cannot resolve {_describe(found)} at {path} of {Path(f.filename).name}"
            )
        return Node(path, link=found)
    return Node(path, entity=found)


def _describe(link: Link) -> str:
    if isinstance(link, h5py.SoftLink):
        return f"the soft link to {link.path!r}"
    return f"the external link to {link.path!r} in {link.filename!r}"


def confined_opener(folder: Path, open_file: Callable[[Path], h5py.File]) -> Opener:
    """Open external-link targets only when they lie inside ``folder`` (a resolved path)."""

    def opener(holder: h5py.File, filename: str) -> h5py.File | None:
        base = Path(holder.filename).parent
        candidate = Path(filename) if PurePosixPath(filename).is_absolute() else base / filename
        try:
            target = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not target.is_file() or not target.is_relative_to(folder):
            return None
        try:
            return open_file(target)
        except (BeamDeskError, OSError):
            return None

    return opener


def _storage_names(dataset: h5py.Dataset) -> list[str]:
    names: list[str] = []
    if dataset.is_virtual:
        names = [vs.file_name for vs in dataset.virtual_sources() if vs.file_name != "."]
    if dataset.external:
        names += [(n.decode() if isinstance(n, bytes) else n) for n, *_ in dataset.external]
    return names


def _libhdf5_candidates(name: str, file_dir: Path) -> list[Path]:
    """Every place libhdf5 may look for a source or external file called ``name``.

    libhdf5 tries an absolute name as given and then its base name beside the file; a
    relative name against the prefixes (``HDF5_VDS_PREFIX``, ``HDF5_EXTFILE_PREFIX``,
    ``${ORIGIN}`` meaning the file's folder), the file's folder and the working directory.
    """
    pure = PurePosixPath(name)
    if pure.is_absolute():
        return [Path(name), file_dir / pure.name]
    places = [file_dir, Path.cwd()]
    for variable in ("HDF5_VDS_PREFIX", "HDF5_EXTFILE_PREFIX"):
        for prefix in filter(None, os.environ.get(variable, "").split(":")):
            places.append(Path(prefix.replace("${ORIGIN}", str(file_dir))))
    return [place / name for place in places]


def check_storage(dataset: h5py.Dataset, folder: Path) -> None:
    """Refuse virtual or external-storage datasets whose raw data may lie outside ``folder``.

    Every place libhdf5 could read such data from must resolve inside the proposal, so no
    spelling of the name (absolute, ``..``, a symlink, a prefix) reaches another file.
    """
    file_dir = Path(dataset.file.filename).parent
    for name in _storage_names(dataset):
        for candidate in _libhdf5_candidates(name, file_dir):
            try:
                target = candidate.resolve()
            except (OSError, RuntimeError):  # a symlink loop
                target = Path("/")
            if not target.is_relative_to(folder):
                raise NotFound(f"{dataset.name} stores its data outside this proposal.")


# --- metadata, in h5grove 4's shapes -------------------------------------------------------


def _sorted(**items: Any) -> dict[str, Any]:
    return dict(sorted(items.items()))


def _attributes(entity: Entity) -> list[dict[str, Any]]:
    return [attr_metadata(entity.attrs, n) for n in sorted(entity.attrs.keys())]


def metadata(node: Node, opener: Opener, depth: int = 1) -> dict[str, Any]:
    """h5grove's /meta body for ``node``; groups list their children one level deep."""
    if isinstance(node.link, h5py.SoftLink):
        return _sorted(kind="soft_link", name=node.name, target_path=node.link.path)
    if isinstance(node.link, h5py.ExternalLink):
        return _sorted(
            kind="external_link",
            name=node.name,
            target_file=node.link.filename,
            target_path=node.link.path,
        )
    entity = node.entity
    if entity is None:  # neither link nor entity: a Node made for a path naming nothing
        raise _not_found(node.path)
    base = {"name": node.name, "attributes": _attributes(entity)}
    if isinstance(entity, h5py.Dataset):
        # A SWMR writer's new rows: a handle opened while an older one of the same file
        # is alive in this process shares HDF5's cached (stale) object headers.
        refresh(entity)
        return _sorted(
            kind="dataset",
            chunks=entity.chunks,
            filters=get_filters(entity),
            shape=entity.shape,
            type=get_type_metadata(entity.id.get_type()),
            **base,
        )
    if isinstance(entity, h5py.Datatype):
        return _sorted(kind="datatype", type=get_type_metadata(entity.id), **base)
    if depth <= 0:
        return _sorted(kind="group", **base)
    children = [
        metadata(child(entity, node.path, name, opener), opener, depth - 1) for name in entity
    ]
    return _sorted(kind="group", children=children, **base)


def attributes(node: Node, keys: list[str] | None) -> dict[str, Any]:
    if node.entity is None:
        raise Invalid(f"{node.path} is a link that cannot be followed; it has no attributes.")
    attrs = node.entity.attrs
    names = keys if keys else list(attrs.keys())
    missing = [k for k in names if not k or not _nameable(k) or k not in attrs]
    if missing:
        raise NotFound(f"No attribute {missing[0]!r} on {node.path}.")
    return {k: attrs[k] for k in names}


def paths(node: Node) -> list[str]:
    """Every link name below a group (links are listed, never followed), as h5grove /paths."""
    if not isinstance(node.entity, h5py.Group):
        raise Invalid(f"{node.path} is not a group.")
    prefix = node.path.rstrip("/")
    names = [node.path]
    node.entity.id.links.visit(lambda name: names.append(f"{prefix}/{name.decode()}"))
    return names


def dataset_of(node: Node) -> h5py.Dataset:
    if node.link is not None:
        raise NotFound(
            f"Cannot resolve the link at {node.path}: it is broken or external and not "
            "followed (its target is missing or outside this proposal).",
        )
    if not isinstance(node.entity, h5py.Dataset):
        raise Invalid(f"{node.path} is not a dataset.")
    return node.entity


def stats(data: Any) -> dict[str, Any]:
    """h5grove's /stats on finite values."""
    arr = np.asarray(data)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise Invalid("Statistics need numeric data.")
    if np.iscomplexobj(arr):
        arr = np.abs(arr)
    if np.issubdtype(arr.dtype, np.floating):
        arr = arr[np.isfinite(arr)]
    return get_array_stats(arr)
