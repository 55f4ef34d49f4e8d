"""What the XRF workbench is sent: fits, RGB correlations, element tables, as plain data.

Pure: the builders take counts, maps and configurations already read (the web layer reads
them through the proposal's reader worker) and know nothing of proposals, the database or
HTTP. Arrays go out as float64 numpy arrays or lists with NaN and ±inf as None, for a JSON
encoder. The engine's modules are imported when a payload is built, not with this module.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from beamdesk.errors import Invalid

if TYPE_CHECKING:
    from beamdesk.xrf.config import XRFConfig

#: a synchronous fit takes a spectrum of at most this many channels
MAX_CHANNELS = 65_536


class ChannelChoice(Protocol):
    """One colour of the RGB correlator: which map, scaled how."""

    @property
    def group(self) -> str: ...
    @property
    def scaling(self) -> str: ...
    @property
    def transform(self) -> str: ...


def finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def as_array(values: np.ndarray) -> np.ndarray:
    """Values for a numpy-aware JSON encoder: float64, contiguous (NaN and ±inf: null)."""
    return np.ascontiguousarray(values, dtype=np.float64)


def floats(values: np.ndarray) -> list[float | None]:
    return [finite(float(v)) for v in np.asarray(values, dtype=float)]


def check_types(obj: object, where: str = "config") -> None:
    """Every number of the configuration is a number, every flag a flag: the engine's
    TOML reader takes values as given, and a browser form can send "" for a number."""
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            check_types(item, f"{where}[{i}]")
        return
    if isinstance(obj, dict):
        for key, item in obj.items():
            check_types(item, f"{where}.{key}")
        return
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, kind = getattr(obj, f.name), hints.get(f.name)
        name = f"{where}.{f.name}"
        if kind is float or kind == float | None:
            ok = (value is None and kind is not float) or (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
            )
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind is bool:
            ok = isinstance(value, bool | int)
        elif kind is str:
            ok = isinstance(value, str)
        else:
            check_types(value, name)
            continue
        if not ok:
            raise Invalid(
                f"Invalid configuration: {name} = {value!r} is not a "
                f"{getattr(kind, '__name__', 'number')}.",
            )


def parse_config(data: dict[str, Any]) -> XRFConfig:
    """A configuration sent as the TOML structure, its values' types checked."""
    from beamdesk.xrf.config import from_toml_dict

    cfg = from_toml_dict(data, source="config")
    check_types(cfg)
    return cfg


def config_text(cfg: XRFConfig, fmt: Literal["toml", "cfg"]) -> str:
    """The configuration as TOML text or as a PyMca .cfg file."""
    from beamdesk.xrf.config import config_text as toml_text
    from beamdesk.xrf.config import to_pymca_dict, write_pymca_dict

    return write_pymca_dict(to_pymca_dict(cfg)) if fmt == "cfg" else toml_text(cfg)


def fit_payload(counts: np.ndarray, cfg: XRFConfig) -> dict[str, Any]:
    """Run the engine's fit and quantification; the JSON the workbench draws."""
    from beamdesk.xrf.fit import FitError

    if counts.size > MAX_CHANNELS:
        raise FitError(f"the spectrum has {counts.size} channels, more than {MAX_CHANNELS}")
    from beamdesk.xrf.model import params_from_config
    from beamdesk.xrf.quant import fit_and_quantify

    result, quant = fit_and_quantify(counts, cfg)
    p = result.params
    all_channels = np.arange(counts.size, dtype=float)
    full_energy = p.zero + p.gain * all_channels + p.quad * all_channels**2
    start = params_from_config(cfg)
    return {
        "calibration": {"zero": p.zero, "gain": p.gain, "quad": p.quad},
        "start_calibration": {"zero": start.zero, "gain": start.gain, "quad": start.quad},
        "noise": p.noise,
        "fano": p.fano,
        "chi2_reduced": finite(result.chi2_reduced),
        "quantification": quant,
        "groups": {
            name: {
                "area": g.area,
                "sigma": g.sigma,
                "mass_fraction": finite(result.mass_fractions.get(name, float("nan"))),
                "mass_fraction_sigma": finite(result.mass_fraction_sigmas.get(name, float("nan"))),
            }
            for name, g in result.groups.items()
        },
        "channels": floats(result.channels),
        "energy": floats(result.energy),
        "data": floats(result.data),
        "fit": floats(result.fit),
        "background": floats(result.background),
        "residuals": floats(result.residuals),
        "contributions": {name: floats(m) for name, m in result.group_models.items()},
        # the whole spectrum (not only the fitted range), for ROI windows and calibration
        "spectrum": {"energy": floats(full_energy), "counts": floats(counts)},
    }


