"""Notebooks that load exactly one dataset (or slice), or re-run one XRF analysis.

The generated code reads the data twice, through ``beamdesk_client`` (the API, works
anywhere; the ``beamdesk-client`` distribution) and with h5py from the proposal folder
linked in the user's home (fast, works inside BeamDesk's hub; ``hdf5plugin`` first, for
Blosc/LZ4/bitshuffle files), checks both agree (either alone is enough), then summarises
and plots it whatever its type. Everything
the user chose is written into the code as Python literals (``repr``) and into Markdown
escaped, and selections are checked against a strict grammar first, so no request
parameter can inject code into a notebook. The cells' code is plain text below: it runs
in the user's kernel, with numpy, h5py, hdf5plugin and matplotlib only.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from beamdesk.errors import Invalid

if TYPE_CHECKING:
    import nbformat


# nbformat is imported when a notebook is made, not with the web app: its JSON-schema
# validation stack costs ~35 MiB and ~2 s at import in every server process.
def new_code_cell(source: str, **kwargs: Any) -> Any:
    from nbformat.v4 import new_code_cell as make

    return make(source, **kwargs)


def new_markdown_cell(source: str, **kwargs: Any) -> Any:
    from nbformat.v4 import new_markdown_cell as make

    return make(source, **kwargs)


def new_notebook(**kwargs: Any) -> Any:
    from nbformat.v4 import new_notebook as make

    return make(**kwargs)


_MEMBER = r"\s*(-?\d+|-?\d*\s*:\s*-?\d*(\s*:\s*\d*)?)\s*"
SELECTION = re.compile(rf"^({_MEMBER})(,{_MEMBER})*$")
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
SUMMARY_TAG = "beamdesk-summary"

API_CELL = """\
def decoded(values):
    \"\"\"Text as str: the API sends HDF5 strings as bytes.\"\"\"
    array = np.asarray(values)
    first = array.flat[0] if array.size else None
    if array.dtype.kind == 'S' or (array.dtype.kind == 'O' and isinstance(first, bytes)):
        as_str = np.vectorize(lambda v: v.decode(errors='replace'), otypes=[object])
        return as_str(array)
    return values


try:
    bd = Client.from_env()
    data = decoded(bd.open(PROPOSAL, FILE, DATASET, SELECTION or None))
except Exception as exc:  # e.g. too large to send, or no BEAMDESK_URL: h5py below still reads it
    data = None
    print(f'The API did not send this data ({type(exc).__name__}: {exc})')
