"""Map fits: truth recovery, honest uncertainties, low counts, dask, NeXus layout."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from xrf_synth import ELEMENTS, write_map

from beamdesk.xrf.fit import fit_spectrum
from beamdesk.xrf.mapfit import fit_map, plan_blocks

DS = "entry/data/spectra"


def _truth(shape: tuple[int, int], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return {
        "Ti": 200 + 100 * rng.random(shape),
        "Fe": 2000 + 30 * xx,  # gradient
        "Cu": np.where((yy - 10) ** 2 + (xx - 15) ** 2 < 36, 1500.0, 50.0),  # a particle
        "Zn": 300 + 10 * yy,
        "Sr": np.full(shape, 400.0),
    }


def test_plan_blocks_follow_chunks() -> None:
    blocks = plan_blocks((100, 80, 2048), (7, 16, 2048), 4, target_bytes=2**20)
    covered = np.zeros((100, 80), dtype=int)
    for b in blocks:
        covered[b] += 1
        assert b[0].start % 7 == 0 and b[1].start % 16 == 0  # chunk-aligned
    assert (covered == 1).all()


def test_map_on_dask_matches_single_pixel_fits(tmp_path: Path, synthetic_cfg) -> None:
    from distributed import Client, LocalCluster

    truth = _truth((20, 30))
    write_map(tmp_path / "m.h5", truth, continuum=5.0, seed=2)
    calls = []
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        result = fit_map(
            tmp_path / "m.h5",
            DS,
            synthetic_cfg,
            tmp_path / "out.h5",
            client=client,
            quantify=False,
            progress=lambda d, t: calls.append(d),
            block_bytes=200_000,
        )
    assert calls[-1] == 600 and len(calls) > 2 and calls == sorted(calls)
    areas, sigmas = result.read("parameters"), result.read("uncertainties")
    with h5py.File(tmp_path / "m.h5") as f:
        spectra = f[DS][()].astype(float)
    # The single-spectrum fit models the continuum by a polynomial and reweights with its own
    # model; the map fit uses the sum continuum's shape and sum-model weights. Both are
    # unbiased, so they agree to a fraction of σ, not exactly.
    diffs = []
    for i, j in [(0, 0), (10, 15), (19, 29), (5, 22), (12, 3), (3, 9)]:
        single = fit_spectrum(spectra[i, j], synthetic_cfg, linear=True, params=result.params)
        for el in ELEMENTS:
            g = single.groups[f"{el} K"]
            diffs.append((areas[f"{el} K"][i, j] - g.area) / g.sigma)
            assert sigmas[f"{el} K"][i, j] == pytest.approx(g.sigma, rel=0.1)
    assert np.max(np.abs(diffs)) < 1.0 and np.median(np.abs(diffs)) < 0.3
    # and against the truth: pixel-to-pixel scatter is what the uncertainties say
    for el in ELEMENTS:
        pull = (areas[f"{el} K"] - truth[el]) / sigmas[f"{el} K"]
        assert abs(pull.mean()) < 0.2 and 0.85 < pull.std() < 1.15, el


@pytest.mark.slow
def test_low_counts_unbiased_and_honest(tmp_path: Path, synthetic_cfg) -> None:
    """10 counts per peak: mean area within a few % of truth, σ equals the real scatter."""
    shape = (60, 50)
    truth = {el: np.full(shape, 10.0) for el in ELEMENTS}
    write_map(tmp_path / "low.h5", truth, continuum=0.05, seed=4)
    r = fit_map(
        tmp_path / "low.h5", DS, synthetic_cfg, tmp_path / "o.h5", workers=0, quantify=False
    )
    areas, sigmas = r.read("parameters"), r.read("uncertainties")
    for el in ELEMENTS:
        a, s = areas[f"{el} K"], sigmas[f"{el} K"]
        assert a.mean() == pytest.approx(10.0, rel=0.04), el
        assert a.std() == pytest.approx(np.sqrt(np.mean(s**2)), rel=0.1), el
        assert np.all(s > 0)
    # PyMca-style data weighting (σ² = max(counts, 1)) is biased low on the same data
    with h5py.File(tmp_path / "low.h5") as f:
        y = f[DS][:20].reshape(-1, 1024).astype(float)
    sl = slice(60, 1001)
    from beamdesk.xrf.model import SpectrumModel

    d = SpectrumModel(synthetic_cfg, np.arange(1024.0)[sl]).basis(r.params)
    d = np.hstack([d, np.ones((d.shape[0], 1))])
    biased = []
    for row in y:
        w = 1.0 / np.maximum(row[sl], 1.0)
        coef = np.linalg.lstsq(d * np.sqrt(w)[:, None], row[sl] * np.sqrt(w), rcond=None)[0]
        biased.append(coef[:5].mean())
    assert np.mean(biased) < 0.9 * 10.0


def test_nexus_layout(tmp_path: Path, synthetic_cfg) -> None:
    truth = _truth((8, 12))
    write_map(tmp_path / "m.h5", truth, continuum=5.0, seed=3, chunks=(4, 4, 1024))
    out = tmp_path / "res.h5"
    r = fit_map(tmp_path / "m.h5", DS, synthetic_cfg, out, workers=0)
    assert r.pixels == 96 and out.exists()
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed
    with h5py.File(out) as f:
        assert f.attrs["default"] == "entry"
        entry = f["entry"]
        assert entry.attrs["NX_class"] == "NXentry"
        proc = entry["xrf_fit"]
        assert proc.attrs["NX_class"] == "NXprocess"
        assert proc["program"][()].decode() == "beamdesk.xrf"
        assert "[fit]" in proc["configuration/data"][()].decode()
        assert proc["input/file"][()].decode().endswith("m.h5")
        assert proc["input/path"][()].decode() == DS
        for what in ("parameters", "uncertainties", "massfractions"):
            g = proc[f"results/{what}"]
            assert g.attrs["NX_class"] == "NXdata"
            assert g.attrs["signal"] in g
            assert list(g.attrs["axes"]) == ["axis0", "axis1"]
            for el in ELEMENTS:
                assert g[f"{el}_K"].shape == (8, 12)
        chi = proc["results/diagnostics/chisq"][()]
        assert chi.shape == (8, 12) and 0.7 < np.median(chi) < 1.3
        assert proc["sum_spectrum"].attrs["signal"] == "counts"


def test_map_errors(tmp_path: Path, synthetic_cfg) -> None:
    from beamdesk.xrf.mapfit import MapFitError

    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["one"] = np.zeros(16)
    with pytest.raises(MapFitError, match="no dataset"):
        fit_map(tmp_path / "x.h5", "/nope", synthetic_cfg, tmp_path / "o.h5", workers=0)
    with pytest.raises(MapFitError, match="at least 2 axes"):
        fit_map(tmp_path / "x.h5", "/one", synthetic_cfg, tmp_path / "o.h5", workers=0)
    with pytest.raises(MapFitError, match="no such file"):
        fit_map(tmp_path / "missing.h5", "/one", synthetic_cfg, tmp_path / "o.h5", workers=0)


def test_map_mass_fraction_uncertainties(tmp_path: Path, synthetic_cfg) -> None:
    """Internal standard Fe: per-pixel mass-fraction σ (areas of the group and of Fe, with
    their covariance) matches the pixel-to-pixel scatter around the true mass fractions."""
    from beamdesk.xrf.config import Layer, MaterialDef
    from beamdesk.xrf.quant import mass_fractions

    cfg = synthetic_cfg
    cfg.materials["Std"] = MaterialDef(["H2O", "Fe"], [0.999, 0.001], 1.0, 1e-4)
    cfg.matrix = [Layer("Matrix", "Std", 1.0, 1e-4)]
    cfg.concentrations.reference = "Fe"
    shape = (20, 30)
    truth = {
        "Ti": np.full(shape, 800.0),
        "Fe": np.full(shape, 600.0),
        "Cu": np.full(shape, 2000.0),
        "Zn": np.full(shape, 400.0),
        "Sr": np.full(shape, 1000.0),
    }
    write_map(tmp_path / "m.h5", truth, continuum=3.0, seed=9)
    r = fit_map(tmp_path / "m.h5", DS, cfg, tmp_path / "o.h5", workers=0)
    mass, sig = r.read("massfractions"), r.read("massfraction_uncertainties")
    true_c = mass_fractions({f"{el} K": float(a[0, 0]) for el, a in truth.items()}, cfg)
    assert np.all(sig["Fe K"] == 0.0)
    for el in ("Ti", "Cu", "Zn", "Sr"):
        g = f"{el} K"
        pull = (mass[g] - true_c[g]) / sig[g]
        assert abs(pull.mean()) < 0.2 and 0.85 < pull.std() < 1.15, (el, pull.std())
