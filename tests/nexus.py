"""Small writers of NeXus structure for tests, so each test states only what it is about.

Every value is written as given: ``group[name] = value`` (an array, a str, a number, or an
``h5py.ExternalLink``/``SoftLink``), attributes with the Python type the caller passes.
Files whose point is a malformed or hostile structure are still written by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import h5py


def _write(group: h5py.Group, name: str, value: Any, units: Mapping[str, str]) -> None:
    group[name] = value
    if name in units:
        group[name].attrs["units"] = units[name]


def nx_root(f: h5py.File, default: str | None = None, *, nx_class: bool = True) -> h5py.Group:
    """The file root: ``@NX_class = "NXroot"`` (unless ``nx_class=False``) and ``@default``."""
    root = f["/"]
    if nx_class:
        root.attrs["NX_class"] = "NXroot"
    if default is not None:
        root.attrs["default"] = default
    return root


def nx_group(
    parent: h5py.Group,
    name: str,
    nx_class: str,
    fields: Mapping[str, Any] | None = None,
    units: Mapping[str, str] | None = None,
    **attrs: Any,
) -> h5py.Group:
    """A group of class ``nx_class`` (NXinstrument, NXsample, ...) holding ``fields``
    (name -> value, in order); ``units`` (field -> unit) become the fields' ``@units``."""
    group = parent.create_group(name)
    group.attrs["NX_class"] = nx_class
    group.attrs.update(attrs)
    for field, value in (fields or {}).items():
        _write(group, field, value, units or {})
    return group


def nx_entry(
    parent: h5py.Group,
    name: str = "entry",
    default: str | None = None,
    fields: Mapping[str, Any] | None = None,
    units: Mapping[str, str] | None = None,
    **attrs: Any,
) -> h5py.Group:
    """An NXentry with an optional ``@default`` (the child to plot) and ``fields`` such as
    ``{"title": ..., "start_time": ...}``. The root's attributes come from ``nx_root``."""
    if default is not None:
        attrs = {"default": default, **attrs}
    return nx_group(parent, name, "NXentry", fields, units, **attrs)


def nx_data(
    parent: h5py.Group,
    name: str,
    signal: str,
    values: Any = None,
    axes: Mapping[str, Any] | None = None,
    units: Mapping[str, str] | None = None,
    auxiliary_signals: Mapping[str, Any] | None = None,
    errors: Any = None,
    *,
    scalar_axes: bool = False,
    signal_options: Mapping[str, Any] | None = None,
    **attrs: Any,
) -> h5py.Group:
    """An NXdata: ``@signal``, ``@axes`` (the keys of ``axes`` in order, as a list; an axis
    whose value is None is written "." and gets no dataset), ``@auxiliary_signals`` (a list),
    then any other ``attrs``. Datasets in order: the signal (skipped if ``values`` is None;
    ``signal_options`` go to ``create_dataset``, e.g. chunks), ``{signal}_errors``, the
    axes, the auxiliary signals; ``units`` (dataset -> unit) become their ``@units``.
    ``scalar_axes=True`` writes a single axis as a plain string, as some writers do."""
    group = parent.create_group(name)
    group.attrs["NX_class"] = "NXdata"
    group.attrs["signal"] = signal
    axes = axes or {}
    if axes:
        names = ["." if v is None else k for k, v in axes.items()]
        if scalar_axes:
            if len(names) != 1:
                raise ValueError("scalar_axes needs exactly one axis")
            group.attrs["axes"] = names[0]
        else:
            group.attrs["axes"] = names
    if auxiliary_signals:
        group.attrs["auxiliary_signals"] = list(auxiliary_signals)
    group.attrs.update(attrs)
    units = units or {}
    if values is not None:
        if signal_options:
            group.create_dataset(signal, data=values, **signal_options)
            if signal in units:
                group[signal].attrs["units"] = units[signal]
        else:
            _write(group, signal, values, units)
    if errors is not None:
        _write(group, f"{signal}_errors", errors, units)
    for axis, value in axes.items():
        if value is not None:
            _write(group, axis, value, units)
    for aux, value in (auxiliary_signals or {}).items():
        _write(group, aux, value, units)
    return group