else:
    print(data.shape, data.dtype)"""

AXIS_CELL = '''\
def _text(value):
    return value.decode(errors='replace') if isinstance(value, bytes) else str(value)


def _member(text):
    """One selection member ('3', ':', '0:10:2') as an int or a slice."""
    if ':' not in text:
        return int(text)
    return slice(*[int(p) if p.strip() else None for p in text.split(':')])


def nexus_axis(dset, selection):
    """(label, values) of the NeXus axis of a 1-D result of an NXdata signal, or None."""
    try:
        group = dset.parent
        name = dset.name.rsplit('/', 1)[-1]
        if _text(group.attrs.get('NX_class', '')) != 'NXdata':
            return None
        if _text(group.attrs.get('signal', '')) != name:
            return None
        members = [m.strip() for m in selection.split(',')] if selection else []
        members += [':'] * (dset.ndim - len(members))
        kept = [d for d, m in enumerate(members) if ':' in m]
        if len(kept) != 1:
            return None
        dim = kept[0]
        axes = group.attrs.get('axes', [])
        axes = [axes] if isinstance(axes, (str, bytes)) else list(np.atleast_1d(axes))
        axis = _text(axes[dim]) if dim < len(axes) else '.'
        if axis in ('', '.') or axis not in group:
            return None
        values = group[axis]
        if values.ndim != 1 or values.shape[0] != dset.shape[dim]:
            return None
        units = _text(values.attrs.get('units', ''))
        return (f'{axis} ({units})' if units else axis), values[_member(members[dim])]
    except Exception:  # an axis is a nicety; never fail because of one
        return None'''

SUMMARY_CELL = '''\
import json


def numeric(values):
    """Values to compute with: complex as magnitude, booleans as 0/1; None for text/tables."""
    values = np.asarray(values)
    if values.dtype.names is None and values.dtype.kind == 'c':
        return np.abs(values)
    if values.dtype.names is None and values.dtype.kind == 'b':
        return values.astype(np.uint8)
    if values.dtype.names is None and values.dtype.kind in 'iuf':
        return values
    return None


def stats(values):
    """sum, min, max and mean of the finite values (NaN and inf left out)."""
    if values.dtype.kind != 'f':  # integers: every value counts
        if values.size == 0:
            return {'finite': 0}
        count, total = values.size, float(np.sum(values, dtype=np.float64))
        low, high = values.min(), values.max()
    else:  # reductions over the finite values only, without a copy
        finite = np.isfinite(values)
        count = int(finite.sum())
        if count == 0:
            return {'finite': 0}
        total = float(np.sum(values, where=finite, dtype=np.float64))
        low = np.min(values, where=finite, initial=np.inf)
        high = np.max(values, where=finite, initial=-np.inf)
    return {'finite': count, 'sum': total, 'min': float(low), 'max': float(high),
            'mean': total / count}


def summary(data):
    if data is None:
        return {'error': 'no data: neither the API nor the file could be read'}
    values = np.asarray(data)
    out = {'shape': list(values.shape), 'dtype': str(values.dtype)}
    if numeric(values) is not None:
        out.update(stats(numeric(values)))
    elif values.dtype.names:
        out['fields'] = {
            name: stats(numeric(values[name]))
            for name in values.dtype.names
            if numeric(values[name]) is not None and values.dtype[name].shape == ()
        }
    else:  # text, references, variable-length values
        out['values'] = [str(v)[:200] for v in values.ravel()[:5]]
    return out


print(json.dumps(summary(data)))'''

PLOT_CELL = """\
import matplotlib.pyplot as plt

TITLE = (f'{FILE} {DATASET}' + (f' [{SELECTION}]' if SELECTION else '')).replace('$', r'\\$')


def image(ax, values, title):
    values = np.ma.masked_invalid(np.asarray(values, dtype=float))
    shown = ax.imshow(values, origin='lower', aspect='auto', interpolation='nearest')
    ax.figure.colorbar(shown, ax=ax)
    ax.set_title(title, fontsize='small')


def plot(data):
    values = np.asarray(data)
    if values.dtype.names:  # a table: its numeric columns against the row number
        fields = [n for n in values.dtype.names
                  if numeric(values[n]) is not None and values.dtype[n].shape == ()][:12]
        print('columns:', ', '.join(values.dtype.names))
        print(values[:5] if values.ndim else values)
        if values.ndim != 1 or not fields or values.size == 0:
            return
        fig, axes = plt.subplots(len(fields), 1, sharex=True, squeeze=False,
                                 figsize=(7, 1.6 * len(fields) + 1))
        for ax, name in zip(axes[:, 0], fields):
            ax.plot(numeric(values[name]))
            ax.set_ylabel(name, fontsize='small')
        axes[-1, 0].set_xlabel('row')
        axes[0, 0].set_title(TITLE, fontsize='small')
        plt.show()
        return
    if numeric(values) is None or values.ndim == 0 or values.size == 0:
        print(values if values.ndim == 0 else f'{values.shape} {values.dtype}:\\n{values}')
        return
    note = ' (magnitude)' if values.dtype.kind == 'c' else ''
    if values.ndim == 1:
        fig, ax = plt.subplots()
        y = np.asarray(numeric(values), dtype=float)
        y[~np.isfinite(y)] = np.nan
        if x_axis is not None and len(x_axis[1]) == len(values):
            ax.plot(x_axis[1], y)
            ax.set_xlabel(x_axis[0])
        else:
            ax.plot(y)
            ax.set_xlabel('index')
        ax.set_ylabel(DATASET.rsplit('/', 1)[-1].replace('$', r'\\$') + note)
        ax.set_title(TITLE, fontsize='small')
    elif values.ndim == 2:
        fig, ax = plt.subplots()
        image(ax, numeric(values), TITLE + note)
    else:  # N-D: the first frame and the sum over the leading dimensions
        lead = values.ndim - 2
        fig, (first, total) = plt.subplots(1, 2, figsize=(11, 4))
        where = '0,' * lead + ':,:'
        image(first, numeric(values[(0,) * lead]), f'{TITLE}{note}\\nfirst frame [{where}]')
        summed = np.zeros(values.shape[-2:])
        for index in np.ndindex(values.shape[:lead]):  # frame by frame: no float copy of it all
            frame = numeric(values[index])
            summed += np.where(np.isfinite(frame), frame, 0)
        image(total, summed, f'sum over the first {lead} dimension(s) of {values.shape}')
    plt.show()


