""" "Open in a notebook" on the demo's own data: every generated notebook runs in a real
kernel against a live BeamDesk, and its outputs are checked against h5py and numpy.

The demo writers make one file of each kind (XRF map, XANES scan, SAXS frames, projection
stack, compound log; Blosc, LZ4 and bitshuffle compressed), plus a file of awkward types
(complex, booleans, text, scalars, NaN/inf, empty, 4-D) and one whose names are hostile.
One kernel serves the module; each notebook starts with ``%reset -f``.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import nbformat
import numpy as np
import pytest
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from beamdesk.demo import files as demo
from beamdesk.h5.opener import ProposalFiles
from beamdesk.h5.selection import parse_selection
from beamdesk.jupyter.notebooks import SUMMARY_TAG, BadSelection, dataset_notebook
from beamdesk.portal.models import ProposalState
from beamdesk.sandbox.operations import notebook_dataset
from beamdesk.settings import Settings
from tests.conftest import LiveServer, _sqlite_copy, make_settings
from tests.factories import make_proposal, make_world

NUMBER = "20260031"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
XRF, XANES, SAXS, STACK, LOG, ODD = (
    "raw/xrf_map.nxs",
    "raw/xanes_fe.nxs",
    "raw/saxs_frames.nxs",
    "raw/tomo_stack.nxs",
    "raw/beamline_log.h5",
    "processed/odd types.h5",
)
HOSTILE_FILES = ['raw/it\'s "odd".h5', "raw/it's \"odd\"\nprint('INJECTED-F')#.h5"]
HOSTILE_PATH = "/it's \"odd\"\nprint('INJECTED-P')#"


def write_odd_types(path: Path) -> None:
    """Datasets of every type the viewer shows that a plot could trip on."""
    rng = np.random.default_rng(7)
    with h5py.File(path, "w") as f:
        wave = np.exp(1j * np.linspace(0, 6, 40))[None, :] * np.arange(1, 11)[:, None]
        f["complex2d"] = wave.astype(np.complex64)
        f["bool1d"] = rng.random(50) > 0.5
        f["bool2d"] = rng.random((12, 9)) > 0.3
        f["text"] = "a scan's note"
        f["texts"] = np.array([b"alpha", b"beta", b"gamma"])
        f.create_dataset("vlen_texts", data=["x", "yy", "zzz"], dtype=h5py.string_dtype())
        f["scalar"] = 42.5
        nasty = rng.normal(10, 2, (3, 2, 16, 20))
        nasty[0, 0, 0, :5] = np.nan
        nasty[1, 1, 3, 3] = np.inf
        nasty[2, 0, 5, 5] = -np.inf
        f.create_dataset("nan_inf_4d", data=nasty, **hdf5plugin.Zstd())
        f["all_nan"] = np.full((4, 5), np.nan)
        f["empty"] = np.zeros((0,), "f4")
        f["ints2d"] = np.arange(-60, 60, dtype=np.int16).reshape(10, 12)


@dataclass
class World:
    settings: Settings
    server: LiveServer
    token: str

    def path(self, file: str) -> Path:
        return self.settings.data_root / NUMBER / file


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: Path) -> Iterator[World]:
    from beamdesk.db import make_engine, make_sessionmaker
    from beamdesk.portal.catalogue import index_data_root
    from beamdesk.web.app import create_app

    tmp = tmp_path_factory.mktemp("notebooks")
    settings = make_settings(tmp, _sqlite_copy(migrated_sqlite, tmp / "beamdesk.db"))
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine)() as db:
        people = make_world(db, tokens=True)
        make_proposal(db, people, NUMBER, ProposalState.data_collected)
        db.commit()
        token = people.tokens["pi"]
    root = settings.data_root / NUMBER
    elements = {"Fe": "K", "Zn": "K"}
    demo.write_xrf_map(
        root / XRF, rows=5, cols=7, elements=elements, seed=1, title="map", sample="shell",
        start=START,
    )  # fmt: skip
    demo.write_xanes_scan(root / XANES, start=START, seed=2, sample="goethite")
    demo.write_saxs_frames(
        root / SAXS, frames=3, start=START, seed=3, radius_nm=8.0, sample="silica"
    )
    demo.write_projection_stack(root / STACK, start=START, shape=demo.StackShape(6, 40, 48))
    demo.write_compound_log(root / LOG, start=START, seed=4)
    (root / ODD).parent.mkdir(parents=True, exist_ok=True)
    write_odd_types(root / ODD)
    for hostile in HOSTILE_FILES:
        with h5py.File(root / hostile, "w") as f:
            f[HOSTILE_PATH] = np.arange(12.0).reshape(3, 4)
    with make_sessionmaker(engine)() as db:
        index_data_root(db, settings.data_root)
        db.commit()
    engine.dispose()
    app = create_app(settings)
    with LiveServer(app) as server:
        yield World(settings, server, token)
    app.state.engine.dispose()


@pytest.fixture(scope="module")
def kernel(world: World) -> Iterator[AsyncKernelManager]:
    """One kernel for the module, with the environment the hub gives a user's server."""
    import os

    env = {
        "BEAMDESK_URL": world.server.url,
        "BEAMDESK_TOKEN": world.token,
        "BEAMDESK_PROPOSALS": str(world.settings.data_root),
    }
    km = AsyncKernelManager(kernel_name="python3")
    km.beamdesk_env = env  # type: ignore[attr-defined]
    run_sync(km.start_kernel)(env={**os.environ, **env})
    yield km
    run_sync(km.shutdown_kernel)(now=True)


