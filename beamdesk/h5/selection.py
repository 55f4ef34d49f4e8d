"""Parse h5grove selections ("0,:,10:20:2") strictly, against a dataset's shape.

h5grove hands the string to ``int()``/``slice()`` and lets h5py fail; here every mistake
becomes a message that says what the syntax is, and every slice is normalised to concrete,
positive start/stop/step so later code (limits, streaming, downsampling) can do arithmetic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

from beamdesk.errors import BeamDeskError, Invalid

_INT = re.compile(r"^\s*-?\d+\s*$")
SYNTAX = (
    "Expected comma-separated members, one per dimension: an index like 3 or -1, "
    "or a slice start:stop[:step] with a positive step, e.g. '0,:,10:20'."
)

Member: TypeAlias = int | slice


@dataclass(frozen=True)
class Selection:
    """A normalised selection: one int or concrete slice per dimension of ``shape``."""

    shape: tuple[int, ...]
    members: tuple[Member, ...]

    @property
    def key(self) -> tuple[Member, ...] | tuple[()]:
        return self.members

    @property
    def result_shape(self) -> tuple[int, ...]:
        return tuple(
            len(range(m.start, m.stop, m.step)) for m in self.members if isinstance(m, slice)
        )

    @property
    def sliced_axes(self) -> list[int]:
        return [i for i, m in enumerate(self.members) if isinstance(m, slice)]

    def size(self) -> int:
        return int(np.prod(self.result_shape, dtype=np.int64))

    def slice_at(self, axis: int) -> slice:
        """The member of a sliced axis (one of ``sliced_axes``), never an index."""
        m = self.members[axis]
        if not isinstance(m, slice):
            raise TypeError(f"axis {axis} of the selection is an index, not a slice")
        return m


def _fail(text: str, shape: tuple[int, ...], reason: str) -> BeamDeskError:
    return Invalid(f"Invalid selection {text!r} for shape {list(shape)}: {reason}. {SYNTAX}")


def _int(text: str, part: str, shape: tuple[int, ...]) -> int | None:
    part = part.strip()
    if part == "":
        return None
    if not _INT.match(part):
        raise _fail(text, shape, f"{part!r} is not an integer")
    return int(part)


def _member(text: str, part: str, length: int, shape: tuple[int, ...]) -> Member:
    pieces = part.split(":")
    if len(pieces) == 1:
        index = _int(text, part, shape)
        if index is None:
            raise _fail(text, shape, "an empty member")
        if not -length <= index < length:
            raise _fail(text, shape, f"index {index} is out of range for length {length}")
        return index % length
    if len(pieces) > 3:
        raise _fail(text, shape, f"{part!r} has more than two ':'")
    start, stop = _int(text, pieces[0], shape), _int(text, pieces[1], shape)
    step = _int(text, pieces[2], shape) if len(pieces) == 3 else None
    if step is not None and step <= 0:
        raise _fail(text, shape, f"step {step} in {part!r} must be positive")
    lo, hi, st = slice(start, stop, step).indices(length)
    return slice(lo, max(lo, hi), st)


def parse_selection(text: str | None, shape: tuple[int, ...] | None) -> Selection:
    """The selection ``text`` applied to ``shape``; missing trailing members mean ':'."""
    if shape is None:
        if text:
            raise Invalid("An empty dataset has no dimensions to select from.")
        return Selection((), ())
    text = (text or "").strip()
    parts = text.split(",") if text else []
    if len(parts) > len(shape):
        raise _fail(text, shape, f"{len(parts)} members for a {len(shape)}-D dataset")
    members = [_member(text, p, n, shape) for p, n in zip(parts, shape, strict=False)]
    members += [slice(0, n, 1) for n in shape[len(parts) :]]
    return Selection(tuple(shape), tuple(members))


def describe(sel: Selection) -> str:
    """The selection written back in query syntax (used in file names and hints)."""
    out = []
    for m, n in zip(sel.members, sel.shape, strict=True):
        if isinstance(m, int):
            out.append(str(m))
        elif (m.start, m.stop, m.step) == (0, n, 1):
            out.append(":")
        else:
            out.append(f"{m.start}:{m.stop}" + (f":{m.step}" if m.step != 1 else ""))
    return ",".join(out)
