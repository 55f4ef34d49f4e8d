"""The ``beamdesk xrf`` commands through typer's CliRunner and one real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner
from xrf_synth import DATA, synthetic_cfg_text, write_map

from beamdesk.cli.xrf import app

runner = CliRunner()


def test_fit_json_stdout() -> None:
    res = runner.invoke(
        app,
        [
            "fit",
            str(DATA / "XRFSpectrum.mca"),
            "--config",
            str(DATA / "XRFSpectrum_XrfTest.cfg"),
            "--json",
            "-",
        ],
    )
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert set(d["calibration"]) == {"zero", "gain", "quad"}
    assert {"area", "sigma"} == set(d["groups"]["Co K"])
    assert d["mass_fractions"]["Co K"] == pytest.approx(5e-4)
    # the standard's fraction is given (σ 0); the others carry both areas' errors
    assert d["mass_fraction_sigmas"]["Co K"] == 0.0
    fe = d["mass_fraction_sigmas"]["Fe K"] / d["mass_fractions"]["Fe K"]
    co = d["groups"]["Co K"]["sigma"] / d["groups"]["Co K"]["area"]
    assert fe > co
    assert d["quantification"] == {
        "secondary": 0,
        "method": "internal standard",
        "reference": "Co K",
    }


def test_fit_table_json_file_and_plot(tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "fit",
            str(DATA / "Steel.spe"),
            "-c",
            str(DATA / "Steel.cfg"),
            "--json",
            str(tmp_path / "r.json"),
            "--plot",
            str(tmp_path / "r.png"),
            "--secondary",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "Fe Ka" in res.stdout and "Cr K" in res.stdout
    text = " ".join(res.stdout.split())  # the narrow test console wraps lines
    assert "internal standard Fe Ka, with secondary and tertiary fluorescence" in text
    d = json.loads((tmp_path / "r.json").read_text())
    assert d["groups"]["Fe Ka"]["area"] > 1e6
    assert 0.18 < d["mass_fractions"]["Cr K"] < 0.20  # certificate 0.1837
    assert 0 < d["mass_fraction_sigmas"]["Cr K"] < 0.01
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "args,needle",
    [
        (["fit", "/nonexistent.mca", "-c", str(DATA / "Steel.cfg")], "no such file"),
        (["fit", str(DATA / "Steel.cfg"), "-c", str(DATA / "Steel.cfg")], "[attenuators]"),
        (["fit", str(DATA / "Steel.spe"), "-c", str(DATA / "README.md")], "README.md"),
        (["convert-config", str(DATA / "Steel.cfg"), "/tmp/x.json"], ".cfg or .toml"),
        (["map", "nothing.h5", "-c", str(DATA / "Steel.cfg"), "-o", "/tmp/o.h5"], "FILE.h5::"),
    ],
)
def test_bad_input_is_one_red_line(args: list[str], needle: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    out = res.stderr.strip()
    assert out.startswith("error:") and needle in out and "Traceback" not in res.output
    assert len(out.splitlines()) == 1


def test_convert_config_both_ways(tmp_path: Path) -> None:
    toml = tmp_path / "steel.toml"
    assert runner.invoke(app, ["convert-config", str(DATA / "Steel.cfg"), str(toml)]).exit_code == 0
    assert "[detector]" in toml.read_text()
    back = tmp_path / "steel.cfg"
    assert runner.invoke(app, ["convert-config", str(toml), str(back)]).exit_code == 0
    from beamdesk.xrf.config import load_config

    assert load_config(back) == load_config(DATA / "Steel.cfg")


def test_identify() -> None:
    res = runner.invoke(app, ["identify", "6.40"])
    assert res.exit_code == 0 and "Fe" in res.stdout
    res = runner.invoke(app, ["identify", "10.54", "--tolerance", "0.02"])
    assert "As" in res.stdout and "Pb" in res.stdout  # the classic As Kα / Pb Lα overlap


def test_map_roi_rgb_decompose(tmp_path: Path) -> None:
    cfg = tmp_path / "s.cfg"
    cfg.write_text(synthetic_cfg_text())
    rng = np.random.default_rng(0)
    truth = {el: 200 + 100 * rng.random((6, 8)) for el in ("Ti", "Fe", "Cu", "Zn", "Sr")}
    write_map(tmp_path / "m.h5", truth, continuum=2.0, chunks=(3, 4, 1024))
    src = f"{tmp_path}/m.h5::/entry/data/spectra"
    out = tmp_path / "fit.h5"
    res = runner.invoke(app, ["map", src, "-c", str(cfg), "-o", str(out), "--workers", "0"])
    assert res.exit_code == 0, res.output
    with h5py.File(out) as f:
        assert f["entry/xrf_fit/results/parameters/Fe_K"].shape == (6, 8)
    res = runner.invoke(
        app,
        [
            "roi",
            src,
            "-w",
            "Fe:6.2-6.6",
            "-w",
            "Cu K",
            "-c",
            str(cfg),
            "-o",
            str(tmp_path / "roi.h5"),
        ],
    )
    assert res.exit_code == 0, res.output
    with h5py.File(tmp_path / "roi.h5") as f:
        fe = f["entry/roi/Fe"][()]
    assert fe.shape == (6, 8) and np.corrcoef(fe.ravel(), truth["Fe"].ravel())[0, 1] > 0.8
    res = runner.invoke(
        app,
        [
            "rgb",
            str(tmp_path / "rgb.png"),
            "--red",
            f"{out}::Fe_K",
            "--green",
            f"{out}::Cu K",
            "--scatter",
            str(tmp_path / "sc.png"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "rgb.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "sc.png").read_bytes()[:4] == b"\x89PNG"
    res = runner.invoke(app, ["decompose", src, "-o", str(tmp_path / "pca.h5"), "-n", "3"])
    assert res.exit_code == 0, res.output


def test_main_cli_subprocess() -> None:
    """The sub-command is reachable through the installed ``beamdesk`` entry point."""
    exe = Path(sys.executable).parent / "beamdesk"
    out = subprocess.run(
        [str(exe), "xrf", "identify", "8.04"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and "Cu" in out.stdout