def run(
    kernel: AsyncKernelManager, nb: nbformat.NotebookNode, *, without: str = ""
) -> nbformat.NotebookNode:
    """Execute ``nb`` in the shared kernel after a reset, optionally ``without`` one of
    the environment variables the hub sets; a probe of the NeXus axis is appended."""
    prelude = (
        "%reset -f\nimport os\n"
        f"os.environ.update({kernel.beamdesk_env!r})\n"  # type: ignore[attr-defined]
        f"os.environ.pop({without!r}, None)\ndel os"
    )
    nb.cells.insert(0, new_code_cell(prelude))
    nb.cells.append(new_code_cell("print('AXIS', repr(None if x_axis is None else x_axis[0]))"))
    NotebookClient(nb, km=kernel, timeout=120, kernel_name="python3").execute()
    nb.cells.pop(0)
    return nb


def outputs(cell: Any, kind: str) -> list[Any]:
    return [o for o in cell.outputs if o.output_type == kind]


def text_of(cell: Any) -> str:
    return "".join(o.text for o in outputs(cell, "stream") if o.name == "stdout")


def tagged(nb: nbformat.NotebookNode, tag: str) -> Any:
    (cell,) = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    return cell


def reference(file: Path, path: str, selection: str) -> Any:
    """The same data read independently, as h5py reads it (text decoded)."""
    with h5py.File(file, "r", locking=False) as f:
        dset = f[path]
        if h5py.check_string_dtype(dset.dtype):
            dset = dset.asstr()
        return dset[parse_selection(selection or None, f[path].shape).key]


def expected_stats(values: np.ndarray) -> dict[str, float]:
    if values.dtype.kind == "c":
        values = np.abs(values)
    values = values.astype(np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"finite": 0}
    return {
        "finite": finite.size,
        "sum": finite.sum(),
        "min": finite.min(),
        "max": finite.max(),
        "mean": finite.mean(),
    }


def check_stats(got: dict[str, Any], values: np.ndarray) -> None:
    want = expected_stats(values)
    assert got["finite"] == want["finite"]
    for key in ("sum", "min", "max", "mean"):
        if key in want:
            assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-9), key


def check_no_errors(nb: nbformat.NotebookNode) -> None:
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert not outputs(cell, "error"), cell.source
        stderr = "".join(o.text for o in outputs(cell, "stream") if o.name == "stderr")
        assert "Error" not in stderr and "Traceback" not in stderr, stderr


def pngs(cell: Any) -> list[str]:
    return [o.data["image/png"] for o in outputs(cell, "display_data") if "image/png" in o.data]


