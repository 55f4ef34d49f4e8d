"""A NeXus line as a table: the signal along one axis with its axis values, errors and
auxiliary signals, as a scientist wants it in a spreadsheet.

NeXus says which dataset is the signal (``@signal`` on the NXdata group, or the older
``signal=1`` on the dataset), which datasets are the axes (``@axes``, one name per
dimension, ``.`` for none, or the older ``@axes="x:y"`` on the signal) and where the
uncertainties are (``<signal>_errors``, or ``errors``). The selection must leave exactly
one dimension: that is the line.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass

import h5py
import numpy as np

from beamdesk.errors import Invalid, TooLarge
from beamdesk.h5 import csvsafe
from beamdesk.h5.nexus import nx_class, text
from beamdesk.h5.selection import Selection, parse_selection

Lookup = Callable[[h5py.Group, str], "h5py.Dataset | None"]


@dataclass
class Column:
    name: str
    units: str
    values: np.ndarray

    @property
    def header(self) -> str:
        return f"{self.name} ({self.units})" if self.units else self.name


def _names(value: object) -> list[str]:
    """An attribute holding names: a list, or one string split on ':' or ','."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return [text(v) for v in value]
    names = text(value)
    return [n.strip() for n in re.split(r"[:,]", names)] if names else []


def _linked_dataset(group: h5py.Group, name: str) -> h5py.Dataset | None:
    """A dataset reached by a hard or soft link (external links are never followed here)."""
    link = group.get(name, getlink=True)
    if not isinstance(link, h5py.HardLink | h5py.SoftLink):
        return None
    obj = group.get(name)
    return obj if isinstance(obj, h5py.Dataset) else None


def signal_name(group: h5py.Group, chosen: str = "", lookup: Lookup = _linked_dataset) -> str:
    """The signal's name: the caller's choice, @signal, or the old ``signal=1`` marker."""
    if chosen:
        if lookup(group, chosen) is None:
            raise Invalid(f"{group.name} has no dataset {chosen!r}.")
        return chosen
    named = text(group.attrs.get("signal", ""))
    if named and lookup(group, named) is not None:
        return named
    for name in group:
        obj = lookup(group, name)
        if obj is not None and text(obj.attrs.get("signal", "")) == "1":
            return name
    raise Invalid(f"{group.name} names no signal (@signal): choose one with signal=<dataset name>.")


def _old_style_axes(group: h5py.Group, ndim: int, lookup: Lookup) -> list[str]:
    """NeXus before 2014: each axis dataset says ``axis=<dimension, from 1>``, and
    ``primary=1`` picks one when several share a dimension (as GDA writes)."""
    names = ["."] * ndim
    ranks = [0] * ndim
    for name in group:
        obj = lookup(group, name)
        if obj is None or "axis" not in obj.attrs:
            continue
        try:
            dim = int(text(obj.attrs["axis"]).split(",")[0]) - 1
        except ValueError:
            continue
        rank = 2 if text(obj.attrs.get("primary", "")) == "1" else 1
        if 0 <= dim < ndim and rank > ranks[dim]:
            names[dim], ranks[dim] = name, rank
    return names


def axis_names(
    group: h5py.Group, signal: h5py.Dataset, lookup: Lookup = _linked_dataset
) -> list[str]:
    names = _names(group.attrs.get("axes", "")) or _names(signal.attrs.get("axes", ""))
    if not names:
        return _old_style_axes(group, signal.ndim, lookup)
    return names + ["."] * (signal.ndim - len(names))


def _line_dimension(sel: Selection) -> int:
    kept = sel.sliced_axes
    if len(kept) != 1:
        raise Invalid(
            f"A line needs a selection that keeps exactly one dimension (this one keeps "
            f"{len(kept)}), e.g. selection=3,: for row 3 of an image.",
        )
    return kept[0]


def _same_shape(
    group: h5py.Group, name: str, shape: tuple[int, ...], lookup: Lookup
) -> h5py.Dataset | None:
    obj = lookup(group, name)
    return obj if obj is not None and obj.shape == shape else None


def line_columns(
    group: h5py.Group,
    selection: str | None,
    limit: int,
    signal: str = "",
    lookup: Lookup = _linked_dataset,
) -> list[Column]:
    """Axis, signal, errors and auxiliary signals of one line of an NXdata group.

    ``lookup`` finds a member dataset by name; the content API passes the proposal's
    opener (``ProposalFiles.child``), which also refuses storage outside the proposal.
    """
    if nx_class(group) != "NXdata":
        raise Invalid(f"{group.name} is not an NXdata group.")
    name = signal_name(group, signal, lookup)
    dataset = lookup(group, name)
    assert dataset is not None
    shape = dataset.shape or ()
    sel = parse_selection(selection, shape)
    dim = _line_dimension(sel)
    if sel.size() * max(dataset.dtype.itemsize, 8) * 4 > limit:
        raise TooLarge("This line is longer than the read limit; slice it.")
    columns = []
    axis = axis_names(group, dataset, lookup)[dim]
    member = sel.members[dim]
    assert isinstance(member, slice)
    axis_ds = lookup(group, axis) if axis != "." else None
    if axis_ds is not None and axis_ds.ndim == 1:
        values = axis_ds[()]
        if values.shape[0] == shape[dim] + 1:  # bin edges: the centres label the points
            values = 0.5 * (values[1:] + values[:-1])
        if values.shape[0] == shape[dim]:
            columns.append(Column(axis, text(axis_ds.attrs.get("units", "")), values[member]))
    if not columns:
        columns.append(Column("index", "", np.arange(shape[dim])[member]))
    columns.append(Column(name, text(dataset.attrs.get("units", "")), dataset[sel.key]))
    for errors in (f"{name}_errors", "errors"):
        ds = _same_shape(group, errors, shape, lookup)
        if ds is not None:
            columns.append(Column(errors, text(ds.attrs.get("units", "")), ds[sel.key]))
            break
    for aux in _names(group.attrs.get("auxiliary_signals", "")):
        ds = _same_shape(group, aux, shape, lookup)
        if ds is not None and aux != name:
            columns.append(Column(aux, text(ds.attrs.get("units", "")), ds[sel.key]))
    return columns


def to_csv(columns: list[Column], title: str) -> bytes:
    """Comment line, header line, then one row per point (numbers at full precision)."""
    out = io.StringIO()
    # Names, units and the title come from the file: no formula, no extra cell or row.
    out.write(csvsafe.comment(title))
    out.write(csvsafe.row(csvsafe.flat(c.header).replace(",", ";") for c in columns))
    table = np.column_stack([np.asarray(c.values, dtype=np.float64) for c in columns])
    np.savetxt(out, table, fmt="%.17g", delimiter=",")
    return out.getvalue().encode()
