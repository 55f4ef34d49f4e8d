"""Benchmark: XRF map fitting, BeamDesk vs PyMca's FastXRFLinearFit on the same map and config.

    python bench/xrf_map.py                 # 200×200×2048 map, BeamDesk on 1 and 2 workers
    python bench/xrf_map.py --big           # also 1000×1000×2048 (4 GB on disk), BeamDesk only

PyMca is run when PyMca5 is importable by this Python (it is never a BeamDesk dependency):
create a separate environment with PyMca5 and fisx, ``pip install -e .`` into it and run the
benchmark with that environment's python. Otherwise PyMca is skipped with a note.

The map is synthetic with known truth, generated here directly from xraylib (line energies ×
radiative rates × Gaussians) plus a smooth continuum and Poisson noise, written chunk by chunk.
Each method runs in its own subprocess; peak memory is the summed RSS of that process tree.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ELEMENTS = ("Ca", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "As", "Se", "Sr", "Zr")
ZERO, GAIN, NOISE, FANO, N_CH = -0.005, 0.010, 0.110, 0.114, 2048

CFG = """[peaks]
{peaks}

[fit]
xmin = 150
xmax = 1900
use_limit = 1
energy = 20.0, None
energyweight = 1.0, 0.0
energyflag = 1, 0
energyscatter = 0, 0
escapeflag = 0
sumflag = 0
scatterflag = 0
stripflag = 1
stripalgorithm = 1
snipwidth = 30
stripwidth = 1
stripfilterwidth = 1
stripiterations = 2000
stripconstant = 1.0
stripanchorsflag = 0
stripanchorslist = 0, 0, 0, 0
continuum = 0
linpolorder = 1
exppolorder = 1
linearfitflag = 1
fitfunction = 0
fitweight = 1
hypermetflag = 1
maxiter = 10
deltachi = 0.001
deltaonepeak = 0.01

[detector]
detele = Si
zero = {zero}
gain = {gain}
noise = {noise}
fano = {fano}
sum = 0.0
fixedzero = 0
fixedgain = 0
fixednoise = 0
fixedfano = 0
fixedsum = 1
deltazero = 0.05
deltagain = 0.0005
deltanoise = 0.05
deltafano = 0.1
deltasum = 1e-8
nthreshold = 4

[peakshape]
st_arearatio = 0.05
st_sloperatio = 0.5
lt_arearatio = 0.02
lt_sloperatio = 10.0
step_heightratio = 0.0001
fixedst_arearatio = 1
fixedst_sloperatio = 1
fixedlt_arearatio = 1
fixedlt_sloperatio = 1
fixedstep_heightratio = 1
eta_factor = 0.02
fixedeta_factor = 1
deltast_arearatio = 0.03
deltast_sloperatio = 0.49
deltalt_arearatio = 0.015
deltalt_sloperatio = 7.0
deltastep_heightratio = 5e-05
deltaeta_factor = 0.02

[attenuators]
Matrix = 0, MULTILAYER, 0.0, 0.0, 45.0, 45.0, 0, 90.0
Detector = 0, Si1, 2.33, 0.5, 1.0

