"""h5grove 4's contract, point by point, against stock h5grove's own router on the same files.

``resolve_links`` on /meta, the status check at ``…/h5/``, an unreadable file (403
"Permission denied") and the error words H5Web's H5GroveProvider recognises ("File not
found", "not a valid path", "Cannot resolve", "Permission denied"; read from
``@h5web/app``'s ``wrapH5GroveError``). Intended differences are listed in docs/h5-api.md.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from h5grove import fastapi_utils

from beamdesk.sandbox.pool import software_binds
from tests.h5.alltypes import ALLTYPES, write_alltypes
from tests.h5.builders import H5World

FILE = f"raw/{ALLTYPES}"
LINKS = [
    "/links/soft_dataset",
    "/links/soft_group",
    "/links/soft_broken",
    "/links/external_dataset",
    "/links/external_group",
    "/links/external_missing",
]
# What H5Web's wrapH5GroveError looks for in an h5grove error's ``message``.
H5WEB_WORDS = ("File not found", "Permission denied", "not a valid path", "Cannot resolve")


@pytest.fixture
def world(h5world: H5World) -> H5World:
    write_alltypes(h5world.root / "raw")
    return h5world


@pytest.fixture
def stock(world: H5World, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """Stock h5grove's FastAPI endpoints serving the same folder."""
    monkeypatch.setattr(fastapi_utils.settings, "base_dir", str(world.root / "raw"))
    app = FastAPI()
    app.include_router(fastapi_utils.router)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _message(r) -> str:  # type: ignore[no-untyped-def]
    body = r.json()
    assert isinstance(body.get("message"), str), body  # what H5Web reads
    return str(body["message"])


@pytest.mark.parametrize("resolve_links", ["only_valid", "all", "none", "true", "false", None])
def test_resolve_links_on_meta_as_h5grove(
    world: H5World, stock: TestClient, resolve_links: str | None
) -> None:
    """Same status and, where both answer, the same body for every link and its group."""
    extra = {} if resolve_links is None else {"resolve_links": resolve_links}
    differences = {}
    for path in [*LINKS, "/links", "/"]:
        ours = world.get("meta", file=FILE, path=path, **extra)
        theirs = stock.get("/meta", params={"file": ALLTYPES, "path": path, **extra})
        if ours.status_code != theirs.status_code:
            differences[path] = (ours.status_code, theirs.status_code, ours.text[:200])
        elif theirs.status_code == 200 and ours.json() != theirs.json():
            differences[path] = (ours.text[:300], theirs.text[:300])
        elif theirs.status_code != 200:
            assert "Cannot resolve" in _message(ours) and "Cannot resolve" in _message(theirs)
    assert differences == {}, differences


def test_resolve_links_kinds(world: H5World) -> None:
    """What each value means, from h5py's own view of the links."""
    with h5py.File(world.root / FILE, "r") as f:
        link_kinds = {
            p: "soft_link" if isinstance(f.get(p, getlink=True), h5py.SoftLink) else "external_link"
            for p in LINKS
        }
        valid = {p for p in LINKS if f.get(p) is not None}
    assert valid == set(LINKS) - {"/links/soft_broken", "/links/external_missing"}
    for path in LINKS:
        none = world.get("meta", file=FILE, path=path, resolve_links="none")
        assert none.json()["kind"] == link_kinds[path], path
        only = world.get("meta", file=FILE, path=path).json()["kind"]
        assert (only not in ("soft_link", "external_link")) == (path in valid), path
        every = world.get("meta", file=FILE, path=path, resolve_links="all")
        assert every.status_code == (200 if path in valid else 404), path
    bad = world.get("meta", file=FILE, path="/links", resolve_links="maybe")
    assert bad.status_code == 422 and "only_valid" in _message(bad)


def test_links_out_of_the_proposal_are_never_resolved(h5world: H5World) -> None:
    """Where stock h5grove would open another proposal's file, ``all`` is 404."""
    for mode in ("only_valid", "all", "none"):
        r = h5world.get("meta", file="raw/types.h5", path="/ext_other_proposal", resolve_links=mode)
        assert "4242" not in r.text
        if mode == "all":
            assert r.status_code == 404 and "Cannot resolve" in _message(r)
        else:
            assert r.json()["kind"] == "external_link"