if data is None:
    print('Nothing to plot: no data was read')
else:
    plot(data)"""

H5PY_CELL = """\
import h5py
import hdf5plugin  # noqa: F401  before h5py reads: registers the Blosc, LZ4, bitshuffle filters

folder = Path(os.environ.get('BEAMDESK_PROPOSALS', '~/proposals')).expanduser()
data_h5 = x_axis = None
if (folder / PROPOSAL / FILE).is_file():
    # locking=False: a beamline may be writing this file; never hold a lock on it
    with h5py.File(folder / PROPOSAL / FILE, 'r', locking=False) as f:
        dset = f[DATASET]
        x_axis = nexus_axis(dset, SELECTION)
        if h5py.check_string_dtype(dset.dtype):
            dset = dset.asstr()  # text as str, as the API sends it
        data_h5 = dset[SELECTED]
    print(np.shape(data_h5), getattr(data_h5, 'dtype', type(data_h5).__name__))
else:
    print(f'{folder / PROPOSAL / FILE} is not mounted here: using what the API sent')
if data is not None and data_h5 is not None:
    np.testing.assert_array_equal(data, data_h5)  # the API and the file agree
    print('The API and the file agree.')
data = data_h5 if data is None else data"""


class BadSelection(Invalid, ValueError):
    """The selection is not ``index`` or ``start:stop[:step]`` members, comma-separated."""


def check_selection(selection: str | None) -> str:
    """The selection stripped, or '' for everything; :class:`BadSelection` if malformed."""
    selection = (selection or "").strip()
    if selection and not SELECTION.match(selection):
        raise BadSelection(
            f"invalid selection {selection!r}: use members like 3, -1 or 0:10:2, "
            "separated by commas"
        )
    return selection


def h5py_index(selection: str) -> str:
    """The selection as a Python subscript for h5py (``"0,:,1:4"`` → ``[0, :, 1:4]``)."""
    selection = check_selection(selection)
    if not selection:
        return "[()]"
    return "[" + ", ".join(part.replace(" ", "") for part in selection.split(",")) + "]"


def notebook_name(number: str, file: str, path: str, selection: str) -> str:
    """A stable, readable file name: the same data always gives the same notebook."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", file.rsplit("/", 1)[-1].rsplit(".", 1)[0])[:40]
    leaf = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.rstrip("/").rsplit("/", 1)[-1])[:30]
    digest = hashlib.sha256(f"{number}\0{file}\0{path}\0{selection}".encode()).hexdigest()[:8]
    return "_".join(p for p in (stem, leaf, digest) if p) + ".ipynb"


def _finish(cells: list[Any], title: str) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = KERNEL
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["beamdesk"] = {"title": title}
    import nbformat

    nbformat.validate(nb)
    return nb


def _markdown_text(text: str) -> str:
    """``text`` as literal Markdown: control characters escaped, punctuation backslashed."""
    escaped = re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], text)
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~&])", r"\\\1", escaped)


