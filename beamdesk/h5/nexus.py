"""What the catalogue wants to know about a NeXus/HDF5 file, read without loading data.

Real files are untidy: ``NX_class`` is a str, bytes or a one-element byte array; times are
ISO 8601 with or without a zone, sometimes with a space; the ``default`` attribute may be
missing (NeXus then says: the first ``NXentry``, its first ``NXdata``). Everything here
reads attributes and small scalar datasets only, so describing a 1 GB stack costs the same
as describing a 1 kB scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import h5py
import numpy as np

# Scalars of the instrument and sample kept as search parameters; bounded so a file with
# thousands of motors cannot bloat the catalogue.
MAX_PARAMETERS = 40
_PARAMETER_DEPTH = 3


@dataclass
class FileMetadata:
    title: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None
    instrument: str = ""
    # The NX classes along the default plot, e.g. "NXentry/NXdata".
    nx_classes: str = ""
    # name -> {"value": number or text, "unit": str}, for search and PaNOSC parameters.
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)


def text(value: Any) -> str:
    """An attribute or scalar dataset value as text: str, bytes, 0-d or 1-element arrays."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return ""
        value = value.reshape(-1)[0]
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    if isinstance(value, np.generic):
        return str(value.item())
    return "" if value is None else str(value)


def nx_class(obj: h5py.HLObject) -> str:
    return text(obj.attrs.get("NX_class", ""))


def parse_time(value: str) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime; naive times are taken as UTC."""
    value = value.strip().replace(" ", "T", 1)
    if not value:
        return None
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _never_external(holder: h5py.File, filename: str) -> None:
    return None


def inside(group: h5py.Group, path: str) -> h5py.Group | h5py.Dataset | None:
    """What ``path`` (absolute, or relative to ``group``) names in the same file, walked
    link by link; None if it is absent or any hop is an external link."""
    from beamdesk.errors import BeamDeskError
    from beamdesk.h5.content import resolve

    if not path.startswith("/"):
        path = f"{(group.name or '').rstrip('/')}/{path}"
    try:
        entity = resolve(group.file, path, _never_external).entity
    except BeamDeskError:
        return None
    return entity if isinstance(entity, h5py.Group | h5py.Dataset) else None


def own_storage(obj: h5py.Dataset) -> bool:
    """True if the dataset's bytes are in its own file (not virtual, not external)."""
    return not obj.is_virtual and not obj.external


def _scalar(group: h5py.Group, name: str) -> str:
    """A small scalar dataset's value as text; '' if absent, not a scalar, or a link out."""
    obj = inside(group, name)
    if not isinstance(obj, h5py.Dataset) or obj.size != 1 or not own_storage(obj):
        return ""
    return text(obj[()])


def _children(group: h5py.Group, cls: str) -> list[h5py.Group]:
    found = []
    for name in group:
        link = group.get(name, getlink=True)
        if not isinstance(link, h5py.HardLink | h5py.SoftLink):
            continue  # never follow an external link while cataloguing
        try:
            obj = group[name]
        except (KeyError, OSError):
            continue
        if isinstance(obj, h5py.Group) and nx_class(obj) == cls:
            found.append(obj)
    return found


def default_entry(root: h5py.File) -> h5py.Group | None:
    named = text(root.attrs.get("default", ""))
    entry = inside(root, named) if named else None
    if isinstance(entry, h5py.Group):
        return entry
    entries = _children(root, "NXentry")
    return entries[0] if entries else None


def default_chain(root: h5py.File) -> list[h5py.Group]:
    """The groups from the default entry down to the plotted NXdata, following ``default``
    attributes (or NeXus' first-of-class rule), never through an external link."""
    entry = default_entry(root)
    chain = [entry] if entry is not None else []
    for _ in range(4):  # NXentry/NXsubentry/NXdata at most, with room for odd files
        if not chain or nx_class(chain[-1]) == "NXdata":
            break
        group = chain[-1]
        named = text(group.attrs.get("default", ""))
        nxt = inside(group, named) if named else None
        if not isinstance(nxt, h5py.Group):
            data = _children(group, "NXdata")
            nxt = data[0] if data else None
        if nxt is None:
            break
        chain.append(nxt)
    return chain


def default_plot_classes(root: h5py.File) -> str:
    """The NX classes along the default plot, e.g. "NXentry/NXdata"."""
    chain = default_chain(root)
    return "/".join(nx_class(g) or ("NXentry" if i == 0 else "group") for i, g in enumerate(chain))


def _instrument_name(entry: h5py.Group) -> str:
    for instrument in _children(entry, "NXinstrument"):
        name = _scalar(instrument, "name")
        return name or instrument.name.rsplit("/", 1)[-1]
    return ""


def _number_or_text(value: Any) -> float | str | None:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, np.integer | np.floating | int | float) and not isinstance(value, bool):
        number = float(value)
        return number if np.isfinite(number) else None
    if isinstance(value, bytes | np.bytes_ | str):
        return text(value)[:200]
    return None


def collect_parameters(entry: h5py.Group) -> dict[str, dict[str, Any]]:
    """Scalar values of the sample and instrument, keyed by their path below the entry."""
    found: dict[str, dict[str, Any]] = {}

    def visit(group: h5py.Group, prefix: str, depth: int) -> None:
        for name in sorted(group):
            if len(found) >= MAX_PARAMETERS:
                return
            link = group.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink):
                continue
            try:
                obj = group[name]
            except (KeyError, OSError):
                continue
            key = f"{prefix}/{name}"
            if isinstance(obj, h5py.Group) and depth < _PARAMETER_DEPTH:
                visit(obj, key, depth + 1)
            elif (
                isinstance(obj, h5py.Dataset)
                and obj.size == 1
                and obj.dtype.kind in "iufSOU"
                and own_storage(obj)
            ):
                value = _number_or_text(obj[()])
                if value not in (None, ""):
                    found[key] = {"value": value, "unit": text(obj.attrs.get("units", ""))}

    for cls in ("NXsample", "NXinstrument"):
        for group in _children(entry, cls):
            visit(group, group.name.rsplit("/", 1)[-1], 1)
    return found


def describe(root: h5py.File) -> FileMetadata:
    """Catalogue metadata of an open HDF5 file (attributes and small scalars only)."""
    meta = FileMetadata()
    entry = default_entry(root)
    if entry is None:
        return meta
    meta.title = _scalar(entry, "title")[:1000]
    meta.start_time = parse_time(_scalar(entry, "start_time"))
    meta.end_time = parse_time(_scalar(entry, "end_time"))
    meta.instrument = _instrument_name(entry)[:250]
    meta.nx_classes = default_plot_classes(root)[:250]
    meta.parameters = collect_parameters(entry)
    return meta


def default_signal(root: h5py.File) -> str:
    """The dataset NeXus would plot (``default`` attributes, then ``signal``), else the
    first numeric dataset with at least one dimension; '' when there is none."""
    chain = default_chain(root)
    if chain and nx_class(chain[-1]) == "NXdata":
        signal = text(chain[-1].attrs.get("signal", ""))
        obj = inside(chain[-1], signal) if signal else None
        if isinstance(obj, h5py.Dataset):
            return obj.name or ""
    found: list[str] = []

    def visit(name: str, obj: Any) -> Any:  # hard links only
        if isinstance(obj, h5py.Dataset) and obj.ndim >= 1 and obj.dtype.kind in "iufb":
            found.append("/" + name)
            return True
        return None

    root.visititems(visit)
    return found[0] if found else ""
