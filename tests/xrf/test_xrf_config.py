"""Configuration: PyMca .cfg files as shipped, BeamDesk TOML, conversions both ways."""

from __future__ import annotations

from pathlib import Path

import pytest
from xrf_synth import DATA

from beamdesk.xrf.config import ConfigError, load_config, save_config

CFGS = ["Steel.cfg", "XRFSpectrum_XrfTest.cfg", "McaTheory.cfg"]


@pytest.mark.parametrize("name", CFGS)
def test_real_configs_load(name: str) -> None:
    cfg = load_config(DATA / name)
    assert cfg.detector.material == "Si"


def test_steel_cfg_content() -> None:
    cfg = load_config(DATA / "Steel.cfg")
    assert cfg.peaks["Fe"] == ["Ka", "Kb"] and cfg.peaks["W"] == ["L1", "L2", "L3"]
    assert cfg.excitation_energy == 16.0
    assert cfg.fit.background == "strip" and cfg.fit.xmin == 200 and cfg.fit.xmax == 1432
    assert cfg.matrix[0].material == "SRM_1155" and cfg.geometry.alpha_in == 45.0
    assert {f.name for f in cfg.filters} == {"atmosphere", "window"}
    assert cfg.beam_filters[0].material == "Al1"
    assert cfg.materials["SRM_1155"].fractions[0] == pytest.approx(0.1837)
    assert cfg.concentrations.reference == "Fe"
    assert cfg.extra["tube"]["anode"] == "Ag"  # unknown sections are kept


@pytest.mark.parametrize("name", CFGS)
@pytest.mark.parametrize("via", [".toml", ".cfg"])
def test_round_trip(name: str, via: str, tmp_path: Path) -> None:
    cfg = load_config(DATA / name)
    out = tmp_path / f"copy{via}"
    save_config(cfg, out)
    assert load_config(out) == cfg
    # and back again through the other format
    other = tmp_path / ("again.cfg" if via == ".toml" else "again.toml")
    save_config(load_config(out), other)
    assert load_config(other) == cfg


def test_bad_files(tmp_path: Path) -> None:
    p = tmp_path / "bad.cfg"
    p.write_text("not a config\n")
    with pytest.raises(ConfigError, match=r"bad\.cfg"):
        load_config(p)
    t = tmp_path / "bad.toml"
    t.write_text("[detector]\nnoize = 1\n")
    with pytest.raises(ConfigError, match="noize"):
        load_config(t)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.cfg")


@pytest.mark.parametrize("order", [0, 1, 2])
def test_higher_order_flag_both_ways(order: int, tmp_path: Path) -> None:
    """PyMca's [concentrations] usemultilayersecondary ↔ BeamDesk's concentrations.secondary."""
    text = (
        (DATA / "Steel.cfg")
        .read_text()
        .replace("usemultilayersecondary = 0", f"usemultilayersecondary = {order}")
    )
    (tmp_path / "s.cfg").write_text(text)
    cfg = load_config(tmp_path / "s.cfg")
    assert cfg.concentrations.secondary == order
    save_config(cfg, tmp_path / "s.toml")
    assert f"secondary = {order}" in (tmp_path / "s.toml").read_text()
    save_config(load_config(tmp_path / "s.toml"), tmp_path / "back.cfg")
    assert f"usemultilayersecondary = {order}" in (tmp_path / "back.cfg").read_text()
