"""``beamdesk xrf …``: fit spectra and maps, ROI and RGB images, peak identification, configs.

Bad input never produces a traceback: one red line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from beamdesk.cli.output import console, err, fail
from beamdesk.errors import BeamDeskError

app = typer.Typer(
    help="X-ray fluorescence analysis (PyMca-class fits, maps, quantification).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Fit configuration (.toml or PyMca .cfg).")
]


@contextmanager
def _user_errors() -> Iterator[None]:
    """The engine's refusals (``beamdesk.errors``) and files that cannot be opened become one
    red line and exit code 2; anything else is a bug and shows its traceback."""
    try:
        yield
    except BeamDeskError as exc:
        fail(exc.detail)
    except OSError as exc:  # the user's own path: missing, unreadable, not HDF5
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or str(exc).splitlines()[0] or type(exc).__name__}")


def _h5spec(spec: str) -> tuple[str, str]:
    from beamdesk.xrf.readers import split_h5_path

    path, inner, index = split_h5_path(spec)
    if not inner or inner == "/" or index is not None:
        fail(f"{spec}: give the map as FILE.h5::/path/to/dataset")
    return path, inner


@app.command()
def fit(
    spectrum: Annotated[
        str, typer.Argument(help="Spectrum file (.mca, .spe, columns, CSV) or FILE.h5::/path[i,j].")
    ],
    config: ConfigOpt,
    json_out: Annotated[
        str | None, typer.Option("--json", help="Write results as JSON (file, or - for stdout).")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG of the fit.")] = None,
    secondary: Annotated[
        int | None,
        typer.Option(
            "--secondary",
            min=0,
            max=2,
            help="Higher-order excitation: 0 primary only, 1 secondary, "
            "2 secondary and tertiary fluorescence (default: the configuration's).",
        ),
    ] = None,
) -> None:
    """Fit one spectrum and print the group areas (and mass fractions when configured)."""
    from beamdesk.xrf.config import load_config
    from beamdesk.xrf.quant import fit_and_quantify
    from beamdesk.xrf.readers import read_spectrum

    with _user_errors():
        cfg = load_config(config)
        if secondary is not None:
            cfg.concentrations.secondary = secondary
        spec = read_spectrum(spectrum)
        result, info = fit_and_quantify(spec.counts, cfg)
        if "message" in info and json_out != "-":
            err.print(f"[yellow]no mass fractions:[/yellow] {info['message']}")
        out = {**result.to_dict(), "quantification": info}
        if json_out == "-":
            sys.stdout.write(json.dumps(out, indent=1) + "\n")
        else:
            _print_fit(result, spectrum, info)
            if json_out:
                Path(json_out).write_text(json.dumps(out, indent=1) + "\n")
        if plot is not None:
            from beamdesk.xrf.plot import plot_fit

            plot_fit(result, plot, title=Path(spectrum.split("::")[0]).name)


def _print_fit(result: Any, source: str, info: dict[str, Any] | None = None) -> None:
    p = result.params
    console.print(
        f"[bold]{source}[/bold]  χ²ᵣ = {result.chi2_reduced:.3f}  "
        f"zero = {p.zero:.5f} keV  gain = {p.gain * 1000:.4f} eV/ch  "
        f"noise = {p.noise * 1000:.1f} eV  Fano = {p.fano:.4f}"
    )
    if info and info.get("method"):
        how = info["method"] + (f" {info['reference']}" if info.get("reference") else "")
        order = (
            "primary excitation only",
            "with secondary fluorescence",
            "with secondary and tertiary fluorescence",
        )[info.get("secondary", 0)]
        console.print(f"quantification: {how}, {order}")
    table = Table()
    for col in ("group", "area", "σ", "rel. σ", "mass fraction", "σ(mass fraction)"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for name, g in result.groups.items():
        mf = result.mass_fractions.get(name)
        ms = result.mass_fraction_sigmas.get(name)
        table.add_row(
            name,
            f"{g.area:.1f}",
            f"{g.sigma:.1f}",
            f"{g.sigma / g.area:.2%}" if g.area > 0 else "–",
            f"{mf:.4g}" if mf is not None else "",
            f"{ms:.2g}" if ms is not None and mf is not None else "",
        )
    console.print(table)


@app.command("map")
def map_cmd(
    source: Annotated[str, typer.Argument(help="FILE.h5::/path, last axis = channels.")],
    config: ConfigOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="NeXus output file.")],
    workers: Annotated[int, typer.Option(help="Local dask workers (0: in this process).")] = 2,
    scheduler: Annotated[
        str | None, typer.Option(help="Existing dask scheduler, tcp://host:port.")
    ] = None,
    background: Annotated[str, typer.Option(help="model (fitted per pixel) or snip.")] = "model",
    processes: Annotated[
        bool,
        typer.Option(
            "--processes/--threads", help="Local workers as processes (big maps) or threads."
        ),
    ] = False,
) -> None:
    """Fit every pixel of a map; results as NeXus (parameters, uncertainties, mass fractions)."""
    from rich.progress import BarColumn, Progress, TimeRemainingColumn

    from beamdesk.xrf.config import load_config
    from beamdesk.xrf.mapfit import fit_map, open_dataset

    path, inner = _h5spec(source)
    with _user_errors():
        cfg = load_config(config)
        with open_dataset(path, inner):  # fail fast, before the progress bar appears
            pass
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            "{task.completed}/{task.total} px",
            TimeRemainingColumn(),
            console=err,
        ) as bar:
            task = bar.add_task("fitting", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = fit_map(
                path,
                inner,
                cfg,
                output,
                workers=workers,
                scheduler=scheduler,
                background=background,
                processes=processes,
                progress=progress,
            )
    console.print(
        f"{result.pixels} pixels in {result.seconds:.1f} s "
        f"({result.pixels_per_second:.0f} px/s, {result.refitted_pixels} refitted) "
        f"→ {result.output_file}"
    )


@app.command()
def roi(
    source: Annotated[str, typer.Argument(help="FILE.h5::/path, last axis = channels.")],
    window: Annotated[
        list[str],
        typer.Option("--window", "-w", help="NAME:EMIN-EMAX (keV) or 'Fe K'; repeatable."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="HDF5 output file.")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Calibration from this config.")
    ] = None,
    zero: Annotated[float | None, typer.Option(help="Calibration offset (keV).")] = None,
    gain: Annotated[float | None, typer.Option(help="Calibration gain (keV/channel).")] = None,
) -> None:
    """Energy-window (ROI) maps, streamed; one NXdata per window."""
    import h5py

    from beamdesk.xrf.config import load_config
    from beamdesk.xrf.roi import parse_window, roi_maps

    path, inner = _h5spec(source)
    with _user_errors():
        z, g, q = 0.0, 0.0, 0.0
        if config is not None:
            cfg = load_config(config)
            z, g, q = cfg.detector.zero, cfg.detector.gain, cfg.detector.quad
        z = zero if zero is not None else z
        g = gain if gain is not None else g
        if g <= 0:
            fail("no calibration: give --config or --zero/--gain")
        wins = [parse_window(w) for w in window]
        maps = roi_maps(path, inner, wins, zero=z, gain=g, quad=q)
        tmp = output.with_name(f".{output.name}.tmp")
        with h5py.File(tmp, "w") as f:
            entry = f.create_group("entry")
            entry.attrs.update(NX_class="NXentry", default="roi")
            grp = entry.create_group("roi")
            names = [n.replace(" ", "_") for n in maps]
            grp.attrs.update(NX_class="NXdata", signal=names[0])
            for (name, lo, hi), key in zip(wins, names, strict=True):
                ds = grp.create_dataset(key, data=maps[name])
                ds.attrs.update(energy_min=lo, energy_max=hi, units="counts")
            entry["source"] = f"{Path(path).resolve()}::{inner}"
        tmp.replace(output)
    console.print(f"{len(maps)} ROI maps → {output}")


def _load_map(spec: str) -> np.ndarray:
    """'results.h5::/entry/xrf_fit/results/parameters/Fe_K' or 'results.h5::Fe_K'."""
    import h5py

    path, _, inner = spec.partition("::")
    if not inner:
        fail(f"{spec}: give FILE.h5::/path/to/map or FILE.h5::Fe_K")
    if not Path(path).is_file():
        fail(f"{path}: no such file")
    with h5py.File(path, "r") as f:
        if inner not in f:
            inner = f"entry/xrf_fit/results/parameters/{inner.replace(' ', '_')}"
        if inner not in f:
            fail(f"{path}: no map {spec.partition('::')[2]}")
        return np.asarray(f[inner][()], dtype=float)


@app.command()
def rgb(
    output: Annotated[Path, typer.Argument(help="PNG to write.")],
    red: Annotated[str | None, typer.Option(help="FILE.h5::map for red.")] = None,
    green: Annotated[str | None, typer.Option(help="FILE.h5::map for green.")] = None,
    blue: Annotated[str | None, typer.Option(help="FILE.h5::map for blue.")] = None,
    scaling: Annotated[str, typer.Option(help="minmax or percentile.")] = "percentile",
    transform: Annotated[str, typer.Option(help="linear, log or sqrt.")] = "linear",
    scatter: Annotated[
        Path | None, typer.Option(help="Also write a red-vs-green scatter plot PNG.")
    ] = None,
) -> None:
    """Combine up to three maps into an RGB image (and a two-element scatter plot)."""
    from beamdesk.xrf import rgb as rgbmod

    with _user_errors():
        maps = [(_load_map(s) if s else None) for s in (red, green, blue)]
        if all(m is None for m in maps):
            fail("give at least one of --red, --green, --blue")
        image = rgbmod.rgb_image(*maps, scaling=scaling, transform=transform)
        rgbmod.save_png(image, output)
        if scatter is not None:
            if maps[0] is None or maps[1] is None:
                fail("--scatter needs --red and --green")
            rgbmod.scatter_png(maps[0], maps[1], scatter, xlabel=str(red), ylabel=str(green))
    console.print(f"RGB image {image.shape[1]}×{image.shape[0]} → {output}")


@app.command()
def identify(
    energy: Annotated[float, typer.Argument(help="Peak energy (keV).")],
    tolerance: Annotated[float, typer.Option(help="Search window ± keV.")] = 0.05,
    excitation: Annotated[
        float | None, typer.Option(help="Beam energy (keV): drop lines that cannot be excited.")
    ] = None,
) -> None:
    """List element lines near an energy, strongest and closest first."""
    from beamdesk.xrf.identify import identify as find

    with _user_errors():
        found = find(energy, tolerance, excitation=excitation)
    if not found:
        console.print(f"no line within ±{tolerance} keV of {energy} keV")
        return
    table = Table(title=f"lines near {energy} keV")
    for col in ("element", "group", "line", "energy keV", "Δ eV", "ω×rate"):
        table.add_column(col)
    for c in found:
        table.add_row(
            c.element,
            c.group,
            c.line,
            f"{c.energy:.4f}",
            f"{c.distance * 1000:+.0f}",
            f"{c.rate:.3g}",
        )
    console.print(table)


@app.command("convert-config")
def convert_config(
    source: Annotated[Path, typer.Argument(help="Input configuration (.cfg or .toml).")],
    target: Annotated[Path, typer.Argument(help="Output configuration (.toml or .cfg).")],
) -> None:
    """Convert between PyMca .cfg and BeamDesk .toml (direction by extension)."""
    from beamdesk.xrf.config import load_config, save_config

    if target.suffix.lower() not in (".cfg", ".toml"):
        fail(f"{target}: output must end in .cfg or .toml")
    with _user_errors():
        save_config(load_config(source), target)
    console.print(f"{source} → {target}")


@app.command()
def decompose(
    source: Annotated[str, typer.Argument(help="FILE.h5::/path, last axis = channels.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="HDF5 output file.")],
    method: Annotated[str, typer.Option(help="pca or nmf.")] = "pca",
    components: Annotated[int, typer.Option("-n", help="Number of components.")] = 4,
    binning: Annotated[int, typer.Option(help="Spatial binning for NMF.")] = 4,
) -> None:
    """PCA (streamed) or NMF (binned) of a map: component spectra and score maps."""
    import h5py

    from beamdesk.xrf.decompose import nmf_file, pca

    path, inner = _h5spec(source)
    with _user_errors():
        if method == "pca":
            result = pca(path, inner, components)
        elif method == "nmf":
            result = nmf_file(path, inner, components, binning=binning)
        else:
            fail("--method must be pca or nmf")
        with h5py.File(output, "w") as f:
            g = f.create_group(method)
            g["components"] = result.components
            g["scores"] = result.scores
            if result.explained is not None:
                g["explained_variance_ratio"] = result.explained
    console.print(f"{method.upper()} with {components} components → {output}")
