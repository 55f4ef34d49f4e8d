"""An HDF5 subset: the chosen objects of a proposal's file, as a new file that reopens as NeXus.

What is copied:

- each chosen dataset, and each chosen group with everything below it;
- the attributes of every parent group on the way (``NX_class``, ``signal``, ``axes``, …);
- for a chosen NXdata group or its signal, what a NeXus plot needs: the signal, its axes
  (``@axes``, or the older ``axes`` on the signal / ``axis=`` on each axis), its errors
  (``<signal>_errors`` or ``errors``), the ``@auxiliary_signals`` (and their errors) and a
  ``title`` dataset; ``@default`` is then set on the root and every group down to it.

Every ``@default`` left in the new file must name something in it (an NXdata group only
with its signal); others are removed, so the file never points at what it lacks.

Links are never copied as links, and never followed by libhdf5: every member is reached
through the proposal's opener (soft links inside the file, external links only to files
inside the proposal, storage outside refused) and written as a plain object. What cannot
be reached that way is left out and named in the root attribute ``subset_omitted``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import h5py
import numpy as np

from beamdesk.errors import BeamDeskError, Invalid, TooLarge
from beamdesk.h5 import content
from beamdesk.h5.nexus import nx_class, text
from beamdesk.h5.nxline import _names, axis_names, signal_name
from beamdesk.h5.opener import ProposalFiles

# A subset is a few datasets, not a copy of the file by another name: walking a group with
# soft links to its own ancestors could otherwise go on for ever.
MAX_OBJECTS = 20_000
MAX_DEPTH = 32
SLAB_BYTES = 8 * 2**20
Address = tuple[int, int]  # (file number, object address): one object, whatever its path


@dataclass
class Plan:
    """What goes where in the new file: destination path -> source object."""

    datasets: dict[str, h5py.Dataset] = field(default_factory=dict)
    groups: dict[str, h5py.Group] = field(default_factory=dict)
    datatypes: dict[str, h5py.Datatype] = field(default_factory=dict)
    omitted: dict[str, str] = field(default_factory=dict)  # path -> why
    plot: str | None = None  # the NXdata group the new file's @default leads to

    def count(self) -> int:
        return len(self.datasets) + len(self.groups) + len(self.datatypes)

    def nbytes(self) -> int:
        return sum(d.size * d.dtype.itemsize for d in self.datasets.values() if d.shape)


def _join(parent: str, name: str) -> str:
    return f"{parent.rstrip('/')}/{name}"


def _address(obj: h5py.HLObject) -> Address:
    return (obj.file.id.fileno, h5py.h5o.get_info(obj.id).addr)


class _Planner:
    def __init__(self, files: ProposalFiles, root: h5py.File) -> None:
        self.files = files
        self.root = root
        self.plan = Plan()

    def _check_size(self) -> None:
        if self.plan.count() > MAX_OBJECTS:
            raise TooLarge(
                f"The chosen objects hold more than {MAX_OBJECTS:,} datasets and groups; "
                "choose fewer or smaller groups.",
            )

    def add_dataset(self, path: str, dataset: h5py.Dataset) -> None:
        try:
            content.check_storage(dataset, self.files.folder)
        except BeamDeskError:
            self.plan.omitted[path] = "its data is stored outside this proposal"
            return
        self.plan.datasets.setdefault(path, dataset)
        self._check_size()

    def add_group(
        self, path: str, group: h5py.Group, ancestors: frozenset[Address] = frozenset()
    ) -> None:
        """The group and everything below it, each member reached through the opener."""
        here = _address(group)
        if here in ancestors or len(ancestors) >= MAX_DEPTH:
            self.plan.omitted[path] = "a link back to a group that holds it"
            return
        self.plan.groups.setdefault(path, group)
        self._check_size()
        inner = ancestors | {here}
        for name in group:
            member_path = _join(path, name)
            try:
                node = content.child(group, path, name, self.files.links)
            except BeamDeskError:
                node = content.Node(member_path)
            self.add_node(node, inner)

    def add_node(self, node: content.Node, ancestors: frozenset[Address] = frozenset()) -> None:
        entity = node.entity
        if isinstance(entity, h5py.Dataset):
            self.add_dataset(node.path, entity)
        elif isinstance(entity, h5py.Group):
            self.add_group(node.path, entity, ancestors)
        elif isinstance(entity, h5py.Datatype):
            self.plan.datatypes.setdefault(node.path, entity)
        else:
            self.plan.omitted[node.path] = "a link that leads nowhere inside this proposal"

    def parent_nxdata(self, path: str) -> tuple[str, h5py.Group] | None:
        parent = str(PurePosixPath(path).parent)
        try:
            node = self.files.resolve(self.root, parent)
        except BeamDeskError:
            return None
        group = node.entity
        if isinstance(group, h5py.Group) and nx_class(group) == "NXdata":
            return parent, group
        return None

    def add_plot(self, path: str, group: h5py.Group) -> None:
        """The members a NeXus plot of the NXdata group ``group`` (at ``path``) reads."""
        try:
            signal = signal_name(group, lookup=self.files.child)
        except BeamDeskError:
            return  # no usable signal: an ordinary group, copied as chosen
        dataset = self.files.child(group, signal)
        assert dataset is not None
        names = [signal, f"{signal}_errors", "errors", "title"]
        names += [a for a in axis_names(group, dataset, self.files.child) if a != "."]
        for aux in _names(group.attrs.get("auxiliary_signals", "")):
            names += [aux, f"{aux}_errors"]
        for name in dict.fromkeys(names):
            member = _join(path, name)
            link = group.get(name, getlink=True)
            if link is None:
                continue
            found = self.files.child(group, name)
            if found is None:
                if member not in self.plan.datasets:
                    self.plan.omitted[member] = "a link that leads nowhere inside this proposal"
                continue
            self.add_dataset(member, found)
        if self.plan.plot is None and _join(path, signal) in self.plan.datasets:
            self.plan.plot = path


def plan_subset(files: ProposalFiles, root: h5py.File, paths: list[str]) -> Plan:
    planner = _Planner(files, root)
    for requested in paths:
        node = files.resolve(root, requested)
        if node.entity is None:
            raise Invalid(f"{requested} is a link that cannot be followed.")
        path = node.path.rstrip("/") or "/"
        if isinstance(node.entity, h5py.Dataset):
            content.check_storage(node.entity, files.folder)  # asked for by name: a clear 404
        planner.add_node(content.Node(path, entity=node.entity))
        if isinstance(node.entity, h5py.Group) and nx_class(node.entity) == "NXdata":
            planner.add_plot(path, node.entity)
        elif isinstance(node.entity, h5py.Dataset):
            parent = planner.parent_nxdata(path)
            if parent is not None and _is_signal(files, parent[1], PurePosixPath(path).name):
                planner.add_plot(*parent)
    return planner.plan


def _is_signal(files: ProposalFiles, group: h5py.Group, name: str) -> bool:
    try:
        return signal_name(group, lookup=files.child) == name
    except BeamDeskError:
        return False


# --- writing ---------------------------------------------------------------------------------


def _copy_attrs(src: h5py.HLObject, dst: h5py.HLObject) -> None:
    """Attributes as they are, but object references: they point into the source file."""
    for key in src.attrs:
        try:
            dtype = src.attrs.get_id(key).dtype
            if h5py.check_ref_dtype(dtype) is not None:
                continue
            dst.attrs[key] = src.attrs[key]
        except (OSError, TypeError, ValueError):
            continue  # an attribute h5py cannot read or write back: left out


def _write_dataset(out: h5py.File, path: str, src: h5py.Dataset) -> None:
    parent, _, name = path.rpartition("/")
    holder = out.require_group(parent or "/")
    if not (src.is_virtual or src.external):
        holder.copy(src, name)  # H5Ocopy: chunks, filters and attributes as they are
        return
    # Virtual and external-storage datasets: their values, not their pointers to other files.
    dst = holder.create_dataset(name, shape=src.shape, dtype=src.dtype, chunks=src.chunks)
    _copy_attrs(src, dst)
    if not src.shape:
        dst[()] = src[()]
        return
    row_bytes = max(1, int(np.prod(src.shape[1:], dtype=np.int64)) * src.dtype.itemsize)
    step = max(1, SLAB_BYTES // row_bytes)
    for start in range(0, src.shape[0], step):
        dst[start : start + step] = src[start : start + step]


def _parents(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:i]) for i in range(len(parts))]


def _default_target(group: h5py.Group, value: str) -> h5py.Group | h5py.Dataset | None:
    """What ``@default`` names in the new file (only hard links there), or None."""
    if not value or "\x00" in value:
        return None
    target = group.file.get(value) if value.startswith("/") else group.get(value)
    if isinstance(target, h5py.Group) and nx_class(target) == "NXdata":
        try:
            signal_name(target)
        except BeamDeskError:
            return None  # an NXdata without its signal is no plot
    return target if isinstance(target, h5py.Group | h5py.Dataset) else None


def _fix_defaults(out: h5py.File, plot: str | None) -> None:
    if plot is not None:
        parts = [p for p in plot.split("/") if p]
        for i, name in enumerate(parts):
            out["/" + "/".join(parts[:i])].attrs["default"] = name
    groups = [out["/"]]
    out.visititems(lambda _, obj: groups.append(obj) if isinstance(obj, h5py.Group) else None)
    for group in groups:
        named = text(group.attrs.get("default", ""))
        if "default" in group.attrs and _default_target(group, named) is None:
            del group.attrs["default"]


def _resolved_group(files: ProposalFiles, root: h5py.File, path: str) -> h5py.Group | None:
    try:
        entity = files.resolve(root, path).entity
    except BeamDeskError:
        return None
    return entity if isinstance(entity, h5py.Group) else None


def write_subset(
    files: ProposalFiles, root: h5py.File, paths: list[str], budget: int
) -> tuple[Path, dict[str, str]]:
    """The subset as a temporary file, and what was left out (path -> why)."""
    plan = plan_subset(files, root, paths)
    total = plan.nbytes()
    if total > budget:
        raise TooLarge(
            f"The chosen datasets hold {total / 2**20:.1f} MiB, more than "
            f"the {budget / 2**20:.0f} MiB allowed; choose fewer or smaller.",
        )
    fd, name = tempfile.mkstemp(suffix=".h5", prefix="beamdesk-subset-")
    os.close(fd)
    try:
        with h5py.File(name, "w") as out:
            _write(files, root, plan, out)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name), plan.omitted


def _write(files: ProposalFiles, root: h5py.File, plan: Plan, out: h5py.File) -> None:
    placed = [*plan.groups, *plan.datasets, *plan.datatypes]
    # Parents' attributes, each parent reached through the opener (never by libhdf5).
    parents = sorted({p for path in placed for p in _parents(path)} - set(plan.groups))
    for path in parents:
        dst = out.require_group(path)
        src = _resolved_group(files, root, path)
        if src is not None:
            _copy_attrs(src, dst)
    for path in sorted(plan.groups):
        group = out.require_group(path)
        _copy_attrs(plan.groups[path], group)
    for path in sorted(plan.datasets):
        if path not in out:
            _write_dataset(out, path, plan.datasets[path])
    for path, datatype in sorted(plan.datatypes.items()):
        if path not in out:
            parent, _, leaf = path.rpartition("/")
            out.require_group(parent or "/").copy(datatype, leaf)
    _fix_defaults(out, plan.plot)
    if plan.omitted:
        out.attrs["subset_omitted"] = [f"{p}: {why}" for p, why in sorted(plan.omitted.items())]
