"""Generated notebooks and the portal's notebook routes (no hub needed for these)."""

from __future__ import annotations

import ast
import re

import h5py
import nbformat
import pytest

from beamdesk.h5.nexus import default_signal
from beamdesk.jupyter.notebooks import (
    BadSelection,
    check_selection,
    dataset_notebook,
    h5py_index,
    notebook_name,
    xrf_job_notebook,
)
from beamdesk.web.routes.notebooks import safe_next
from tests.conftest import PASSWORD
from tests.jupyter.conftest import DATASET, FILE, NUMBER, OTHER, JWorld


@pytest.mark.parametrize(
    ("selection", "index"),
    [
        ("", "[()]"),
        ("3", "[3]"),
        ("-1", "[-1]"),
        ("0, :, 10:20", "[0, :, 10:20]"),
        ("1:4,3,0:32:5", "[1:4, 3, 0:32:5]"),
        (":", "[:]"),
        ("::2", "[::2]"),
    ],
)
def test_selection_becomes_an_h5py_subscript(selection: str, index: str) -> None:
    assert h5py_index(selection) == index


@pytest.mark.parametrize(
    "bad",
    [
        "0]; import os; os.system('x') #",
        "a",
        "1:2:3:4",
        "0,,1",
        "__import__('os')",
        "1e3",
        "0)\nprint(1",
        "0:5:-1",
    ],
)
def test_anything_but_the_grammar_is_refused(bad: str) -> None:
    assert check_selection(" 0:-2 ") == "0:-2"  # a negative stop is a valid slice
    with pytest.raises(BadSelection):
        check_selection(bad)


def test_notebook_code_is_valid_python_with_literals_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    tricky = 'raw/it\'s "odd"\n.nxs'
    nb = dataset_notebook(NUMBER, tricky, "/entry/data/counts", "0,:,1:3")
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            ast.parse(cell.source)  # no injected syntax, whatever the file is called
    setup = nb.cells[1].source
    assert f"FILE = {tricky!r}" in setup and "SELECTION = '0,:,1:3'" in setup
    (read,) = [c for c in nb.cells if "h5py.File(" in c.source]
    assert "dset[0, :, 1:3]" in read.source
    assert read.source.index("import hdf5plugin") < read.source.index("h5py.File(")
    job = xrf_job_notebook(
        NUMBER, FILE, "/entry/data/spectra", {"elements": ["Fe", "Zn"], "energy_kev": 12.0}
    )
    for cell in job.cells:
        if cell.cell_type == "code":
            ast.parse(cell.source)


def test_notebook_names_are_stable_and_safe() -> None:
    a = notebook_name(NUMBER, "raw/../x y.nxs", "/entry/data", "0")
    assert a == notebook_name(NUMBER, "raw/../x y.nxs", "/entry/data", "0")
    assert a != notebook_name(NUMBER, "raw/../x y.nxs", "/entry/data", "1")
    assert re.fullmatch(r"[A-Za-z0-9_.-]+\.ipynb", a)


def test_default_signal_follows_nexus(jworld: JWorld, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with h5py.File(jworld.file, "r") as f:
        assert default_signal(f) == DATASET
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["notes"] = "text"
        f["a/b"] = [1.0, 2.0]
    with h5py.File(plain, "r") as f:
        assert default_signal(f) == "/a/b"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/user/pi/lab/tree/x.ipynb", True),
        ("/hub/home", True),
        ("https://evil.test/", False),
        ("//evil.test/hub/", False),
        ("/hub/../../x", False),
        ("/elsewhere", False),
    ],
)
def test_next_paths_stay_on_the_hub(given: str, kept: bool) -> None:
    assert (safe_next(given) == given) is kept


def _signed_in(client, username: str) -> str:  # type: ignore[no-untyped-def]
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    page = client.get(f"/proposals/{NUMBER}")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    return found.group(1) if found else token


def test_notebook_route_checks_before_calling_the_hub(client, jworld: JWorld) -> None:  # type: ignore[no-untyped-def]
    url = f"/proposals/{NUMBER}/notebook"
    assert client.post(url, data={"file": FILE}).status_code in (401, 403)
    csrf = _signed_in(client, "pi")
    assert "open in a notebook" in client.get(f"/proposals/{NUMBER}").text
    assert client.post(url, data={"file": FILE}).status_code == 403  # no CSRF token
    for data, status in [
        ({"file": "raw/none.nxs"}, 404),
        ({"file": "../" + OTHER + "/raw/other.nxs"}, 404),
        ({"file": FILE, "path": "/entry/nothing"}, 404),
        ({"file": FILE, "selection": "0]; import os"}, 422),
        ({"file": FILE, "selection": "9"}, 422),  # out of range for 5 frames
        ({"file": FILE}, 503),  # all fine, but no hub runs in this test
    ]:
        answer = client.post(url, data={**data, "csrf_token": csrf})
        assert answer.status_code == status, (data, answer.text)
    assert (
        client.post(
            f"/proposals/{OTHER}/notebook", data={"file": "raw/other.nxs", "csrf_token": csrf}
        ).status_code
        == 404
    )


def test_jupyter_page_needs_a_browser_session(client, jworld: JWorld) -> None:  # type: ignore[no-untyped-def]
    answer = client.get("/jupyter", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=")
    bearer = {"Authorization": f"Bearer {jworld.tokens['pi']}"}
    assert client.get("/jupyter", headers=bearer).status_code == 403
    _signed_in(client, "pi")
    page = client.get("/jupyter?next=/hub/home")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "/hub/beamdesk-login?ticket=" in page.text
