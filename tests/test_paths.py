"""Every user-supplied path stays inside its proposal folder, or is 404."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from beamdesk.h5.paths import PathNotFound, clean_relative, resolve_in_proposal
from beamdesk.portal.models import ProposalState
from tests.factories import make_proposal, make_world

NUMBER = "20260001"


def build_tree(tmp_path: Path) -> Path:
    """data/20260001 with a file, a folder, symlinks in and out; a secret beside it."""
    root = tmp_path / "data"
    folder = root / NUMBER / "raw"
    folder.mkdir(parents=True)
    (folder / "scan.h5").write_bytes(b"inside")
    (folder / "café ☕.txt").write_text("unicode name is fine")
    (root / "20260002").mkdir()
    (root / "20260002" / "other.txt").write_text("another proposal")
    (tmp_path / "secret.txt").write_text("outside the data root")
    (folder / "link_inside").symlink_to(folder / "scan.h5")
    (folder / "link_out").symlink_to(tmp_path / "secret.txt")
    (folder / "link_other").symlink_to(root / "20260002" / "other.txt")
    (folder / "dir_out").symlink_to(tmp_path)
    (folder / "loop").symlink_to(folder / "loop")
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return build_tree(tmp_path)


def test_inside_paths_resolve(tree: Path) -> None:
    assert resolve_in_proposal(tree, NUMBER, "raw/scan.h5").read_bytes() == b"inside"
    assert resolve_in_proposal(tree, NUMBER, "raw//scan.h5").name == "scan.h5"
    assert resolve_in_proposal(tree, NUMBER, "raw/link_inside").name == "scan.h5"
    assert resolve_in_proposal(tree, NUMBER, "raw/café ☕.txt").read_text().startswith("unicode")
    assert resolve_in_proposal(tree, NUMBER, "") == (tree / NUMBER).resolve()


@pytest.mark.parametrize(
    "bad",
    [
        "../20260002/other.txt",
        "raw/../../20260002/other.txt",
        "..",
        "raw/..",
        "/etc/passwd",
        str(Path("/etc/passwd")),
        "raw/link_out",
        "raw/link_other",
        "raw/dir_out/secret.txt",
        "raw/loop",
        "raw/missing.h5",
        "raw\\..\\..\\secret.txt",
        "C:/Windows/win.ini",
        "raw/scan.h5\x00.txt",
        "\u2025/20260002/other.txt",  # two-dot leader
        "\uff0e\uff0e/20260002/other.txt",  # fullwidth full stops fold to ".."
        "raw/\u202escan.h5",  # right-to-left override
        "raw/sc\u200ban.h5",  # zero-width space
        "raw/" + "x" * 5000,
    ],
)
def test_escapes_are_not_found(tree: Path, bad: str) -> None:
    with pytest.raises(PathNotFound):
        resolve_in_proposal(tree, NUMBER, bad)


@pytest.mark.parametrize("number", ["..", "../x", "/etc", "2026 0001", "", "a/b", "20260009"])
def test_odd_proposal_numbers_are_not_found(tree: Path, number: str) -> None:
    with pytest.raises(PathNotFound):
        resolve_in_proposal(tree, number, "raw/scan.h5")


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "..",
                ".",
                "raw",
                "scan.h5",
                "link_out",
                "dir_out",
                "",
                "secret.txt",
                "\uff0e\uff0e",
                "loop",
                "link_inside",
                "20260002",
                "other.txt",
            ]
        ),
        max_size=6,
    )
)
def test_any_combination_stays_inside(tmp_path_factory, parts: list[str]) -> None:  # type: ignore[no-untyped-def]
    root = _shared_tree(tmp_path_factory)
    try:
        target = resolve_in_proposal(root, NUMBER, "/".join(parts))
    except PathNotFound:
        return
    assert target.is_relative_to((root / NUMBER).resolve())


_TREE: dict[str, Path] = {}


def _shared_tree(factory) -> Path:  # type: ignore[no-untyped-def]
    if "root" not in _TREE:
        _TREE["root"] = build_tree(factory.mktemp("paths"))
    return _TREE["root"]


@given(st.text(max_size=40))
@settings(max_examples=500, deadline=None)
def test_clean_relative_never_yields_dot_segments(text: str) -> None:
    try:
        cleaned = clean_relative(text)
    except PathNotFound:
        return
    assert not cleaned.startswith("/")
    assert all(part not in {"", ".", ".."} for part in cleaned.split("/")) or cleaned == ""


@pytest.mark.parametrize(
    "url",
    [
        "raw/..%2F..%2F20260002/other.txt",
        "raw/%2e%2e/%2e%2e/20260002/other.txt",
        "%2Fetc%2Fpasswd",
        "raw/link_out",
        "raw/dir_out/secret.txt",
        "raw/%EF%BC%8E%EF%BC%8E/x",
        "raw/scan.h5%00.txt",
    ],
)
def test_http_downloads_are_confined(app, sessions, settings, tmp_path, url: str) -> None:  # type: ignore[no-untyped-def]
    with sessions() as db:
        world = make_world(db, tokens=True)
        make_proposal(db, world, NUMBER, ProposalState.data_collected)
        db.commit()
    root = settings.data_root
    (root / NUMBER / "raw").mkdir(parents=True)
    (root / NUMBER / "raw" / "scan.h5").write_bytes(b"inside")
    (root / "20260002").mkdir()
    (root / "20260002" / "other.txt").write_text("another proposal")
    (tmp_path / "secret.txt").write_text("outside")
    os.symlink(tmp_path / "secret.txt", root / NUMBER / "raw" / "link_out")
    os.symlink(tmp_path, root / NUMBER / "raw" / "dir_out")
    headers = {"Authorization": f"Bearer {world.tokens['pi']}"}
    with TestClient(app) as client:
        ok = client.get(f"/api/proposals/{NUMBER}/files/raw/scan.h5", headers=headers)
        assert ok.status_code == 200 and ok.content == b"inside"
        r = client.get(f"/api/proposals/{NUMBER}/files/{url}", headers=headers)
        assert r.status_code == 404, r.text
        assert "outside" not in r.text and "another proposal" not in r.text
