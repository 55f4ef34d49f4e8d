"""``beamdesk-client`` installs alone (httpx and numpy) and reads from a running server.

Its wheel goes into a new venv with only the packages uv.lock pins for it (tests/installs.py
says how, with no download); a script run there with ``python -I`` outside the checkout reads a
slice from the live server, and the test compares it with h5py reading the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests import installs
from tests.jupyter.conftest import DATASET, FILE, NUMBER, JWorld

pytestmark = pytest.mark.slow

SCRIPT = """
import importlib.metadata, importlib.util, json, re, sys
import numpy as np
from beamdesk_client import BeamDeskError, Client

out = {"module": sys.modules["beamdesk_client"].__file__, "sys_path": sys.path}
out["dists"] = sorted(re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower()
                      for d in importlib.metadata.distributions())
out["server_code"] = [m for m in ("beamdesk", "fastapi", "sqlalchemy", "h5py")
                      if importlib.util.find_spec(m) is not None]
with Client.from_env() as bd:
    out["me"] = bd.me()["username"]
    frame = bd.open(sys.argv[1], sys.argv[2], sys.argv[3], "2,:,:")
    np.save(sys.argv[4], frame)
    try:
        bd.proposal("20269999")
    except BeamDeskError as exc:
        out["missing"] = exc.status
print(json.dumps(out))
"""


def test_client_wheel_alone_reads_what_h5py_reads(
    live_server,  # type: ignore[no-untyped-def]
    jworld: JWorld,
    tmp_path: Path,
) -> None:
    dist = tmp_path / "dist"
    installs.run(
        [installs.uv(), "build", "--package", "beamdesk-client", "--wheel", "--out-dir", dist],
        cwd=installs.REPO,
    )
    (wheel,) = dist.glob("beamdesk_client-*.whl")
    venv = tmp_path / "notebook-env"
    python = installs.new_venv(venv, "--package", "beamdesk-client", wheels=[wheel])

    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "read.py").write_text(SCRIPT)
    out = json.loads(
        installs.run(
            [python, "-I", "read.py", NUMBER, FILE, DATASET, work / "frame.npy"],
            cwd=work,
            BEAMDESK_URL=live_server.url,
            BEAMDESK_TOKEN=jworld.tokens["pi"],
        )
    )

    assert Path(out["module"]).is_relative_to(venv)
    assert not any(Path(p).is_relative_to(installs.REPO) for p in out["sys_path"] if p)
    assert out["server_code"] == []
    # exactly the client and what uv.lock says httpx and numpy need, nothing of the server
    assert set(out["dists"]) == installs.lock_closure("beamdesk-client")
    assert out["me"] == "pi"
    assert out["missing"] == 404
    with h5py.File(jworld.file, "r") as f:
        expected = f[DATASET][2, :, :]
    got = np.load(work / "frame.npy")
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