def dataset_notebook(
    number: str, file: str, path: str, selection: str = ""
) -> nbformat.NotebookNode:
    """A notebook that loads ``path`` in ``file`` of proposal ``number`` (or a slice).

    Its cells read the data through the API and with h5py (``hdf5plugin`` imported first,
    for Blosc/LZ4/bitshuffle-compressed files), summarise it as one JSON line (the cell
    tagged :data:`SUMMARY_TAG`) and plot it: a line (on its NeXus axis when it has one),
    an image, or for N-D data the first frame and the sum over the leading dimensions;
    text and scalars are printed, complex values shown as magnitude, tables by column.
    """
    selection = check_selection(selection)
    index = h5py_index(selection)
    what = _markdown_text(path) + (f" \\[{_markdown_text(selection)}\\]" if selection else "")
    cells = [
        new_markdown_cell(
            f"# {_markdown_text(file)}: {what}\n\nProposal **{_markdown_text(number)}**. "
            "Made by BeamDesk's *open in a notebook*: the cells below load exactly this "
            "data, through the BeamDesk API and directly with h5py, check that both agree, "
            "summarise and plot it."
        ),
        new_code_cell(
            "import os\nfrom pathlib import Path\n\nimport numpy as np\n\n"
            "from beamdesk_client import Client\n\n"
            f"PROPOSAL = {number!r}\nFILE = {file!r}\nDATASET = {path!r}\n"
            f"SELECTION = {selection!r}  # one member per dimension; '' means everything"
        ),
        new_markdown_cell(
            "## Through the BeamDesk API\n\n`Client.from_env()` uses "
            "`BEAMDESK_URL` and `BEAMDESK_TOKEN`, which the hub sets for you."
        ),
        new_code_cell(API_CELL),
        new_markdown_cell(
            "## Directly with h5py\n\nThe proposals you may read are mounted read-only "
            "under `$BEAMDESK_PROPOSALS` (`/proposals`). `hdf5plugin` gives h5py the "
            "Blosc, LZ4, bitshuffle and Zstandard filters detectors write with."
        ),
        new_code_cell(AXIS_CELL),
        new_code_cell(H5PY_CELL.replace("[SELECTED]", index)),
        new_markdown_cell("## Summary and plot"),
        new_code_cell(SUMMARY_CELL, metadata={"tags": [SUMMARY_TAG]}),
        new_code_cell(PLOT_CELL),
    ]
    return _finish(cells, f"{number} {file} {path} {selection}".strip())


def xrf_job_notebook(
    number: str, file: str, dataset: str, config: Mapping[str, Any], kind: str = "xrf_map"
) -> nbformat.NotebookNode:
    """A notebook that re-runs one XRF analysis with ``config`` and opens its results."""
    config_json = json.dumps(dict(config), indent=2, sort_keys=True)
    cells = [
        new_markdown_cell(
            f"# XRF analysis of {file}\n\nProposal **{number}**. Re-runs the "
            f"analysis ({kind}) with the configuration it was made with."
        ),
        new_code_cell(
            "import json\n\nimport numpy as np\n\nfrom beamdesk_client import Client\n"
            f"\nPROPOSAL = {number!r}\nFILE = {file!r}\nDATASET = {dataset!r}\n"
            f"KIND = {kind!r}\nCONFIG = json.loads({config_json!r})\n"
            "bd = Client.from_env()"
        ),
        new_code_cell(
            "job = bd.submit_xrf_job(PROPOSAL, FILE, DATASET, CONFIG, kind=KIND)\n"
            "state = bd.wait(job)\nstate['state'], state.get('progress')"
        ),
        new_code_cell("outputs = bd.results(job)\n[o['path'] for o in outputs]"),
        new_code_cell(
            "# The fitted maps, e.g. Fe K:\n"
            "fe = bd.open(PROPOSAL, outputs[0]['path'], "
            "'/entry/xrf_fit/results/parameters/Fe_K')\nfe.shape"
        ),
    ]
    return _finish(cells, f"{number} {kind} {file} {dataset}")
