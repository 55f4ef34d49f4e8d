"""Regenerate pymca_steel.json: PyMca's own fit of Steel.spe with Steel.cfg (as shipped).

Run with a Python that has PyMca5 (not a BeamDesk dependency), e.g.::

    python3 -m venv /tmp/pymca-venv && /tmp/pymca-venv/bin/pip install PyMca5 fisx
    /tmp/pymca-venv/bin/python tests/xrf/reference/make_pymca_reference.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PyMca5 import version as pymca_version
from PyMca5.PyMcaIO import ConfigDict
from PyMca5.PyMcaIO import specfilewrapper as specfile
from PyMca5.PyMcaPhysics.xrf import ClassMcaTheory, ConcentrationsTool

DATA = Path("/work/shared/data/xrf")
HERE = Path(__file__).resolve().parent


def fit(spectrum: Path, cfgfile: Path) -> dict:
    cfg = ConfigDict.ConfigDict()
    cfg.read(str(cfgfile))
    # primary excitation only (PyMca's own test does the same)
    cfg["concentrations"]["usemultilayersecondary"] = 0
    mcafit = ClassMcaTheory.McaTheory()
    config = mcafit.configure(cfg)
    y = np.asarray(specfile.Specfile(str(spectrum))[0].mca(1), dtype=float)
    x = np.arange(y.size, dtype=float)
    mcafit.setData(x, y, xmin=config["fit"]["xmin"], xmax=config["fit"]["xmax"])
    mcafit.estimate()
    fitresult = mcafit.startfit(digest=0)
    result = mcafit.digestresult()
    ctool = ConcentrationsTool.ConcentrationsTool()
    cconf = ctool.configure()
    cconf.update(config["concentrations"])
    cconf["usematrix"] = 1
    conc = ctool.processFitResult(
        config=cconf,
        fitresult={"result": result},
        elementsfrommatrix=False,
        fluorates=mcafit._fluoRates,
        addinfo=False,
    )
    par = dict(zip(mcafit.PARAMETERS, [float(v) for v in fitresult[0]], strict=False))
    return {
        "pymca_version": pymca_version(),
        "spectrum": spectrum.name,
        "config": cfgfile.name,
        "chi2_reduced": float(fitresult[1]),
        "calibration": {"zero": par["Zero"], "gain": par["Gain"]},
        "noise": par["Noise"],
        "fano": par["Fano"],
        "groups": {
            g: {"area": float(result[g]["fitarea"]), "sigma": float(result[g]["sigmaarea"])}
            for g in result["groups"]
        },
        "mass_fractions": {g: float(v) for g, v in conc["mass fraction"].items()},
        "internal_standard": str(config["concentrations"]["reference"]),
    }


def main() -> int:
    out = {"steel": fit(DATA / "Steel.spe", DATA / "Steel.cfg")}
    (HERE / "pymca_steel.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