# file, dataset, selection, expected NeXus axis label of a 1-D plot (None: by index)
NUMERIC = [
    (XRF, "/entry/spectra/data", "", None),  # 3-D spectra, Blosc-LZ4
    (XRF, "/entry/spectra/data", "2,:,100:300", None),  # a 2-D slice of it
    (XRF, "/entry/spectra/data", "2,3", "energy (keV)"),  # one pixel's spectrum
    (XRF, "/entry/maps/total_counts", "", None),
    (XRF, "/entry/sum_spectrum/counts", "", "energy (keV)"),
    (XANES, "/entry/data/mu", "", "energy (keV)"),
    (XANES, "/entry/data/mu", "10:200:3", "energy (keV)"),
    (XANES, "/entry/data/I0", "", None),  # a monitor next to μ, not a signal: by index
    (SAXS, "/entry/data/data", "", None),  # 3 frames, bitshuffle-LZ4
    (SAXS, "/entry/data/data", "1", None),  # the frame on screen
    (SAXS, "/entry/reduced/I", "", "q (1/nm)"),
    (STACK, "/entry/data/data", "", None),  # Blosc bitshuffle
    (STACK, "/entry/data/data", "2,:,::3", None),
    (STACK, "/entry/data/data", ":,20", None),  # a sinogram (2-D) from the stack
    (STACK, "/entry/data/data", ":,20,30", "rotation_angle (degree)"),
    (ODD, "/complex2d", "", None),
    (ODD, "/bool1d", "", None),
    (ODD, "/bool2d", "", None),
    (ODD, "/nan_inf_4d", "", None),
    (ODD, "/nan_inf_4d", "1,1", None),
    (ODD, "/all_nan", "", None),
    (ODD, "/ints2d", "", None),
]


@pytest.mark.parametrize(("file", "path", "selection", "axis"), NUMERIC)
def test_numeric_notebook_summarises_and_plots(
    world: World, kernel: AsyncKernelManager, file: str, path: str, selection: str, axis: str
) -> None:
    nb = run(kernel, dataset_notebook(NUMBER, file, path, selection))
    check_no_errors(nb)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert source.index("import hdf5plugin") < source.index("h5py.File(")
    truth = np.asarray(reference(world.path(file), path, selection))
    h5cell = next(c for c in nb.cells if "h5py.File(" in c.source)
    assert "The API and the file agree." in text_of(h5cell)  # both paths ran and agree
    summary = json.loads(text_of(tagged(nb, SUMMARY_TAG)))
    assert summary["shape"] == list(truth.shape)
    check_stats(summary, truth)
    plot = nb.cells[-2]
    images = pngs(plot)
    if truth.ndim >= 1 and truth.size:
        assert len(images) == 1, plot.outputs
    assert f"AXIS {axis!r}" in text_of(nb.cells[-1])


def test_nd_plot_says_what_it_shows(world: World, kernel: AsyncKernelManager) -> None:
    nb = run(kernel, dataset_notebook(NUMBER, STACK, "/entry/data/data", ""))
    plot = nb.cells[-2].source
    assert "first frame" in plot and "sum over the first" in plot  # in the figure's titles
    assert "origin='lower'" in plot and "colorbar" in plot  # as H5Web draws images


@pytest.mark.parametrize(
    ("file", "path", "selection", "printed"),
    [
        (XRF, "/entry/title", "", "map"),
        (XRF, "/entry/instrument/source/energy", "", "2.4"),
        (ODD, "/text", "", "a scan's note"),
        (ODD, "/texts", "", "beta"),
        (ODD, "/vlen_texts", "1:", "zzz"),
        (ODD, "/scalar", "", "42.5"),
        (ODD, "/empty", "", "(0,)"),
    ],
)
def test_text_scalars_and_empty_are_printed_not_plotted(
    world: World,
    kernel: AsyncKernelManager,
    file: str,
    path: str,
    selection: str,
    printed: str,
) -> None:
    nb = run(kernel, dataset_notebook(NUMBER, file, path, selection))
    check_no_errors(nb)
    plot = nb.cells[-2]
    assert not pngs(plot) and printed in text_of(plot)
    summary = json.loads(text_of(tagged(nb, SUMMARY_TAG)))
    truth = np.asarray(reference(world.path(file), path, selection))
    assert summary["shape"] == list(truth.shape)
    if truth.dtype.kind in "iuf":
        check_stats(summary, truth)
    else:
        assert summary["values"] == [str(v) for v in truth.ravel()[:5]]


