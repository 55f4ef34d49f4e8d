"""One HDF5 file with one dataset of every kind H5Web and h5grove know, for API and browser tests.

``write_alltypes(folder)`` writes ``alltypes.h5`` (and ``alltypes_target.h5``, the target
of its external links) into ``folder`` and returns the file's path. Datasets are grouped by
kind, so opening a group shows H5Web a mix of children of that kind (the viewer once
crashed when a group directly held a compound dataset):

- ``/int``: every integer width, signed and unsigned, little- and big-endian;
- ``/float``: f2, f4, f8 in both byte orders (with NaN and ±inf), f16/longdouble;
- ``/bool``, ``/enum``: h5py booleans (an HDF5 enum of int8) and enums of several bases;
- ``/complex``: complex64/128 (HDF5 compounds of ``r``, ``i``), big-endian, longdouble;
- ``/string``: fixed-length ASCII and UTF-8, variable-length ASCII and UTF-8, 2-D, scalar;
- ``/compound``: scalar, 1-D, 2-D, nested, with string, array, enum, bool and complex members;
- ``/opaque``: ``np.void`` (untagged and tagged), scalar;
- ``/reference``: object and region references;
- ``/array_vlen``: HDF5 array and variable-length sequence types;
- ``/empty``: ``h5py.Empty`` of several types and zero-length arrays;
- ``/scalar``: scalars of the numeric kinds;
- ``/links``: soft (to a dataset, to a group), broken soft, external inside the folder
  (to a dataset and a group) and to a missing file;
- ``/attrs``: a group whose attributes have many of these types.

``paths_of(file)`` lists every path below the root (groups, datasets, links; soft and
external links listed, not followed); ``UNRESOLVED`` names the links that cannot be followed.
``python -m tests.h5.alltypes DIR`` writes the files into DIR to look at them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np

ALLTYPES = "alltypes.h5"
TARGET = "alltypes_target.h5"
UNRESOLVED = ("/links/soft_broken", "/links/external_missing")

_INTS = ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8")
_FLOATS = ("f2", "f4", "f8")


def _int_values(code: str) -> np.ndarray:
    info = np.iinfo(code)
    return np.array([info.min, info.min + 1, 0, 1, 7, info.max - 1, info.max], dtype=code)


def _float_values(code: str) -> np.ndarray:
    return np.array([-2.5, -0.0, 0.0, 1.0 / 3.0, 1e3, np.nan, np.inf, -np.inf], dtype=code)


def _table() -> np.ndarray:
    """A 1-D compound like a beamline log: float, int, bool members."""
    dtype = np.dtype([("time", "<f8"), ("count", "<i4"), ("current", "<f4"), ("open", "?")])
    table = np.zeros(6, dtype)
    table["time"] = np.arange(6) * 0.5
    table["count"] = np.arange(6) * 11 - 20
    table["current"] = 300.25 - np.arange(6)
    table["open"] = [True, False, True, True, False, True]
    return table


def write_target(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f["values"] = np.arange(5.0) * 1.5
        f.create_group("group")["inside"] = np.arange(3, dtype="i2")


def write_alltypes(folder: Path) -> Path:
    """Write ``alltypes.h5`` and its external-link target into ``folder``; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    write_target(folder / TARGET)
    path = folder / ALLTYPES
    with h5py.File(path, "w") as f:
        g = f.create_group("int")
        for code in _INTS:
            for order, tag in (("<", "le"), (">", "be")):
                g[f"{code}_{tag}"] = _int_values(code).astype(order + code)
        g["i4_2d"] = np.arange(-12, 12, dtype="<i4").reshape(4, 6)

        g = f.create_group("float")
        for code in _FLOATS:
            for order, tag in (("<", "le"), (">", "be")):
                g[f"{code}_{tag}"] = _float_values(code).astype(order + code)
        g["f16"] = _float_values("f8").astype(np.longdouble)
        g["f4_2d"] = np.linspace(-1.0, 1.0, 30, dtype="f4").reshape(5, 6)
        g["f8_3d"] = np.linspace(0.0, 10.0, 60).reshape(3, 4, 5)

        g = f.create_group("bool")
        g["bool_1d"] = np.array([True, False, True, True])
        g["bool_2d"] = np.array([[True, False], [False, True], [True, True]])

        g = f.create_group("enum")
        colours = {"RED": 0, "GREEN": 1, "BLUE": 2}
        g.create_dataset(
            "enum_u1",
            data=np.array([0, 1, 2, 1], dtype="u1"),
            dtype=h5py.enum_dtype(colours, basetype="u1"),
        )
        g.create_dataset(
            "enum_i2",
            data=np.array([-1, 0, 5, -1], dtype="i2"),
            dtype=h5py.enum_dtype({"LOW": -1, "ZERO": 0, "HIGH": 5}, basetype="i2"),
        )
        g.create_dataset(
            "enum_u4_be",
            data=np.array([10, 20, 10], dtype=">u4"),
            dtype=h5py.enum_dtype({"OPEN": 10, "CLOSED": 20}, basetype=">u4"),
        )
        g.create_dataset(
            "enum_2d",
            data=np.array([[0, 1, 2], [2, 1, 0]], dtype="u1"),
            dtype=h5py.enum_dtype(colours, basetype="u1"),
        )

        g = f.create_group("complex")
        z = np.array([1 + 2j, -0.5 - 0.25j, 3.0, 1j, np.nan + 1j])
        g["c8"] = z.astype("<c8")
        g["c16"] = z.astype("<c16")
        g["c8_be"] = z.astype(">c8")
        g["c16_2d"] = (np.arange(6) + 1j * np.arange(6)[::-1]).reshape(2, 3)
        g["c32"] = z.astype(np.clongdouble)

        g = f.create_group("string")
        g["fixed_ascii"] = np.array([b"alpha", b"be", b"gamma"], dtype="S5")
        utf8 = g.create_dataset("fixed_utf8", shape=(3,), dtype=h5py.string_dtype("utf-8", 8))
        raw = np.array(["café".encode(), "☕".encode(), b"x"], dtype="S8")
        utf8.id.write(h5py.h5s.ALL, h5py.h5s.ALL, raw, mtype=utf8.id.get_type())
        g.create_dataset("vlen_ascii", data=[b"a", b"bc", b""], dtype=h5py.string_dtype("ascii"))
        g.create_dataset("vlen_utf8", data=["café", "☕", "Ünïcødé"], dtype=h5py.string_dtype())
        g.create_dataset("vlen_utf8_2d", data=[["a", "b"], ["c", "δ"]], dtype=h5py.string_dtype())
        g["fixed_ascii_2d"] = np.array([[b"ab", b"cd"], [b"ef", b"gh"]], dtype="S2")
        g["scalar_vlen"] = "Elettra Sincrotrone Trieste"
        g["scalar_fixed"] = np.bytes_(b"XRF beamline")

        g = f.create_group("compound")
        point = np.dtype([("x", "<f8"), ("y", "<f8"), ("label", "S4")])
        g["scalar"] = np.array((1.5, -2.0, b"P1"), dtype=point)
        g["table_1d"] = _table()
        grid = np.zeros((2, 3), dtype=[("a", "<i2"), ("b", "<f4")])
        grid["a"] = np.arange(6).reshape(2, 3)
        grid["b"] = np.arange(6).reshape(2, 3) / 4.0
        g["table_2d"] = grid
        nested_t = np.dtype([("id", "<u2"), ("pos", [("x", "<f4"), ("y", "<f4")])])
        nested = np.zeros(3, nested_t)
        nested["id"] = [1, 2, 3]
        nested["pos"]["x"] = [0.5, 1.5, 2.5]
        nested["pos"]["y"] = [-1.0, -2.0, -3.0]
        g["nested"] = nested
        vlen_member = np.dtype([("name", h5py.string_dtype()), ("value", "<f8")])
        g.create_dataset("with_vlen_string", shape=(2,), dtype=vlen_member)[...] = np.array(
            [("ring", 300.0), ("gap", 18.5)], dtype=vlen_member
        )
        arr_t = np.dtype([("id", "<i4"), ("xyz", "<f4", (3,))])
        arr = np.zeros(2, arr_t)
        arr["id"] = [7, 8]
        arr["xyz"] = [[1, 2, 3], [4, 5, 6]]
        g["with_array"] = arr
        mixed_t = np.dtype(
            [
                ("state", h5py.enum_dtype({"OFF": 0, "ON": 1}, basetype="u1")),
                ("ok", "?"),
                ("z", "<c8"),
                ("big", ">i8"),
            ]
        )
        mixed = np.zeros(2, mixed_t)
        mixed["state"] = [0, 1]
        mixed["ok"] = [False, True]
        mixed["z"] = [1 + 1j, -2j]
        mixed["big"] = [-(2**40), 2**40]
        g["with_enum_bool_complex"] = mixed

        g = f.create_group("opaque")
        g["void_1d"] = np.array([b"\x01\x02\x03", b"\xff\x00\x10"], dtype="V3")
        when = np.array(["2026-01-01T08:00:00", "2026-01-02T09:30:00"], dtype="M8[s]")
        g["tagged_datetime"] = when.astype(h5py.opaque_dtype(when.dtype))
        g["void_scalar"] = np.void(b"\x00\x01\x02\x03\x04")

        g = f.create_group("reference")
        target = f["float/f4_2d"]
        g["object_scalar"] = target.ref
        g.create_dataset(
            "object_1d",
            data=[target.ref, f["int"].ref, f["bool/bool_1d"].ref],
            dtype=h5py.ref_dtype,
        )
        g.create_dataset(
            "region_1d",
            data=[target.regionref[0:2, 1:3], target.regionref[4, :]],
            dtype=h5py.regionref_dtype,
        )
        g["region_scalar"] = f["int/i4_2d"].regionref[1:3, ::2]

        g = f.create_group("array_vlen")
        g.create_dataset("array_i2", shape=(2,), dtype=np.dtype(("<i2", (3,))))[...] = np.arange(
            6, dtype="i2"
        ).reshape(2, 3)
        seq = g.create_dataset("vlen_i4", shape=(3,), dtype=h5py.vlen_dtype(np.dtype("i4")))
        seq[0] = np.arange(1, dtype="i4")
        seq[1] = np.arange(3, dtype="i4")
        seq[2] = np.arange(5, dtype="i4")

        g = f.create_group("empty")
        g["empty_f4"] = h5py.Empty("<f4")
        g["empty_i8"] = h5py.Empty("<i8")
        g["empty_string"] = h5py.Empty(h5py.string_dtype())
        g["empty_compound"] = h5py.Empty(np.dtype([("a", "<i4"), ("b", "<f8")]))
        g["zero_length_f8"] = np.zeros((0,), dtype="f8")
        g["zero_rows_f4"] = np.zeros((0, 4), dtype="f4")

        g = f.create_group("scalar")
        g["int"] = np.int32(-42)
        g["uint64"] = np.uint64(2**63 + 5)
        g["float"] = np.float64(2.718281828459045)
        g["f2"] = np.float16(0.5)
        g["bool"] = np.bool_(True)
        g.create_dataset("enum", data=np.uint8(2), dtype=h5py.enum_dtype(colours, basetype="u1"))
        g["complex"] = np.complex128(1.5 - 0.5j)

        g = f.create_group("links")
        g["soft_dataset"] = h5py.SoftLink("/float/f8_3d")
        g["soft_group"] = h5py.SoftLink("/compound")
        g["soft_broken"] = h5py.SoftLink("/nowhere/at/all")
        g["external_dataset"] = h5py.ExternalLink(TARGET, "/values")
        g["external_group"] = h5py.ExternalLink(TARGET, "/group")
        g["external_missing"] = h5py.ExternalLink("no_such_file.h5", "/values")

        g = f.create_group("attrs")
        g.attrs["text"] = "a string"
        g.attrs["bytes"] = np.bytes_(b"fixed")
        g.attrs["int_be"] = np.array([1, 2, 3], dtype=">i4")
        g.attrs["f16"] = np.longdouble(0.25)
        g.attrs["bool"] = np.bool_(False)
        g.attrs["complex"] = np.complex64(1 - 1j)
        g.attrs["compound"] = np.array((1, 2.5), dtype=[("a", "<i4"), ("b", "<f8")])
        g.attrs["empty"] = h5py.Empty("<f4")
        g.attrs["reference"] = target.ref
        g.attrs.create("enum", np.uint8(1), dtype=h5py.enum_dtype(colours, basetype="u1"))
        g.attrs["strings"] = np.array(["x", "yz"], dtype=h5py.string_dtype())
        g["plain"] = np.arange(3.0)
    return path


def _walk(f: h5py.File) -> list[str]:
    """Every link below the root, breadth first, without following soft or external links."""
    found: list[str] = []
    queue = ["/"]
    while queue:
        group = f[queue.pop(0)]
        for name in group:
            child = f"{group.name.rstrip('/')}/{name}"
            found.append(child)
            if isinstance(group.get(name, getlink=True), h5py.HardLink) and isinstance(
                group[name], h5py.Group
            ):
                queue.append(child)
    return found


def paths_of(path: Path) -> list[str]:
    with h5py.File(path, "r") as f:
        return _walk(f)


if __name__ == "__main__":
    print(write_alltypes(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
