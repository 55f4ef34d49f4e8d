"""The beamdesk wheel: the built front end inside, and an install that works without the checkout.

Built with uv (sdist, then the wheel from the sdist) after ``make frontend``; installed into new
venvs from uv.lock's pins with no download (tests/installs.py). The reference for what the
wheel must carry is the build output in this checkout, file by file and byte for byte.
"""

from __future__ import annotations

import json
import subprocess
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests import installs
from tests.conftest import free_port

pytestmark = pytest.mark.slow

PREFIX = "beamdesk/web/static/app/"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not (installs.APP_DIR / ".vite" / "manifest.json").is_file():
        pytest.fail("the front end is not built: run `make frontend` first (make test does)")
    return installs.build(tmp_path_factory.mktemp("dist"))


def built_files() -> dict[str, bytes]:
    """What ``make frontend`` wrote, by path in the package (the stamp is make's, not ours)."""
    return {
        PREFIX + str(p.relative_to(installs.APP_DIR)): p.read_bytes()
        for p in sorted(installs.APP_DIR.rglob("*"))
        if p.is_file() and p.name != ".built-stamp"
    }


def test_wheel_carries_the_built_front_end(wheels: dict[str, Path]) -> None:
    built = built_files()
    with zipfile.ZipFile(wheels["beamdesk"]) as whl:
        names = set(whl.namelist())
        missing = sorted(set(built) - names)
        assert missing == []
        assert [n for n in built if whl.read(n) != built[n]] == []
        manifest = json.loads(whl.read(PREFIX + ".vite/manifest.json"))
        top = {n.split("/", 1)[0] for n in names}
    for page in ("viewer.html", "workbench.html"):
        assert PREFIX + page in names
        assert PREFIX + manifest[page]["file"] in names
    for bundle in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        assert PREFIX + "api-docs/" + bundle in names
    # templates and the migrations the server needs at run time
    assert "beamdesk/web/templates/viewer.html" in names
    assert any(n.startswith("beamdesk/migrations/versions/") for n in names)
    assert "beamdesk/migrations/script.py.mako" in names
    # nothing of the checkout besides the package (no tests, front-end sources, client)
    assert {t for t in top if not t.endswith(".dist-info")} == {"beamdesk"}


def test_client_wheel_is_only_the_client(wheels: dict[str, Path]) -> None:
    with zipfile.ZipFile(wheels["beamdesk_client"]) as whl:
        names = whl.namelist()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = [
            line.split(":", 1)[1].strip()
            for line in whl.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    assert {n.split("/", 1)[0] for n in names if ".dist-info/" not in n} == {"beamdesk_client"}
    assert sorted(r.split(">")[0] for r in requires) == ["httpx", "numpy"]


def test_installed_wheel_runs_outside_the_checkout(wheels: dict[str, Path], tmp_path: Path) -> None:
    """Base install: the command line; with the server extra: `beamdesk serve` serves the
    front end from the installed package, in a folder far from the checkout."""
    venv = tmp_path / "venv"
    site = tmp_path / "site"
    site.mkdir()
    python = installs.new_venv(venv, wheels=[wheels["beamdesk"], wheels["beamdesk_client"]])
    beamdesk = venv / "bin" / "beamdesk"

    helped = installs.run([beamdesk, "--help"], cwd=site)
    assert "serve" in helped and "xrf" in helped
    assert "fit" in installs.run([beamdesk, "xrf", "--help"], cwd=site)
    where = installs.run(
        [
            python,
            "-I",
            "-c",
            "import importlib.util, json, beamdesk, beamdesk.client, beamdesk.web.frontend as f;"
            "from beamdesk.jupyter.layout import default_proxy_command as p;"
            "print(json.dumps([beamdesk.__file__, str(f.APP_DIR), p(),"
            " importlib.util.find_spec('fastapi') is None]))",
        ],
        cwd=site,
    )
    package, app_dir, proxy, no_fastapi = json.loads(where)
    assert Path(package).is_relative_to(venv) and Path(app_dir).is_relative_to(venv)
    assert not proxy.startswith(str(installs.REPO))
    assert no_fastapi, "the base install must not carry the server"

    installs.new_venv(
        venv, "--extra", "server", wheels=[wheels["beamdesk"], wheels["beamdesk_client"]]
    )
    port = free_port()
    env = installs.clean_env(
        BEAMDESK_VAR=str(site / "var"), BEAMDESK_DASK_WORKERS="1", BEAMDESK_DASK_PROCESSES="false"
    )
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [str(beamdesk), "serve", "--port", str(port)],
        cwd=site,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(base + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "beamdesk serve did not answer in 120 s"
            time.sleep(0.5)

        built = built_files()
        manifest = json.loads(built[PREFIX + ".vite/manifest.json"])
        for page in ("viewer.html", "workbench.html"):
            asset = manifest[page]["file"]
            got = httpx.get(f"{base}/static/app/{asset}", timeout=10)
            assert got.status_code == 200 and got.content == built[PREFIX + asset]
        docs = httpx.get(base + "/api/docs", timeout=10)
        assert docs.status_code == 200
        assert 'data-testid="api-docs-not-built"' not in docs.text
        assert "/static/app/api-docs/swagger-ui-bundle.js" in docs.text
        bundle = httpx.get(base + "/static/app/api-docs/swagger-ui-bundle.js", timeout=10)
        assert bundle.content == built[PREFIX + "api-docs/swagger-ui-bundle.js"]
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    assert (site / "var" / "beamdesk.db").is_file()