def rgb_payload(
    maps_of: Callable[[list[str]], Mapping[str, np.ndarray]],
    channels: Mapping[str, ChannelChoice | None],
    scatter: list[str] | None,
) -> dict[str, Any]:
    """Up to three maps (``channels``: red, green, blue) scaled each as chosen, and the
    scatter of two of them (``scatter``, or the first two chosen); ``maps_of(groups)``
    reads the maps of those groups."""
    from beamdesk.xrf.rgb import scale_channel, scatter_data

    chosen = [c.group for c in channels.values() if c is not None]
    pair = scatter or chosen[:2]
    if not chosen:
        raise Invalid("Choose at least one map (red, green or blue).")
    if len(pair) != 2:
        raise Invalid("The scatter plot needs two maps.")
    maps = maps_of(sorted({*chosen, *pair}))
    shape = next(iter(maps.values())).shape
    if len(shape) != 2 or any(m.shape != shape for m in maps.values()):
        raise Invalid("The RGB correlator needs 2-D maps of one shape.")
    out: dict[str, Any] = {"shape": list(shape), "channels": {}}
    for colour, ch in channels.items():
        if ch is None:
            continue
        values = maps[ch.group]
        out["channels"][colour] = {
            "group": ch.group,
            "scaling": ch.scaling,
            "transform": ch.transform,
            "scaled": as_array(
                scale_channel(values, scaling=ch.scaling, transform=ch.transform).ravel()
            ),
            "min": finite(float(np.nanmin(values))),
            "max": finite(float(np.nanmax(values))),
        }
    a, b = maps[pair[0]], maps[pair[1]]
    pearson = scatter_data(a, b)["pearson_r"]
    # every pixel, in map order (index = row × columns + column), so a selection in the
    # scatter plot names map pixels directly; NaN (unfitted) pixels come back as null
    out["scatter"] = {
        "x_group": pair[0],
        "y_group": pair[1],
        "x": as_array(a.ravel()),
        "y": as_array(b.ravel()),
        "pearson_r": pearson,
    }
    return out


def identified_lines(
    energy: float, tolerance: float, excitation: float | None, limit: int
) -> list[dict[str, Any]]:
    """Element lines within ``tolerance`` keV of ``energy``, strongest and closest first."""
    from beamdesk.xrf.identify import identify

    return [
        {
            "element": c.element,
            "group": c.group,
            "line": c.line,
            "energy": c.energy,
            "rate": c.rate,
            "distance": c.distance,
        }
        for c in identify(energy, tolerance, excitation=excitation, limit=limit)
    ]


@functools.lru_cache(maxsize=8)
def element_table(excitation: float | None) -> tuple[dict[str, Any], ...]:
    """Z 11–92: the strongest line of each K/L/M group and whether the beam excites it."""
    from beamdesk.xrf import physics

    out = []
    for z in range(11, 93):
        el = physics.symbol(z)
        groups: dict[str, Any] = {}
        for group, shell in (("K", "K"), ("L", "L3"), ("M", "M5")):
            try:
                # the label line: Kα, Lα (of L3), Mα (of M5), what users look for
                lines = physics.group_lines(el, shell)
            except physics.PhysicsError:
                continue
            if not lines:
                continue
            main = max(lines, key=lambda line: line.rate)
            # PyMca offers K lines from 1 keV, L from ~0.5 keV: softer ones are not fitted
            if main.energy < 0.9:
                continue
            edge = physics.edge_energy(el, shell)
            groups[group] = {
                "energy": round(main.energy, 4),
                "edge": round(edge, 4),
                "excited": excitation is None or edge < excitation,
            }
        out.append({"z": z, "symbol": el, "groups": groups})
    return tuple(out)


def config_payload(path: Path, to: Literal["toml", "cfg"] | None) -> dict[str, Any]:
    """A configuration file as the TOML structure and its format (``toml`` or ``cfg``),
    and its text in the format ``to`` when given (conversion TOML ⇄ PyMca .cfg);
    :class:`Invalid` with the parser's first line when it is not a configuration."""
    from beamdesk.xrf.config import ConfigError, load_config, to_toml_dict

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        raise Invalid(f"Invalid configuration: {str(exc).splitlines()[0]}") from None
    out: dict[str, Any] = {
        "config": to_toml_dict(cfg),
        "format": "cfg" if path.suffix.lower() == ".cfg" else "toml",
    }
    if to is not None:
        out["text"] = config_text(cfg, to)
    return out
