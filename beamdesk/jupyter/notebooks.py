"""Notebooks that load exactly one dataset (or slice), or re-run one XRF analysis.

The generated code reads the data twice, through ``beamdesk.client`` (the API, works
anywhere) and with h5py from the proposal folder linked in the user's home (fast, works
inside BeamDesk's hub), and checks both agree. Everything the user chose is written into
the code as Python literals (``repr``), and selections are checked against a strict
grammar first, so no request parameter can inject code into a notebook.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

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


class BadSelection(ValueError):
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


def dataset_notebook(
    number: str, file: str, path: str, selection: str = ""
) -> nbformat.NotebookNode:
    """A notebook that loads ``path`` in ``file`` of proposal ``number`` (or a slice)."""
    selection = check_selection(selection)
    index = h5py_index(selection)
    what = f"`{path}`" + (f" [{selection}]" if selection else "")
    cells = [
        new_markdown_cell(
            f"# {file}: {what}\n\nProposal **{number}**. Made by BeamDesk's *open in a "
            "notebook*: the cells below load exactly this data, through the BeamDesk API "
            "and directly with h5py, and check that both agree."
        ),
        new_code_cell(
            "import os\nfrom pathlib import Path\n\nimport h5py\nimport numpy as np\n\n"
            "from beamdesk.client import Client\n\n"
            f"PROPOSAL = {number!r}\nFILE = {file!r}\nDATASET = {path!r}\n"
            f"SELECTION = {selection!r}  # one member per dimension; '' means everything"
        ),
        new_markdown_cell(
            "## Through the BeamDesk API\n\n`Client.from_env()` uses "
            "`BEAMDESK_URL` and `BEAMDESK_TOKEN`, which the hub sets for you."
        ),
        new_code_cell(
            "bd = Client.from_env()\n"
            "data = bd.open(PROPOSAL, FILE, DATASET, SELECTION or None)\n"
            "data.shape, data.dtype"
        ),
        new_markdown_cell(
            "## Directly with h5py\n\nThe proposals you may read are mounted read-only "
            "under `$BEAMDESK_PROPOSALS` (`/proposals`)."
        ),
        new_code_cell(
            "folder = Path(os.environ.get('BEAMDESK_PROPOSALS', '~/proposals')).expanduser()\n"
            "# locking=False: a beamline may be writing this file; never hold a lock on it\n"
            "with h5py.File(folder / PROPOSAL / FILE, 'r', locking=False) as f:\n"
            f"    data_h5 = f[DATASET]{index}\n"
            "np.testing.assert_array_equal(data, data_h5)  # the API and the file agree\n"
            "data_h5.shape"
        ),
        new_code_cell(
            "import json\n\nfinite = np.asarray(data, dtype=float)\n"
            "print(json.dumps({'shape': list(np.shape(data)), "
            "'sum': float(np.nansum(finite)), 'min': float(np.nanmin(finite)), "
            "'max': float(np.nanmax(finite))}))",
            metadata={"tags": [SUMMARY_TAG]},
        ),
        new_code_cell(
            "import matplotlib.pyplot as plt\n\nif np.ndim(data) == 1:\n    plt.plot(data)\n"
            "elif np.ndim(data) == 2:\n    plt.imshow(data, origin='lower', aspect='auto')\n"
            "    plt.colorbar()\nplt.title(f'{FILE} {DATASET} {SELECTION}')\nplt.show()"
        ),
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
            "import json\n\nimport numpy as np\n\nfrom beamdesk.client import Client\n"
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