def test_status_check_answers_like_h5grove(world: H5World, stock: TestClient) -> None:
    theirs = stock.get("/")
    for method in ("GET", "HEAD"):
        ours = world.client.request(method, "/api/proposals/20260001/h5/", headers=world.auth())
        assert (ours.status_code, ours.content) == (
            theirs.status_code,
            theirs.content if method == "GET" else b"",
        )
    assert theirs.content == b"ok"
    # and no more: a proposal the caller may not read is not confirmed
    assert world.client.get("/api/proposals/20260001/h5/").status_code == 404
    assert world.get("", who="pi", number="20269999").status_code == 404


def test_missing_file_and_path_use_h5webs_words(world: H5World, stock: TestClient) -> None:
    ours = world.get("meta", file="raw/nothing.h5", path="/")
    theirs = stock.get("/meta", params={"file": "nothing.h5", "path": "/"})
    assert ours.status_code == theirs.status_code == 404
    assert "File not found" in _message(ours) and "File not found" in _message(theirs)
    ours = world.get("meta", file=FILE, path="/no/such/thing")
    theirs = stock.get("/meta", params={"file": ALLTYPES, "path": "/no/such/thing"})
    assert ours.status_code == theirs.status_code == 404
    assert "not a valid path" in _message(ours) and "not a valid path" in _message(theirs)
    for endpoint in ("attr", "paths", "data", "stats"):
        r = world.get(endpoint, file="raw/nothing.h5", path="/")
        assert r.status_code == 404 and "File not found" in _message(r), endpoint
    broken = world.get("data", file=FILE, path="/links/soft_broken")
    assert broken.status_code == 404 and "Cannot resolve" in _message(broken)


STOCK_AS_NOBODY = textwrap.dedent(
    """
    import json, sys
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from h5grove import fastapi_utils
    fastapi_utils.settings.base_dir = sys.argv[1]
    app = FastAPI()
    app.include_router(fastapi_utils.router)
    r = TestClient(app).get("/meta", params={"file": sys.argv[2], "path": "/"})
    print(json.dumps({"status": r.status_code, "body": r.json()}))
    """
)


def test_unreadable_file_is_403_permission_denied(world: H5World) -> None:
    """A file the reader workers (uid 65534, no capabilities) may not read: 403, as h5grove.

    The tests run as root, so stock h5grove runs confined the same way (bubblewrap, uid
    65534, no capabilities) on a copy of the file.
    """
    target = world.root / "raw" / "locked.h5"
    with h5py.File(target, "w") as f:
        f["v"] = np.arange(3)
    target.chmod(0)
    try:
        r = world.get("meta", file="raw/locked.h5", path="/")
        if r.status_code == 200:
            pytest.skip("the reader workers can read a mode-000 file here (no bubblewrap?)")
        assert r.status_code == 403, r.text
        assert "Permission denied" in _message(r) and "truncated" not in _message(r)
        for endpoint in ("attr", "paths", "data"):
            assert world.get(endpoint, file="raw/locked.h5", path="/v").status_code == 403
        # stock h5grove, reading as the same unprivileged user
        shared = Path(tempfile.mkdtemp(prefix="bd-h5grove-"))
        try:
            shutil.copy(world.root / FILE, shared / "locked.h5")
            (shared / "locked.h5").chmod(0)
            shared.chmod(0o755)
            confined = [
                "bwrap",
                "--die-with-parent",
                "--unshare-all",
                "--cap-drop",
                "ALL",
                "--uid",
                "65534",
                "--gid",
                "65534",
                *software_binds(),
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--tmpfs",
                "/tmp",
                "--ro-bind",
                str(shared),
                str(shared),
            ]
            done = subprocess.run(
                [*confined, sys.executable, "-c", STOCK_AS_NOBODY, str(shared), "locked.h5"],
                capture_output=True,
                text=True,
                timeout=120,
                env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"},
            )
        finally:
            shutil.rmtree(shared)
        assert done.returncode == 0, done.stderr[-2000:]
        theirs = json.loads(done.stdout)
        assert theirs["status"] == 403 and "Permission denied" in theirs["body"]["message"]
    finally:
        target.chmod(0o644)


def test_error_bodies_carry_a_message(world: H5World) -> None:
    """Every refusal is a problem detail whose ``message`` H5Web displays."""
    for params in (
        {"file": "raw/nothing.h5", "path": "/"},
        {"file": FILE, "path": "/no/such"},
        {"file": FILE, "path": "/links/soft_broken", "resolve_links": "all"},
    ):
        r = world.get("meta", **params)
        assert r.status_code == 404
        assert any(word in _message(r) for word in H5WEB_WORDS), r.text
