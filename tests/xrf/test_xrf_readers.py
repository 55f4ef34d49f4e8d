"""Readers on every real file and one-line errors on malformed input."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from xrf_synth import DATA

from beamdesk.xrf.readers import SpectrumReadError, read_spectrum


def test_steel_spe() -> None:
    s = read_spectrum(DATA / "Steel.spe")
    assert s.counts.size == 2048
    assert s.counts[:4].tolist() == [0.0, 9.0, 5.0, 5.0]  # first values in the file


def test_xrfspectrum_mca() -> None:
    s = read_spectrum(DATA / "XRFSpectrum.mca")
    assert s.counts.size == 4096
    assert s.counts[:2].tolist() == [0.0, 1.0]
    # the Co Kα peak is announced "close to channel 1474" in the file header
    assert abs(int(np.argmax(s.counts[1400:1550])) + 1400 - 1474) < 10


@pytest.mark.parametrize("path", sorted(DATA.iterdir()), ids=lambda p: p.name)
def test_every_shared_file(path: Path) -> None:
    if path.suffix in (".spe", ".mca"):
        assert read_spectrum(path).counts.sum() > 0
    else:
        with pytest.raises(SpectrumReadError) as info:
            read_spectrum(path)
        assert "\n" not in str(info.value) and path.name in str(info.value)


def test_columns_csv_and_spec(tmp_path: Path) -> None:
    y = np.arange(100, dtype=float) % 7
    (tmp_path / "a.txt").write_text("\n".join(f"{i} {v}" for i, v in enumerate(y)))
    assert read_spectrum(tmp_path / "a.txt").counts.tolist() == y.tolist()
    (tmp_path / "a.csv").write_text(
        "channel,counts\n" + "\n".join(f"{i},{v}" for i, v in enumerate(y))
    )
    assert read_spectrum(tmp_path / "a.csv").counts.tolist() == y.tolist()
    body = " ".join(str(int(v)) for v in y[:50]) + " \\\n " + " ".join(str(int(v)) for v in y[50:])
    (tmp_path / "s.mca").write_text(f"#F x\n#S 1 mca\n#@MCA %16C\n#@CALIB 0.1 0.01 0\n@A {body}\n")
    s = read_spectrum(tmp_path / "s.mca")
    assert s.counts.tolist() == y.tolist() and s.calibration == (0.1, 0.01, 0.0)


def test_hdf5_index(tmp_path: Path) -> None:
    data = np.arange(4 * 5 * 16).reshape(4, 5, 16)
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["map"] = data
    s = read_spectrum(f"{tmp_path}/m.h5::/map[2,3]")
    assert s.counts.tolist() == data[2, 3].tolist()
    whole = read_spectrum(f"{tmp_path}/m.h5::/map")  # a map without index: sum
    assert whole.counts.tolist() == data.sum(axis=(0, 1)).tolist()


@pytest.mark.parametrize(
    "content,message",
    [
        ("$SPEC_ID:\n\n$DATA:\n0 99\n1 2 3\n", "announces 100 channels"),
        ("$SPEC_ID:\n", "no $DATA"),
        ("", "no numeric data"),
        ("1 2\n3\n", "different numbers of columns"),
        ("1\n2\nthree\n", "line 3"),
    ],
)
def test_malformed(tmp_path: Path, content: str, message: str) -> None:
    p = tmp_path / ("bad.spe" if content.startswith("$") else "bad.txt")
    p.write_text(content)
    with pytest.raises(SpectrumReadError) as info:
        read_spectrum(p)
    text = str(info.value)
    assert message in text and "\n" not in text and "bad." in text


def test_hdf5_errors(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["map"] = np.zeros((2, 3, 16))
    for spec, message in [
        (f"{tmp_path}/m.h5::/nope", "no dataset"),
        (f"{tmp_path}/m.h5::/map[5,0]", "out of range"),
        (f"{tmp_path}/m.h5::/map[1]", "give 2 indices"),
        (f"{tmp_path}/m.h5", "HDF5 file"),
    ]:
        with pytest.raises(SpectrumReadError, match=message):
            read_spectrum(spec)
    (tmp_path / "bin.dat").write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(SpectrumReadError, match="binary"):
        read_spectrum(tmp_path / "bin.dat")