[concentrations]
flux = 1e10
time = 1.0
area = 1.0
distance = 10.0
reference = Auto
usematrix = 0
useattenuators = 0
mmolarflag = 0
"""


# --- synthetic data (independent of beamdesk.xrf) -------------------------------------------


def unit_spectra() -> dict[str, np.ndarray]:
    import xraylib

    e = ZERO + GAIN * np.arange(N_CH)
    out = {}
    for el in ELEMENTS:
        z = xraylib.SymbolToAtomicNumber(el)
        y = np.zeros(N_CH)
        lines = []
        for name in dir(xraylib):
            if name.startswith("K") and name.endswith("_LINE") and len(name) == 8:
                try:
                    en, r = (
                        xraylib.LineEnergy(z, getattr(xraylib, name)),
                        xraylib.RadRate(z, getattr(xraylib, name)),
                    )
                except ValueError:
                    continue
                if en > 0 and r > 1e-3:
                    lines.append((en, r))
        total = sum(r for _, r in lines)
        for en, r in lines:
            s = math.sqrt(NOISE**2 + 2.3548**2 * 0.00385 * FANO * en) / 2.3548
            y += (
                r / total * GAIN / (s * math.sqrt(2 * math.pi)) * np.exp(-0.5 * ((e - en) / s) ** 2)
            )
        out[el] = y
    return out


def truth_maps(ny: int, nx: int) -> dict[str, np.ndarray]:
    """Smooth patterns from ~10 to ~3000 counts per group, different for each element."""
    yy, xx = np.mgrid[0:ny, 0:nx] / max(ny, nx)
    out = {}
    for i, el in enumerate(ELEMENTS):
        phase = 0.7 * i
        level = 10 ** (1.2 + 2.0 * (i % 5) / 4)  # 16 … 1600
        out[el] = level * (1.0 + 0.8 * np.sin(6 * xx + phase) * np.cos(4 * yy - phase))
    return out


def write_map(path: Path, ny: int, nx: int, rows_per_write: int = 20) -> None:
    import h5py

    units = unit_spectra()
    e = ZERO + GAIN * np.arange(N_CH)
    continuum = 3.0 * np.exp(-np.clip(e, 0, None) / 7.0) + 0.2
    rng = np.random.default_rng(42)
    yy0, xx0 = np.mgrid[0:rows_per_write, 0:nx]
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(
            "entry/data/spectra",
            shape=(ny, nx, N_CH),
            dtype="u2",
            chunks=(min(20, ny), min(20, nx), N_CH),
        )
        for r0 in range(0, ny, rows_per_write):
            r1 = min(r0 + rows_per_write, ny)
            yy, xx = (yy0[: r1 - r0] + r0) / max(ny, nx), xx0[: r1 - r0] / max(ny, nx)
            mean = np.broadcast_to(continuum, (r1 - r0, nx, N_CH)).copy()
            for i, el in enumerate(ELEMENTS):
                level = 10 ** (1.2 + 2.0 * (i % 5) / 4)
                a = level * (1.0 + 0.8 * np.sin(6 * xx + 0.7 * i) * np.cos(4 * yy - 0.7 * i))
                mean += a[..., None] * units[el]
            ds[r0:r1] = rng.poisson(mean)


# --- runners (each in its own subprocess) -----------------------------------------------------


class PeakRSS:
    """Samples the summed RSS of this process and all its descendants."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for p in [self.proc, *self.proc.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def __enter__(self) -> PeakRSS:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def run_beamdesk(args: argparse.Namespace) -> dict:
    from beamdesk.xrf.config import load_config
    from beamdesk.xrf.mapfit import fit_map

    cfg = load_config(args.cfg)
    client = None
    if args.warm:
        # a long-running cluster (as a facility's job system keeps one): start-up not timed
        from distributed import Client, LocalCluster

        client = Client(
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                processes=args.processes,
                dashboard_address=None,
            )
        )
        client.run(__import__, "beamdesk.xrf.mapfit")  # warm workers have the code loaded
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        r = fit_map(
            args.file,
            "entry/data/spectra",
            cfg,
            args.out,
            workers=args.workers,
            background=args.background,
            quantify=False,
            processes=args.processes,
            client=client,
        )
        seconds = time.perf_counter() - t0
    if client is not None:
        client.close()
    a, s = r.read("parameters"), r.read("uncertainties")
    np.savez(
        args.npz,
        **{f"a_{k.split()[0]}": v for k, v in a.items()},
        **{f"s_{k.split()[0]}": v for k, v in s.items()},
    )
    return {"seconds": seconds, "pixels": r.pixels, "peak_rss_mb": mem.peak / 2**20}


def run_pymca(args: argparse.Namespace) -> dict:
    import h5py
    from PyMca5.PyMcaIO import ConfigDict
    from PyMca5.PyMcaPhysics.xrf.FastXRFLinearFit import FastXRFLinearFit

    cfg = ConfigDict.ConfigDict()
    cfg.read(str(args.cfg))
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        with h5py.File(args.file, "r") as f:
            data = f["entry/data/spectra"][()]  # PyMca works on the map in memory
        fast = FastXRFLinearFit()
        buf = fast.fitMultipleSpectra(
            y=data, configuration=cfg, weight=0, refit=1, concentrations=0, save=False
        )
        seconds = time.perf_counter() - t0
    labels = buf.labels("parameters")
    params = buf["parameters"]
    sig = buf["uncertainties"]
    out = {}
    for i, lab in enumerate(labels):
        name = str(lab).replace("_", " ").split()[0]
        if name in ELEMENTS:
            out[f"a_{name}"] = np.asarray(params[i])
            out[f"s_{name}"] = np.asarray(sig[i])
    np.savez(args.npz, **out)
    return {
        "seconds": seconds,
        "pixels": int(np.prod(data.shape[:-1])),
        "peak_rss_mb": mem.peak / 2**20,
    }


def spawn(
    method: str,
    file: Path,
    cfg: Path,
    workers: int,
    tmp: Path,
    background: str = "model",
    processes: bool = False,
    warm: bool = False,
) -> dict | None:
    npz = tmp / f"{method}_{workers}_{background}.npz"
    cmd = [
        sys.executable,
        __file__,
        "--_run",
        method,
        "--file",
        str(file),
        "--cfg",
        str(cfg),
        "--workers",
        str(workers),
        "--out",
        str(tmp / f"{method}_{workers}.h5"),
        "--npz",
        str(npz),
        "--background",
        background,
    ]
    cmd += (["--processes"] if processes else []) + (["--warm"] if warm else [])
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if method == "pymca" and workers > 1:
        env.update(OMP_NUM_THREADS=str(workers), OPENBLAS_NUM_THREADS=str(workers))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        print(f"  {method} failed: {p.stderr.strip().splitlines()[-1:]}")
        return None
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["npz"] = str(npz)
    return res


