"""Exports of files BeamDesk did not write: the seven facility files in shared/data/nexus-examples.

SLS, APS (area detector, NXsas) and Diamond i16 files are copied unchanged into a proposal; the
whole file and its default plot are exported as HDF5 subsets, and 2-D frames as TIFF and PNG.
Each download is reopened with h5py / tifffile / PIL and compared, value by value, with h5py's
reading of the source file.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image

from beamdesk.h5 import nexus
from tests.h5.builders import H5World
from tests.h5.test_exports_reopen import follow_defaults, only_hard_links, saved, subset

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "nexus-examples"
FILES = sorted(p.name for p in EXAMPLES.glob("*") if p.suffix in (".hdf5", ".nxs"))

pytestmark = pytest.mark.skipif(not FILES, reason="shared/data/nexus-examples is not here")


@pytest.fixture
def facility(h5world: H5World) -> H5World:
    for name in FILES:
        shutil.copyfile(EXAMPLES / name, h5world.root / "raw" / name)
    return h5world


def hard_tree(f: h5py.File) -> tuple[dict[str, h5py.Dataset], list[str]]:
    """Datasets reachable through hard links only, and the paths of every other kind of link."""
    datasets: dict[str, h5py.Dataset] = {}
    others: list[str] = []

    def walk(group: h5py.Group) -> None:
        for name in group:
            path = f"{group.name.rstrip('/')}/{name}"
            if not isinstance(group.get(name, getlink=True), h5py.HardLink):
                others.append(path)
            elif isinstance(group[name], h5py.Group):
                walk(group[name])
            else:
                datasets[path] = group[name]

    walk(f["/"])
    return datasets, others


def assert_same_attrs(source: h5py.HLObject, got: h5py.HLObject, *, skip: set[str]) -> None:
    for key, value in source.attrs.items():
        if key in skip:
            continue
        assert key in got.attrs, f"{source.name}@{key} lost"
        np.testing.assert_array_equal(np.asarray(got.attrs[key]), np.asarray(value))


@pytest.mark.parametrize("name", FILES)
def test_whole_facility_file_reopens_with_every_value(
    facility: H5World, tmp_path: Path, name: str
) -> None:
    out = saved(facility, subset(facility, f"raw/{name}", "/"), tmp_path)
    with h5py.File(out, "r") as got, h5py.File(EXAMPLES / name, "r") as src:
        only_hard_links(got)
        datasets, links = hard_tree(src)
        assert len(datasets) > 20
        for path, dataset in datasets.items():
            assert path in got, f"{name}:{path} missing from the subset"
            copy = got[path]
            assert copy.shape == dataset.shape and copy.dtype == dataset.dtype, path
            np.testing.assert_array_equal(copy[()], dataset[()])
            assert_same_attrs(dataset, copy, skip=set())
        # Diamond's i16 file links two detector files that are not in the proposal: they are
        # left out and named, not followed.
        omitted = [str(s) for s in got.attrs.get("subset_omitted", [])]
        for path in links:
            if path not in got:
                assert any(line.startswith(f"{path}:") for line in omitted), path
        assert_same_attrs(src["/"], got["/"], skip={"default", "file_name", "file_time"})


@pytest.mark.parametrize("name", FILES)
def test_default_plot_of_a_facility_file_reopens_as_the_same_plot(
    facility: H5World, tmp_path: Path, name: str
) -> None:
    with h5py.File(EXAMPLES / name, "r") as src:
        signal = nexus.default_signal(src)
        parent = src[signal].parent.name
        values = src[signal][()]
    out = saved(facility, subset(facility, f"raw/{name}", parent), tmp_path)
    with h5py.File(out, "r") as got:
        only_hard_links(got)
        np.testing.assert_array_equal(got[signal][()], values)
        # The subset plots what the source plots, by H5Web's rule where @default is written.
        assert nexus.default_signal(got) == signal
        if "default" in got.attrs:
            plot = follow_defaults(got)
            named = plot.attrs["signal"]
            named = named.decode() if isinstance(named, bytes) else named
            assert f"{plot.name}/{named}" == signal


FRAMES = [
    ("APS_EPICSareaDetector_hdf5_AgBehenate_228.hdf5", "/entry/data/data", None),
    ("APS_NXsas_hdf5_nexus-example.hdf5", "/entry/data/frames", "4"),
]


@pytest.mark.parametrize(("name", "path", "selection"), FRAMES)
def test_facility_frames_as_tiff_and_png(
    facility: H5World, name: str, path: str, selection: str | None
) -> None:
    with h5py.File(EXAMPLES / name, "r") as src:
        frame = src[path][int(selection)] if selection else src[path][()]
    frame = np.squeeze(frame)
    assert frame.ndim == 2
    extra = {"selection": selection} if selection else {}
    r = facility.get("data", file=f"raw/{name}", path=path, format="tiff", **extra)
    assert r.status_code == 200, r.text
    got = tifffile.imread(io.BytesIO(r.content))
    assert got.dtype == frame.dtype.newbyteorder("=")
    np.testing.assert_array_equal(np.squeeze(got), frame)

    r = facility.get("data", file=f"raw/{name}", path=path, format="png", **extra)
    assert r.status_code == 200, r.text
    picture = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA"))
    rows, cols = frame.shape
    # One pixel per value (a colour bar to the right), and distinct values give distinct colours.
    assert picture.shape[0] >= rows and picture.shape[1] > cols
    image = picture[:rows, :cols, :3].reshape(-1, 3)
    assert len(np.unique(image, axis=0)) >= min(64, len(np.unique(frame)))