@pytest.mark.parametrize("selection", ["", "10:20"])
def test_compound_log_plots_its_numeric_columns(
    world: World, kernel: AsyncKernelManager, selection: str
) -> None:
    nb = run(kernel, dataset_notebook(NUMBER, LOG, "/entry/log/table", selection))
    check_no_errors(nb)
    truth = reference(world.path(LOG), "/entry/log/table", selection)
    summary = json.loads(text_of(tagged(nb, SUMMARY_TAG)))
    assert summary["shape"] == list(truth.shape)
    assert set(summary["fields"]) == set(truth.dtype.names)
    for name in truth.dtype.names:
        column = truth[name]
        check_stats(
            summary["fields"][name], column.astype(np.uint8) if column.dtype == bool else column
        )
    assert len(pngs(nb.cells[-2])) == 1
    assert "columns: time_s, ring_current_mA" in text_of(nb.cells[-2])  # and the first rows


@pytest.mark.parametrize("file", HOSTILE_FILES)
def test_hostile_file_and_dataset_names_stay_literals(
    world: World, kernel: AsyncKernelManager, file: str
) -> None:
    """Quotes and newlines in names: valid code, the names only as string constants."""
    nb = dataset_notebook(NUMBER, file, HOSTILE_PATH, "0:2")
    constants: dict[str, Any] = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            tree = ast.parse(cell.source)
            names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            assert not any("INJECTED" in n for n in names)
            for node in tree.body:
                if (
                    isinstance(node, ast.Assign)
                    and isinstance(node.targets[0], ast.Name)
                    and isinstance(node.value, ast.Constant)
                ):
                    constants[node.targets[0].id] = node.value.value
        else:
            assert "\n" not in cell.source.split("\n\n")[0]  # the title stays one line
    assert constants["FILE"] == file and constants["DATASET"] == HOSTILE_PATH
    run(kernel, nb)
    check_no_errors(nb)
    lines = "".join(text_of(c) for c in nb.cells if c.cell_type == "code").splitlines()
    assert not {"INJECTED-F", "INJECTED-P"} & set(lines)  # nothing printed them as code
    summary = json.loads(text_of(tagged(nb, SUMMARY_TAG)))
    assert summary["sum"] == float(np.arange(8.0).sum())  # rows 0 and 1 of arange(12)
    if "\n" not in file:  # the API serves this one: both readings agree
        h5cell = next(c for c in nb.cells if "h5py.File(" in c.source)
        assert "The API and the file agree." in text_of(h5cell)


@pytest.mark.parametrize("without", ["BEAMDESK_URL", "BEAMDESK_PROPOSALS"])
def test_either_reading_alone_is_enough(
    world: World, kernel: AsyncKernelManager, without: str
) -> None:
    """Outside the hub (no proposals folder) the API's copy is used; without the API
    (no URL), the file's."""
    nb = run(kernel, dataset_notebook(NUMBER, SAXS, "/entry/data/data", "2"), without=without)
    check_no_errors(nb)
    said = "".join(text_of(c) for c in nb.cells if c.cell_type == "code")
    assert ("not mounted here" in said) == (without == "BEAMDESK_PROPOSALS")
    assert ("The API did not send this data" in said) == (without == "BEAMDESK_URL")
    check_stats(
        json.loads(text_of(tagged(nb, SUMMARY_TAG))),
        reference(world.path(SAXS), "/entry/data/data", "2"),
    )
    assert len(pngs(nb.cells[-2])) == 1


@pytest.mark.parametrize(
    "selection", ["0'); print('INJECTED", "0\nprint(1)", "0]; import os", "__import__('os')"]
)
def test_hostile_selection_is_refused(selection: str) -> None:
    with pytest.raises(BadSelection):
        dataset_notebook(NUMBER, XRF, "/entry/spectra/data", selection)


def test_an_nxdata_group_opens_its_own_signal(world: World) -> None:
    """A group picked in the viewer: its signal (what H5Web shows and slices), not the
    file's default plot."""
    files = ProposalFiles(world.settings.data_root / NUMBER)
    assert notebook_dataset(files, XRF, "/entry/spectra")["path"] == "/entry/spectra/data"
    assert notebook_dataset(files, XRF, "/entry/spectra")["shape"] == [5, 7, 2048]
    assert notebook_dataset(files, XRF, "/entry")["path"] == "/entry/maps/total_counts"
    assert notebook_dataset(files, XRF, "")["path"] == "/entry/maps/total_counts"