def accuracy(npz: str, truth: dict[str, np.ndarray]) -> tuple[float, float, float]:
    """Median |bias| %, median relative RMS error %, median std of (fit−truth)/σ."""
    d = np.load(npz)
    bias, rms, pull = [], [], []
    for el, t in truth.items():
        if f"a_{el}" not in d:
            continue
        a, s = d[f"a_{el}"], d[f"s_{el}"]
        bias.append(abs(np.mean(a - t)) / np.mean(t) * 100)
        rms.append(np.sqrt(np.mean((a - t) ** 2)) / np.mean(t) * 100)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (a - t) / s
        pull.append(np.nanstd(z[np.isfinite(z)]))
    return float(np.median(bias)), float(np.median(rms)), float(np.median(pull))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big", action="store_true", help="also a 1000×1000×2048 map from disk")
    ap.add_argument("--size", type=int, nargs=2, default=(200, 200))
    ap.add_argument("--tmp", type=Path, default=None)
    ap.add_argument("--_run", dest="run", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path)
    ap.add_argument("--cfg", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--npz", type=Path)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--background", default="model")
    ap.add_argument("--processes", action="store_true")
    ap.add_argument("--warm", action="store_true")
    args = ap.parse_args()
    if args.run:
        res = run_beamdesk(args) if args.run == "beamdesk" else run_pymca(args)
        print(json.dumps(res))
        return 0

    try:
        import PyMca5  # noqa: F401

        have_pymca = True
    except ImportError:
        have_pymca = False
    tmp = args.tmp or Path(tempfile.mkdtemp(prefix="xrf-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = tmp / "bench.cfg"
    cfg.write_text(
        CFG.format(
            peaks="\n".join(f"{el} = K" for el in ELEMENTS),
            zero=ZERO,
            gain=GAIN,
            noise=NOISE,
            fano=FANO,
        )
    )
    sizes = [tuple(args.size)] + ([(1000, 1000)] if args.big else [])
    print(f"{len(ELEMENTS)} K-line groups, {N_CH} channels; 2 cores; results in {tmp}")
    for ny, nx in sizes:
        file = tmp / f"map_{ny}x{nx}.h5"
        if not file.exists():
            t0 = time.perf_counter()
            write_map(file, ny, nx)
            print(
                f"wrote {file.name} ({file.stat().st_size / 2**30:.2f} GiB) in "
                f"{time.perf_counter() - t0:.0f} s"
            )
        truth = truth_maps(ny, nx)
        big = ny * nx > 200_000
        # (method, workers, background, processes, warm cluster)
        runs = [
            ("beamdesk", 0, "model", False, False),
            ("beamdesk", 1, "model", False, False),
            ("beamdesk", 2, "model", False, False),
            ("beamdesk", 2, "model", False, True),
            ("beamdesk", 2, "model", True, True),
            ("beamdesk", 2, "snip", False, False),
        ]
        if big:
            runs = [("beamdesk", 0, "model", False, False), ("beamdesk", 2, "model", True, True)]
        elif have_pymca:
            runs += [("pymca", 1, "snip", False, False), ("pymca", 2, "snip", False, False)]
        print(f"\nmap {ny}×{nx}×{N_CH}")
        print(
            f"{'method':32s} {'px/s':>9s} {'px/s/core':>10s} {'|bias|%':>8s} "
            f"{'rms err%':>9s} {'std(z)':>7s} {'peak RSS':>9s}"
        )
        for method, workers, bkg, procs, warm in runs:
            res = spawn(method, file, cfg, workers, tmp, bkg, procs, warm)
            if res is None:
                continue
            pps = res["pixels"] / res["seconds"]
            b, r, z = accuracy(res["npz"], truth)
            if method == "pymca":
                label = f"PyMca FastXRFLinearFit, {workers} thr"
            elif workers == 0:
                label = f"BeamDesk ({bkg}), in-process"
            else:
                label = (
                    f"BeamDesk ({bkg}), {workers} {'proc' if procs else 'thr'}"
                    f"{', warm' if warm else ''}"
                )
            print(
                f"{label:32s} {pps:9.0f} {pps / max(workers, 1):10.0f} {b:8.2f} {r:9.2f} "
                f"{z:7.2f} {res['peak_rss_mb']:7.0f} MB"
            )
        if not have_pymca and not big:
            print("note: PyMca5 not importable by this Python: PyMca comparison skipped")
    print(
        "\nwarm: the dask cluster is started before timing (as a job system keeps one); "
        "otherwise its start-up is included."
    )
    print(
        "|bias|%: median over groups of |mean(fit − truth)| / mean(truth); rms err%: the same "
        "for the RMS error; std(z): median std of (fit − truth)/σ (1 = honest σ)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
