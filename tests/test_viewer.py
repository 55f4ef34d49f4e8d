"""The viewer page and its folder listing, through HTTP (the browser test is separate)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np
import pytest
from fastapi.testclient import TestClient

from beamdesk.db import utcnow
from beamdesk.h5.browse import has_hdf5_signature
from beamdesk.portal.models import Dataset, Proposal, ProposalState
from beamdesk.web.frontend import entry_assets
from tests.factories import make_proposal, make_world

NUMBER = "20260001"
OTHER = "20260002"


@dataclass
class Site:
    client: TestClient
    root: Path
    tokens: dict[str, str]

    def get(self, url: str, who: str | None = "participant", **params: object):  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return self.client.get(url, headers=headers, params=params, follow_redirects=False)


@pytest.fixture
def site(app, sessions, settings, tmp_path: Path) -> Iterator[Site]:  # type: ignore[no-untyped-def]
    with sessions() as db:
        world = make_world(db, tokens=True)
        make_proposal(db, world, NUMBER, ProposalState.data_collected)
        make_proposal(db, world, OTHER, ProposalState.data_collected)
        db.commit()
        tokens = dict(world.tokens)
    root = settings.data_root / NUMBER
    (root / "raw" / "sub").mkdir(parents=True)
    (settings.data_root / OTHER).mkdir()
    (settings.data_root / OTHER / "secret.h5").write_bytes(b"x")
    with h5py.File(root / "raw" / "scan.nxs", "w") as f:
        f["data"] = np.arange(10.0)
    # An HDF5 file behind a 512-byte user block: the signature is at byte 512.
    with h5py.File(root / "raw" / "userblock.h5", "w", userblock_size=512) as f:
        f["x"] = 1
    (root / "raw" / "notes.txt").write_text("not hdf5, though it mentions \x89HDF\n")
    (root / "raw" / ".hidden.h5").write_bytes(b"")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "leak.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    (root / "raw" / "link_out").symlink_to(outside, target_is_directory=True)
    (root / "raw" / "file_out.h5").symlink_to(outside / "leak.h5")
    (root / "raw" / "other_proposal").symlink_to(settings.data_root / OTHER)
    (root / "raw" / "broken.h5").symlink_to(root / "raw" / "missing.h5")
    (root / "raw" / "same.nxs").symlink_to(root / "raw" / "scan.nxs")
    with sessions() as db:  # as the catalogue would record them
        proposal = db.query(Proposal).filter_by(number=NUMBER).one()
        for path, is_hdf5 in [("raw/scan.nxs", True), ("raw/notes.txt", False)]:
            db.add(
                Dataset(proposal_id=proposal.id, path=path, size=1, mtime=utcnow(), is_hdf5=is_hdf5)
            )
        db.commit()
    with TestClient(app) as client:
        yield Site(client, root, tokens)


def test_browse_lists_folders_then_files_with_size_date_and_hdf5(site: Site) -> None:
    r = site.get(f"/api/proposals/{NUMBER}/browse")
    assert r.status_code == 200
    body = r.json()
    assert body["path"] == "" and body["parent"] is None
    assert [(e["name"], e["kind"]) for e in body["entries"]] == [("raw", "folder")]

    r = site.get(f"/api/proposals/{NUMBER}/browse", path="raw")
    body = r.json()
    assert body["parent"] == ""
    names = [e["name"] for e in body["entries"]]
    # Folders first; hidden files, links out of the proposal and broken links are not listed.
    assert names == ["sub", "notes.txt", "same.nxs", "scan.nxs", "userblock.h5"]
    by_name = {e["name"]: e for e in body["entries"]}
    scan = site.root / "raw" / "scan.nxs"
    assert by_name["scan.nxs"]["size"] == scan.stat().st_size
    mtime = datetime.fromisoformat(by_name["scan.nxs"]["mtime"].replace("Z", "+00:00"))
    assert abs(mtime.timestamp() - scan.stat().st_mtime) < 1e-3
    assert mtime.tzinfo is not None and mtime.utcoffset() == UTC.utcoffset(None)
    assert by_name["scan.nxs"]["path"] == "raw/scan.nxs"
    assert [
        by_name[n]["is_hdf5"] for n in ("notes.txt", "same.nxs", "scan.nxs", "userblock.h5")
    ] == [False, True, True, True]
    assert body["truncated"] is False


@pytest.mark.parametrize(
    "path",
    [
        "..",
        "../..",
        "raw/../..",
        "/",
        "/etc",
        "raw/link_out",
        "raw/other_proposal",
        "raw/..%2f..",
        "raw/\u2024\u2024",
        "raw/missing",
        "raw/scan.nxs",
        "raw/broken.h5",
    ],
)
def test_browse_is_confined_to_the_proposal(site: Site, path: str) -> None:
    r = site.get(f"/api/proposals/{NUMBER}/browse", path=path)
    assert r.status_code == 404, (path, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "leak" not in r.text and "secret" not in r.text


def test_browse_url_encoded_dots_in_the_raw_query(site: Site) -> None:
    headers = {"Authorization": f"Bearer {site.tokens['participant']}"}
    r = site.client.get(f"/api/proposals/{NUMBER}/browse?path=%2e%2e", headers=headers)
    assert r.status_code == 404


@pytest.mark.parametrize("who", ["outsider", "other_scientist", "reviewer", None])
def test_browse_and_page_answer_404_to_those_who_may_not_read(site: Site, who: str | None) -> None:
    assert site.get(f"/api/proposals/{NUMBER}/browse", who=who).status_code == 404
    r = site.get(f"/proposals/{NUMBER}/viewer", who=who)
    if who is None:  # signing in may help
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    else:
        assert r.status_code == 404
        assert "scan.nxs" not in r.text


def test_proposal_page_links_hdf5_files_to_the_viewer(site: Site) -> None:
    html = site.get(f"/proposals/{NUMBER}").text
    assert f'href="/proposals/{NUMBER}/viewer?file=raw/scan.nxs"' in html
    assert "viewer?file=raw/notes.txt" not in html
    assert f'href="/proposals/{NUMBER}/viewer"' in html


def test_page_mounts_the_built_app_with_its_settings(site: Site) -> None:
    r = site.get(f"/proposals/{NUMBER}/viewer", file="raw/scan.nxs", path="/data")
    assert r.status_code == 200
    html = r.text
    assert f'data-api="/api/proposals/{NUMBER}/h5"' in html
    assert f'data-browse="/api/proposals/{NUMBER}/browse"' in html
    assert 'data-file="raw/scan.nxs"' in html and 'data-path="/data"' in html
    assets = entry_assets("viewer.html")
    if assets is None:
        assert "make frontend" in html
    else:
        assert f'<script type="module" src="{assets.script}"></script>' in html
        assert all(href in html for href in assets.css)
    # No inline script: the CSP would block it.
    assert "<script>" not in html
    assert "script-src 'self'" in r.headers["content-security-policy"]


def test_page_refuses_files_outside_or_missing(site: Site) -> None:
    for file in ["../20260002/secret.h5", "raw/file_out.h5", "/etc/passwd", "raw/nope.h5", "raw"]:
        r = site.get(f"/proposals/{NUMBER}/viewer", file=file)
        assert r.status_code == 404, file
        assert 'data-file=""' in r.text or "make frontend" in r.text


def test_page_says_how_to_build_when_the_front_end_is_missing(
    site: Site,
    app,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    app.state.frontend_manifest = tmp_path / "nowhere" / "manifest.json"
    r = site.get(f"/proposals/{NUMBER}/viewer", file="raw/scan.nxs")
    assert r.status_code == 200
    assert "make frontend" in r.text and '<script type="module"' not in r.text


def test_entry_assets_follow_imports_for_css_and_preload(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "viewer.html": {
                    "file": "assets/viewer-1.js",
                    "isEntry": True,
                    "imports": ["_shared.js"],
                    "css": ["assets/viewer-1.css"],
                },
                "_shared.js": {"file": "assets/shared-2.js", "css": ["assets/shared-2.css"]},
            }
        )
    )
    assets = entry_assets("viewer.html", manifest)
    assert assets is not None
    assert assets.script == "/static/app/assets/viewer-1.js"
    assert assets.preload == ["/static/app/assets/shared-2.js"]
    assert assets.css == ["/static/app/assets/viewer-1.css", "/static/app/assets/shared-2.css"]
    assert entry_assets("workbench.html", manifest) is None


def test_hdf5_signature_is_found_after_a_user_block(tmp_path: Path) -> None:
    for block in (512, 4096):
        path = tmp_path / f"ub{block}.h5"
        with h5py.File(path, "w", userblock_size=block) as f:
            f["x"] = 1
        assert has_hdf5_signature(path) and h5py.is_hdf5(path)
    text = tmp_path / "t.txt"
    text.write_bytes(os.urandom(5000))
    assert has_hdf5_signature(text) == bool(h5py.is_hdf5(text))
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert not has_hdf5_signature(empty)
