"""Region-of-interest maps: counts summed over energy windows, streamed chunk by chunk."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from beamdesk.errors import Invalid
from beamdesk.xrf import physics
from beamdesk.xrf.mapfit import open_dataset, plan_blocks


class WindowError(Invalid, ValueError):
    """An energy window that cannot be read or lies outside the spectrum (a ValueError too,
    as the command line catches it)."""


def parse_window(text: str) -> tuple[str, float, float]:
    """'Fe:6.2-6.6' → ('Fe', 6.2, 6.6); 'Fe K' → a window around the element's main line."""
    if ":" in text:
        name, _, rng = text.partition(":")
        lo, sep, hi = rng.partition("-")
        if not sep:
            raise WindowError(f"window {text!r}: expected NAME:EMIN-EMAX (keV)")
        return name.strip(), float(lo), float(hi)
    el, _, group = text.strip().partition(" ")
    lines = physics.group_lines(el, group or "K")
    if not lines:
        raise WindowError(f"window {text!r}: no lines")
    main = max(lines, key=lambda x: x.rate)
    return text.strip(), main.energy - 0.15, main.energy + 0.15


def channel_range(
    lo_kev: float, hi_kev: float, zero: float, gain: float, n_channels: int, quad: float = 0.0
) -> tuple[int, int]:
    """First and one-past-last channel whose energy lies in [lo, hi]."""
    ch = np.arange(n_channels)
    e = zero + gain * ch + quad * ch**2
    inside = np.nonzero((e >= lo_kev) & (e <= hi_kev))[0]
    if inside.size == 0:
        raise WindowError(f"window {lo_kev}-{hi_kev} keV lies outside the spectrum")
    return int(inside[0]), int(inside[-1]) + 1


def roi_maps(
    path: str,
    dataset: str,
    windows: list[tuple[str, float, float]],
    *,
    zero: float,
    gain: float,
    quad: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Sum of counts in each energy window for every pixel; reads one block at a time."""
    with open_dataset(path, dataset) as ds:
        return roi_maps_of(ds, windows, zero=zero, gain=gain, quad=quad, progress=progress)


def roi_maps_of(
    ds: Any,
    windows: list[tuple[str, float, float]],
    *,
    zero: float,
    gain: float,
    quad: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """``roi_maps`` on an open dataset (pixels × … × channels)."""
    shape = ds.shape
    ranges = {name: channel_range(lo, hi, zero, gain, shape[-1], quad) for name, lo, hi in windows}
    out = {name: np.zeros(shape[:-1], dtype=np.float64) for name in ranges}
    blocks = plan_blocks(shape, ds.chunks, ds.dtype.itemsize)
    for i, block in enumerate(blocks):
        data = ds[block]
        for name, (a, b) in ranges.items():
            out[name][block] = data[..., a:b].sum(axis=-1, dtype=np.float64)
        if progress:
            progress(i + 1, len(blocks))
    return out
