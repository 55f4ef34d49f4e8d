"""Fit configuration: a typed model, BeamDesk's TOML format and PyMca's ``.cfg`` (ConfigDict INI).

PyMca files are read as they are (sections ``[fit]``, ``[detector]``, ``[peakshape]``,
``[attenuators]``, ``[peaks]``, ``[multilayer]``, ``[concentrations]``, ``[materials.X]`` …);
sections BeamDesk does not use (``[tube]``, ``[xrfmc]`` …) are kept verbatim in ``extra`` so a
conversion never loses information.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from beamdesk.errors import Invalid

BACKGROUNDS = ("snip", "strip", "polynomial", "none")  # beamdesk.xrf.background's methods


class ConfigError(Invalid, ValueError):
    """A configuration file that cannot be read or makes no sense."""


@dataclass
class Detector:
    material: str = "Si"
    zero: float = 0.0
    gain: float = 0.01
    quad: float = 0.0
    noise: float = 0.1  # electronic noise, FWHM in keV
    fano: float = 0.114
    pileup: float = 0.0  # PyMca "sum": pile-up factor
    fixed_zero: bool = False
    fixed_gain: bool = False
    fixed_quad: bool = True
    fixed_noise: bool = False
    fixed_fano: bool = False
    delta_zero: float = 0.1
    delta_gain: float = 0.001
    delta_noise: float = 0.05
    delta_fano: float = 0.114
    ignore_input_calibration: bool = False


@dataclass
class PeakShape:
    short_tail: bool = False
    long_tail: bool = False
    step: bool = False
    st_arearatio: float = 0.05
    st_sloperatio: float = 0.5
    lt_arearatio: float = 0.02
    lt_sloperatio: float = 10.0
    step_heightratio: float = 1e-4
    fixed_tails: bool = False


@dataclass
class BeamLine:
    energy: float
    weight: float = 1.0
    scatter: bool = True


@dataclass
class Fit:
    xmin: int = 0
    xmax: int = 0  # 0: up to the last channel
    use_limit: bool = True
    beam: list[BeamLine] = field(default_factory=list)
    escape: bool = True
    pileup: bool = False
    scatter: bool = False
    background: str = "snip"  # snip | strip | none
    snip_width: int = 30
    strip_width: int = 1
    strip_iterations: int = 20000
    strip_filter_width: int = 1
    strip_constant: float = 1.0
    continuum_order: int = 0  # extra polynomial continuum fitted on top (0: none)
    linear: bool = False  # only areas, nonlinear parameters fixed
    weight: bool = True  # Poisson weights (PyMca fitweight)
    max_iter: int = 10
    delta_chi: float = 0.001


@dataclass
class Layer:
    """A filter, the detector or a sample layer: material name, density g/cm³, thickness cm."""

    name: str
    material: str
    density: float
    thickness: float
    funny: float = 1.0


@dataclass
class Geometry:
    alpha_in: float = 45.0
    alpha_out: float = 45.0
    scattering_angle: float | None = None  # default alpha_in + alpha_out


@dataclass
class MaterialDef:
    compounds: list[str]
    fractions: list[float]
    density: float = 1.0
    thickness: float = 1.0
    comment: str = ""


@dataclass
class Concentrations:
    flux: float = 1e10
    time: float = 1.0
    area: float = 30.0  # detector active area, cm² (as PyMca)
    distance: float = 10.0  # sample–detector distance, cm
    reference: str = "Auto"  # internal-standard element, "Auto" for fundamental parameters
    use_matrix: bool = False
    use_attenuators: bool = True
    mmolar: bool = False
    # higher-order excitation in the sample (PyMca usemultilayersecondary): 0 primary only,
    # 1 with secondary fluorescence, 2 with secondary and tertiary
    secondary: int = 0


@dataclass
class XRFConfig:
    peaks: dict[str, list[str]] = field(default_factory=dict)
    detector: Detector = field(default_factory=Detector)
    peakshape: PeakShape = field(default_factory=PeakShape)
    fit: Fit = field(default_factory=Fit)
    filters: list[Layer] = field(default_factory=list)  # between sample and detector
    beam_filters: list[Layer] = field(default_factory=list)  # between source and sample
    detector_layer: Layer | None = None  # detector crystal (efficiency)
    matrix: list[Layer] = field(default_factory=list)  # sample layers, top first
    geometry: Geometry = field(default_factory=Geometry)
    concentrations: Concentrations = field(default_factory=Concentrations)
    materials: dict[str, MaterialDef] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def excitation_energy(self) -> float | None:
        """Main beam energy (keV): the line with the largest weight."""
        if not self.fit.beam:
            return None
        return max(self.fit.beam, key=lambda b: b.weight).energy

    def group_names(self) -> list[str]:
        return [f"{el} {g}" for el, groups in self.peaks.items() for g in groups]


# --- PyMca ConfigDict INI ------------------------------------------------------------------


def _parse_scalar(text: str) -> Any:
    t = text.strip()
    if t == "None":
        return None
    for conv in (int, float):
        try:
            return conv(t)
        except ValueError:
            pass
    return t


def _parse_value(text: str) -> Any:
    # ConfigDict writes lists as comma-separated values.
    if "," in text:
        return [_parse_scalar(x) for x in text.split(",")]
    return _parse_scalar(text)


def read_pymca_dict(text: str, source: str = "<cfg>") -> dict[str, Any]:
    """ConfigDict INI text → nested dict ([materials.Water] → d['materials']['Water'])."""
    root: dict[str, Any] = {}
    current: dict[str, Any] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        m = re.fullmatch(r"\[(.+)\]", line)
        if m:
            current = root
            for part in m.group(1).split("."):
                current = current.setdefault(part, {})
                if not isinstance(current, dict):
                    raise ConfigError(f"{source}: line {number}: section clashes with a value")
            continue
        if current is None or "=" not in line:
            raise ConfigError(f"{source}: line {number}: expected 'key = value' inside a section")
        key, _, value = line.partition("=")
        current[key.strip()] = _parse_value(value)
    if not root:
        raise ConfigError(f"{source}: no sections found (not a PyMca .cfg file)")
    return root


def _format_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_format_value(v) for v in value)
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def write_pymca_dict(d: dict[str, Any]) -> str:
    out: list[str] = []

    def emit(prefix: str, section: dict[str, Any]) -> None:
        out.append(f"\n[{prefix}]")
        for k, v in section.items():
            if not isinstance(v, dict):
                out.append(f"{k} = {_format_value(v)}")
        for k, v in section.items():
            if isinstance(v, dict):
                emit(f"{prefix}.{k}", v)

    for name, section in d.items():
        emit(name, section)
    return "\n".join(out).lstrip("\n") + "\n"


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return list(v) if isinstance(v, list) else [v]


def _layer_from(name: str, row: list[Any]) -> Layer | None:
    row = _as_list(row)
    if len(row) < 4 or not int(row[0] or 0) or row[1] in ("-", None):
        return None
    funny = float(row[4]) if len(row) > 4 and name != "Matrix" else 1.0
    return Layer(name, str(row[1]), float(row[2]), float(row[3]), funny)


def _flag(d: dict[str, Any], key: str, default: int = 0) -> bool:
    return bool(int(d.get(key, default) or 0))


def from_pymca_dict(d: dict[str, Any], source: str = "<cfg>") -> XRFConfig:
    cfg = XRFConfig()
    known = {
        "peaks",
        "detector",
        "peakshape",
        "fit",
        "attenuators",
        "multilayer",
        "concentrations",
        "materials",
    }
    cfg.extra = {k: v for k, v in d.items() if k not in known}
    try:
        for el, groups in (d.get("peaks") or {}).items():
            cfg.peaks[el] = [str(g) for g in _as_list(groups)]
        det = d.get("detector", {})
        cfg.detector = Detector(
            material=str(det.get("detele", "Si")),
            zero=float(det.get("zero", 0.0)),
            gain=float(det.get("gain", 0.01)),
            quad=float(det.get("quad", 0.0) or 0.0),
            noise=float(det.get("noise", 0.1)),
            fano=float(det.get("fano", 0.114)),
            pileup=float(det.get("sum", 0.0) or 0.0),
            fixed_zero=_flag(det, "fixedzero"),
            fixed_gain=_flag(det, "fixedgain"),
            fixed_quad=True,
            fixed_noise=_flag(det, "fixednoise"),
            fixed_fano=_flag(det, "fixedfano"),
            delta_zero=float(det.get("deltazero", 0.1)),
            delta_gain=float(det.get("deltagain", 0.001)),
            delta_noise=float(det.get("deltanoise", 0.05)),
            delta_fano=float(det.get("deltafano", 0.114)),
            ignore_input_calibration=_flag(det, "ignoreinputcalibration"),
        )
        fit = d.get("fit", {})
        ps = d.get("peakshape", {})
        hyp = int(fit.get("hypermetflag", 1) or 1)
        cfg.peakshape = PeakShape(
            short_tail=bool(hyp & 2),
            long_tail=bool(hyp & 4),
            step=bool(hyp & 8),
            st_arearatio=float(ps.get("st_arearatio", 0.05)),
            st_sloperatio=float(ps.get("st_sloperatio", 0.5)),
            lt_arearatio=float(ps.get("lt_arearatio", 0.02)),
            lt_sloperatio=float(ps.get("lt_sloperatio", 10.0)),
            step_heightratio=float(ps.get("step_heightratio", 1e-4)),
            fixed_tails=_flag(ps, "fixedst_arearatio") and _flag(ps, "fixedlt_arearatio"),
        )
        energies = _as_list(fit.get("energy"))
        weights = _as_list(fit.get("energyweight"))
        flags = _as_list(fit.get("energyflag"))
        scatters = _as_list(fit.get("energyscatter"))
        beam = []
        for i, e in enumerate(energies):
            if e is None or (i < len(flags) and not int(flags[i] or 0)):
                continue
            w = float(weights[i]) if i < len(weights) and weights[i] is not None else 1.0
            s = bool(int(scatters[i] or 0)) if i < len(scatters) else True
            beam.append(BeamLine(float(e), w, s))
        algorithm = int(fit.get("stripalgorithm", 0) or 0)
        cfg.fit = Fit(
            xmin=int(fit.get("xmin", 0) or 0),
            xmax=int(fit.get("xmax", 0) or 0),
            use_limit=_flag(fit, "use_limit", 1),
            beam=beam,
            escape=_flag(fit, "escapeflag", 1),
            pileup=_flag(fit, "sumflag"),
            scatter=_flag(fit, "scatterflag"),
            background=(
                "none" if not _flag(fit, "stripflag") else ("snip" if algorithm == 1 else "strip")
            ),
            snip_width=int(fit.get("snipwidth", 30) or 30),
            strip_width=int(fit.get("stripwidth", 1) or 1),
            strip_iterations=int(fit.get("stripiterations", 20000) or 0),
            strip_filter_width=int(fit.get("stripfilterwidth", 1) or 1),
            strip_constant=float(fit.get("stripconstant", 1.0) or 1.0),
            continuum_order=(
                int(fit.get("linpolorder", 0)) if int(fit.get("continuum", 0) or 0) else 0
            ),
            linear=_flag(fit, "linearfitflag"),
            weight=_flag(fit, "fitweight", 1),
            max_iter=int(fit.get("maxiter", 10) or 10),
            delta_chi=float(fit.get("deltachi", 0.001) or 0.001),
        )
        att = d.get("attenuators", {})
        for name, row in att.items():
            layer = _layer_from(name, row)
            if layer is None:
                continue
            if name == "Matrix":
                row = _as_list(row)
                angle = float(row[7]) if len(row) > 7 and int(row[6] or 0) else None
                cfg.geometry = Geometry(float(row[4]), float(row[5]), angle)
                if layer.material == "MULTILAYER":
                    for key in sorted(d.get("multilayer", {})):
                        sub = _layer_from(key, d["multilayer"][key])
                        if sub is not None:
                            cfg.matrix.append(sub)
                else:
                    cfg.matrix.append(layer)
            elif name == "Detector":
                cfg.detector_layer = layer
            elif name.startswith("BeamFilter"):
                cfg.beam_filters.append(layer)
            else:
                cfg.filters.append(layer)
        conc = d.get("concentrations", {})
        ref = conc.get("reference", "Auto")
        cfg.concentrations = Concentrations(
            flux=float(conc.get("flux", 1e10)),
            time=float(conc.get("time", 1.0)),
            area=float(conc.get("area", 30.0)),
            distance=float(conc.get("distance", 10.0)),
            reference=str(ref) if ref is not None else "Auto",
            use_matrix=_flag(conc, "usematrix"),
            use_attenuators=_flag(conc, "useattenuators", 1),
            mmolar=_flag(conc, "mmolarflag"),
            secondary=int(conc.get("usemultilayersecondary", 0) or 0),
        )
        for name, m in (d.get("materials") or {}).items():
            if not isinstance(m, dict):
                continue
            cfg.materials[name] = MaterialDef(
                compounds=[str(c).strip() for c in _as_list(m.get("CompoundList"))],
                fractions=[float(f) for f in _as_list(m.get("CompoundFraction"))],
                density=float(m.get("Density", 1.0)),
                thickness=float(m.get("Thickness", 1.0)),
                comment=str(m.get("Comment", "")),
            )
    except (TypeError, ValueError, IndexError) as exc:
        raise ConfigError(f"{source}: invalid value ({exc})") from exc
    return cfg


def to_pymca_dict(cfg: XRFConfig) -> dict[str, Any]:
    det, fit, ps = cfg.detector, cfg.fit, cfg.peakshape
    n = max(len(fit.beam), 1)
    d: dict[str, Any] = {
        "peaks": {el: (g if len(g) > 1 else g[0]) for el, g in cfg.peaks.items() if g},
        "detector": {
            "detele": det.material,
            "zero": det.zero,
            "gain": det.gain,
            "quad": det.quad,
            "noise": det.noise,
            "fano": det.fano,
            "sum": det.pileup,
            "fixedzero": int(det.fixed_zero),
            "fixedgain": int(det.fixed_gain),
            "fixednoise": int(det.fixed_noise),
            "fixedfano": int(det.fixed_fano),
            "deltazero": det.delta_zero,
            "deltagain": det.delta_gain,
            "deltanoise": det.delta_noise,
            "deltafano": det.delta_fano,
            "ignoreinputcalibration": int(det.ignore_input_calibration),
        },
        "peakshape": {
            "st_arearatio": ps.st_arearatio,
            "st_sloperatio": ps.st_sloperatio,
            "lt_arearatio": ps.lt_arearatio,
            "lt_sloperatio": ps.lt_sloperatio,
            "step_heightratio": ps.step_heightratio,
            "fixedst_arearatio": int(ps.fixed_tails),
            "fixedlt_arearatio": int(ps.fixed_tails),
        },
        "fit": {
            "xmin": fit.xmin,
            "xmax": fit.xmax,
            "use_limit": int(fit.use_limit),
            "energy": [b.energy for b in fit.beam] or [None],
            "energyweight": [b.weight for b in fit.beam] or [1.0],
            "energyflag": [1] * n if fit.beam else [0],
            "energyscatter": [int(b.scatter) for b in fit.beam] or [0],
            "escapeflag": int(fit.escape),
            "sumflag": int(fit.pileup),
            "scatterflag": int(fit.scatter),
            "stripflag": int(fit.background != "none"),
            "stripalgorithm": 1 if fit.background == "snip" else 0,
            "snipwidth": fit.snip_width,
            "stripwidth": fit.strip_width,
            "stripiterations": fit.strip_iterations,
            "stripfilterwidth": fit.strip_filter_width,
            "stripconstant": fit.strip_constant,
            "continuum": int(fit.continuum_order > 0),
            "linpolorder": fit.continuum_order,
            "linearfitflag": int(fit.linear),
            "fitweight": int(fit.weight),
            "maxiter": fit.max_iter,
            "deltachi": fit.delta_chi,
            "hypermetflag": 1 + 2 * ps.short_tail + 4 * ps.long_tail + 8 * ps.step,
        },
        "attenuators": {},
        "concentrations": {
            "flux": cfg.concentrations.flux,
            "time": cfg.concentrations.time,
            "area": cfg.concentrations.area,
            "distance": cfg.concentrations.distance,
            "reference": cfg.concentrations.reference,
            "usematrix": int(cfg.concentrations.use_matrix),
            "useattenuators": int(cfg.concentrations.use_attenuators),
            "mmolarflag": int(cfg.concentrations.mmolar),
            "usemultilayersecondary": int(cfg.concentrations.secondary),
        },
        "materials": {},
    }
    # PyMca lists of length one must still be lists: force a trailing element where needed.
    for key in ("energy", "energyweight", "energyflag", "energyscatter"):
        if len(d["fit"][key]) == 1:
            d["fit"][key] = [*d["fit"][key], None if key == "energy" else 0]
    att = d["attenuators"]
    for layer in cfg.filters + cfg.beam_filters:
        att[layer.name] = [1, layer.material, layer.density, layer.thickness, layer.funny]
    if cfg.detector_layer is not None:
        dl = cfg.detector_layer
        att["Detector"] = [1, dl.material, dl.density, dl.thickness, dl.funny]
    g = cfg.geometry
    angle = [1, g.scattering_angle] if g.scattering_angle is not None else [0, 90.0]
    if len(cfg.matrix) == 1:
        m = cfg.matrix[0]
        att["Matrix"] = [1, m.material, m.density, m.thickness, g.alpha_in, g.alpha_out, *angle]
    elif cfg.matrix:
        att["Matrix"] = [1, "MULTILAYER", 0.0, 0.0, g.alpha_in, g.alpha_out, *angle]
        d["multilayer"] = {
            f"Layer{i}": [1, m.material, m.density, m.thickness] for i, m in enumerate(cfg.matrix)
        }
    else:
        att["Matrix"] = [0, "MULTILAYER", 0.0, 0.0, g.alpha_in, g.alpha_out, *angle]
    for name, mat in cfg.materials.items():
        d["materials"][name] = {
            "Comment": mat.comment,
            "Density": mat.density,
            "Thickness": mat.thickness,
            "CompoundList": mat.compounds if len(mat.compounds) > 1 else [*mat.compounds, ""][:1],
            "CompoundFraction": mat.fractions if len(mat.fractions) > 1 else mat.fractions[:1],
        }
        # single-item lists are written without a comma and read back as scalars: fine.
        for key in ("CompoundList", "CompoundFraction"):
            if len(d["materials"][name][key]) == 1:
                d["materials"][name][key] = d["materials"][name][key][0]
    d.update(cfg.extra)
    return d


# --- TOML --------------------------------------------------------------------------------


def _strip_none(obj: Any) -> Any:
    """TOML has no null: drop None values in dicts, write "None" inside lists."""
    if isinstance(obj, dict):
        return {k: _strip_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [("None" if v is None else _strip_none(v)) for v in obj]
    return obj


def _restore_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _restore_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [None if v == "None" else _restore_none(v) for v in obj]
    return obj


def to_toml_dict(cfg: XRFConfig) -> dict[str, Any]:
    d = asdict(cfg)
    if d["detector_layer"] is None:
        del d["detector_layer"]
    return _strip_none(d)


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    return cls(**data)


def from_toml_dict(d: dict[str, Any], source: str = "<toml>") -> XRFConfig:
    try:
        d = dict(d)
        cfg = XRFConfig()
        cfg.peaks = {k: list(v) for k, v in d.pop("peaks", {}).items()}
        cfg.detector = _build(Detector, d.pop("detector", {}), f"{source} [detector]")
        cfg.peakshape = _build(PeakShape, d.pop("peakshape", {}), f"{source} [peakshape]")
        fit = dict(d.pop("fit", {}))
        fit["beam"] = [_build(BeamLine, b, f"{source} [fit.beam]") for b in fit.get("beam", [])]
        cfg.fit = _build(Fit, fit, f"{source} [fit]")
        if cfg.fit.background not in BACKGROUNDS:  # else the fit fails later, as a bug would
            raise ConfigError(
                f"{source} [fit]: background {cfg.fit.background!r} is not one of "
                f"{', '.join(BACKGROUNDS)}"
            )
        cfg.filters = [_build(Layer, x, f"{source} filters") for x in d.pop("filters", [])]
        cfg.beam_filters = [
            _build(Layer, x, f"{source} beam_filters") for x in d.pop("beam_filters", [])
        ]
        dl = d.pop("detector_layer", None)
        cfg.detector_layer = _build(Layer, dl, f"{source} detector_layer") if dl else None
        cfg.matrix = [_build(Layer, x, f"{source} matrix") for x in d.pop("matrix", [])]
        cfg.geometry = _build(Geometry, d.pop("geometry", {}), f"{source} [geometry]")
        cfg.concentrations = _build(
            Concentrations, d.pop("concentrations", {}), f"{source} [concentrations]"
        )
        cfg.materials = {
            k: _build(MaterialDef, v, f"{source} [materials.{k}]")
            for k, v in d.pop("materials", {}).items()
        }
        cfg.extra = _restore_none(d.pop("extra", {}))
        if d:
            raise ConfigError(f"{source}: unknown section(s) {', '.join(sorted(d))}")
    except ConfigError:
        raise
    except (TypeError, AttributeError, ValueError) as exc:
        # Wrong shapes (a list or null where a table belongs) are the file's mistake.
        raise ConfigError(f"{source}: {exc}") from exc
    return cfg


# --- files -------------------------------------------------------------------------------


def load_config(path: str | Path) -> XRFConfig:
    """Read a BeamDesk ``.toml`` or a PyMca ``.cfg`` (decided by extension, else by content)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    if p.suffix.lower() == ".toml":
        try:
            return from_toml_dict(tomllib.loads(text), str(p))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: invalid TOML ({exc})") from exc
    return from_pymca_dict(read_pymca_dict(text, str(p)), str(p))


def save_config(cfg: XRFConfig, path: str | Path) -> None:
    p = Path(path)
    if p.suffix.lower() == ".toml":
        p.write_text(tomli_w.dumps(to_toml_dict(cfg)), encoding="utf-8")
    elif p.suffix.lower() == ".cfg":
        p.write_text(write_pymca_dict(to_pymca_dict(cfg)), encoding="utf-8")
    else:
        raise ConfigError(f"{p}: unknown configuration extension (use .toml or .cfg)")


def config_text(cfg: XRFConfig) -> str:
    """The configuration as TOML text, stored with results for provenance."""
    return tomli_w.dumps(to_toml_dict(cfg))


def material_composition(cfg: XRFConfig, name: str) -> dict[str, float]:
    """Element mass fractions of a configured material or a formula/NIST name."""
    from beamdesk.xrf.physics import mixture, parse_compound

    m = cfg.materials.get(name)
    if m is None:
        return parse_compound(name)
    return mixture(list(zip(m.compounds, m.fractions, strict=True)))
