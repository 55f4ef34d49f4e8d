"""NeXus lines as CSV: the numbers h5py reads, with axis values, errors and auxiliary signals."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import h5py
import numpy as np

from tests.h5.builders import H5World
from tests.nexus import nx_data, nx_entry

EXAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nexus-examples"


def table(text: str) -> tuple[list[str], np.ndarray]:
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    return rows[0], np.array(rows[1:], dtype=float)


def write_scan(path: Path) -> None:
    with h5py.File(path, "w") as fh:
        entry = nx_entry(fh)
        nx_data(
            entry,
            "plot",
            "mu",
            np.linspace(0.1, 1.4, 20) ** 2,
            axes={"energy": np.linspace(7.0, 7.2, 20)},
            units={"mu": "1", "energy": "keV"},
            auxiliary_signals={"I0": np.arange(20) + 1e5},
            errors=np.full(20, 0.01),
        )
        nx_data(
            entry,
            "image",
            "counts",
            np.arange(12.0).reshape(3, 4),
            axes={
                "y": np.array([10.0, 20.0, 30.0]),
                "x": np.array([0.0, 0.5, 1.0, 1.5, 2.0]),  # bin edges: one more than points
            },
        )


def test_line_with_axis_errors_and_auxiliary_signal(h5world: H5World) -> None:
    write_scan(h5world.root / "raw" / "scan.nxs")
    r = h5world.get("line", file="raw/scan.nxs", path="/entry/plot")
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"] == 'attachment; filename="scan_plot.csv"'
    header, values = table(r.text)
    assert header == ["energy (keV)", "mu (1)", "mu_errors", "I0"]
    with h5py.File(h5world.root / "raw" / "scan.nxs") as fh:
        for k, name in enumerate(("energy", "mu", "mu_errors", "I0")):
            np.testing.assert_array_equal(values[:, k], fh[f"/entry/plot/{name}"][()])


def test_row_of_an_image_uses_bin_centres(h5world: H5World) -> None:
    write_scan(h5world.root / "raw" / "scan.nxs")
    r = h5world.get("line", file="raw/scan.nxs", path="/entry/image", selection="1,1:4")
    header, values = table(r.text)
    assert header == ["x", "counts"]
    np.testing.assert_array_equal(values[:, 0], [0.75, 1.25, 1.75])
    np.testing.assert_array_equal(values[:, 1], [5.0, 6.0, 7.0])
    column = h5world.get("line", file="raw/scan.nxs", path="/entry/image", selection=":,2")
    header, values = table(column.text)
    assert header == ["y", "counts"] and values[:, 1].tolist() == [2.0, 6.0, 10.0]


def test_not_a_line_is_a_clear_422(h5world: H5World) -> None:
    write_scan(h5world.root / "raw" / "scan.nxs")
    whole = h5world.get("line", file="raw/scan.nxs", path="/entry/image")
    assert whole.status_code == 422 and "exactly one dimension" in whole.json()["detail"]
    group = h5world.get("line", file="raw/scan.nxs", path="/entry")
    assert group.status_code == 422 and "not an NXdata" in group.json()["detail"]
    assert (
        h5world.get("line", who="outsider", file="raw/scan.nxs", path="/entry/plot").status_code
        == 404
    )


def test_a_real_scan_from_another_facility(h5world: H5World) -> None:
    source = EXAMPLES / "DLS_i16_hdf5_538039.nxs"
    if not source.exists():
        return
    (h5world.root / "raw" / "i16.nxs").write_bytes(source.read_bytes())
    # GDA writes NeXus before 2014: no @signal; the axis is the dataset with axis=1, primary=1.
    unnamed = h5world.get("line", file="raw/i16.nxs", path="/entry1/roi1")
    assert unnamed.status_code == 422 and "signal=" in unnamed.json()["detail"]
    r = h5world.get("line", file="raw/i16.nxs", path="/entry1/roi1", signal="roi1_sum")
    assert r.status_code == 200, r.text
    header, values = table(r.text)
    assert header[:2] == ["eta", "roi1_sum"]
    with h5py.File(source) as fh:
        np.testing.assert_array_equal(values[:, 0], fh["/entry1/roi1/eta"][()])
        np.testing.assert_array_equal(values[:, 1], fh["/entry1/roi1/roi1_sum"][()])
