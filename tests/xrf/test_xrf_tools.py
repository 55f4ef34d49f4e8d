"""identify, ROI, RGB and decomposition helpers."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from beamdesk.xrf import background, decompose, identify, rgb, roi


def test_identify_orders_by_strength_and_distance() -> None:
    found = identify.identify(8.047, 0.03)
    assert found[0].element == "Cu" and found[0].line == "KL3"
    assert all(abs(c.distance) <= 0.03 for c in found)
    # with 5 keV excitation nothing above its edge can appear
    assert all(c.element != "Cu" for c in identify.identify(8.047, 0.03, excitation=5.0))


def test_roi_window_parsing_and_channels() -> None:
    assert roi.parse_window("Fe:6.2-6.6") == ("Fe", 6.2, 6.6)
    _name, lo, hi = roi.parse_window("Cu K")
    assert lo < 8.047 < hi
    assert roi.channel_range(1.0, 1.1, 0.0, 0.01, 1000) == (100, 111)
    with pytest.raises(ValueError):
        roi.channel_range(50.0, 60.0, 0.0, 0.01, 1000)


def test_roi_maps_equal_direct_sums(tmp_path: Path) -> None:
    data = np.random.default_rng(0).poisson(3.0, (9, 11, 256)).astype(np.uint16)
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.create_dataset("d", data=data, chunks=(2, 3, 256))
    maps = roi.roi_maps(str(tmp_path / "m.h5"), "d", [("a", 0.5, 0.999)], zero=0.0, gain=0.01)
    assert np.array_equal(maps["a"], data[..., 50:100].sum(axis=-1))


def test_rgb_scaling() -> None:
    v = np.array([[0.0, 1.0], [2.0, 4.0]])
    assert rgb.scale_channel(v).max() == 1.0 and rgb.scale_channel(v).min() == 0.0
    assert rgb.scale_channel(v, transform="sqrt")[1, 0] == pytest.approx(np.sqrt(2) / 2)
    assert rgb.scale_channel(v, transform="log")[1, 1] == 1.0
    img = rgb.rgb_image(v, None, v, scaling="percentile")
    assert img.shape == (2, 2, 3) and img.dtype == np.uint8 and img[..., 1].max() == 0
    d = rgb.scatter_data(v, 2 * v + 1)
    assert d["pearson_r"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        rgb.scale_channel(v, scaling="bogus")


def test_snip_vectorised_equals_per_spectrum() -> None:
    rng = np.random.default_rng(1)
    x = np.linspace(0, 1, 512)
    spectra = rng.poisson(
        100 * np.exp(-3 * x) + 500 * np.exp(-(((x - 0.5) / 0.01) ** 2)), (4, 512)
    ).astype(float)
    many = background.snip(spectra, 20)
    for i in range(4):
        assert np.allclose(many[i], background.snip(spectra[i], 20))
    # the peak is removed, the smooth continuum kept (within noise)
    assert many[0, 256] < 150


def test_strip_keeps_smooth_curves() -> None:
    x = np.linspace(0, 1, 300)
    smooth = 50 + 30 * x
    peak = 1000 * np.exp(-(((x - 0.5) / 0.01) ** 2))
    b = background.strip(smooth + peak, width=3, iterations=3000)
    assert np.allclose(b[10:-10], smooth[10:-10], rtol=0.05)


def test_pca_and_nmf_find_two_sources(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    c = np.arange(128)
    s1 = np.exp(-(((c - 30) / 3.0) ** 2))
    s2 = np.exp(-(((c - 90) / 3.0) ** 2))
    w1 = rng.random((10, 12))
    w2 = rng.random((10, 12))
    data = rng.poisson(200 * (w1[..., None] * s1 + w2[..., None] * s2) + 1)
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.create_dataset("d", data=data, chunks=(5, 6, 128))
    p = decompose.pca(str(tmp_path / "m.h5"), "d", 3)
    assert p.scores.shape == (10, 12, 3) and p.explained[2] < 0.2 * p.explained[:2].sum()
    n = decompose.nmf_file(str(tmp_path / "m.h5"), "d", 2, binning=1)
    peaks = sorted(int(np.argmax(comp)) for comp in n.components)
    assert abs(peaks[0] - 30) <= 1 and abs(peaks[1] - 90) <= 1
