"""The catalogue: indexing a data root (idempotent, robust) and searching it with access rules."""

from __future__ import annotations

import hashlib
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from beamdesk.db import make_engine, make_sessionmaker
from beamdesk.portal.catalogue import index_data_root, index_file
from beamdesk.portal.models import Dataset, ProposalState
from beamdesk.settings import Settings
from tests.factories import make_proposal, make_world
from tests.nexus import nx_data, nx_entry, nx_group

EXAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nexus-examples"


def write_nexus(path: Path, title: str, start: str, instrument: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        entry = nx_entry(fh, "scan", default="plot", fields={"title": title, "start_time": start})
        inst = nx_group(entry, "beamline", "NXinstrument", fields={"name": instrument})
        nx_group(inst, "mono", "NXmonochromator", {"energy": 7.112}, {"energy": "keV"})
        nx_data(entry, "plot", "y", np.arange(10.0))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def folder(settings: Settings, db) -> Path:  # type: ignore[no-untyped-def]
    world = make_world(db)
    make_proposal(db, world, "20260100", ProposalState.data_collected)
    db.commit()
    root = settings.data_root / "20260100"
    write_nexus(
        root / "raw" / "scan_1.nxs",
        "Fe K-edge of hematite",
        "2026-03-01T10:00:00+01:00",
        "XRF beamline",
    )
    (root / "raw" / "notes.txt").write_text("beam current 310 mA\n")
    broken = root / "raw" / "broken.h5"
    write_nexus(broken, "will be cut", "2026-03-01T10:00:00", "x")
    with open(broken, "r+b") as fh:  # truncated mid-file, as after a full disk
        fh.truncate(broken.stat().st_size // 3)
    (root / "raw" / "result.nxs.part").write_bytes(b"half written")
    (root / "raw" / ".hidden").write_text("editor swap file")
    outside = settings.data_root.parent / "secret.txt"
    outside.write_text("not for the catalogue")
    os.symlink(outside, root / "raw" / "escape.txt")
    os.symlink(root / "raw" / "notes.txt", root / "raw" / "notes_link.txt")
    os.symlink(root / "raw", root / "raw" / "loop")
    (settings.data_root / "99999999").mkdir()  # a folder with no proposal
    return root


def rows(db) -> dict[str, Dataset]:  # type: ignore[no-untyped-def]
    db.expire_all()
    return {d.path: d for d in db.scalars(select(Dataset))}


def test_index_records_every_file_with_its_facts(settings: Settings, db, folder: Path) -> None:  # type: ignore[no-untyped-def]
    report = index_data_root(db, settings.data_root)
    found = rows(db)
    assert set(found) == {"raw/scan_1.nxs", "raw/notes.txt", "raw/broken.h5", "raw/notes_link.txt"}
    assert report.added == 4 and report.broken == 1
    assert report.unknown_folders == ["99999999"]
    scan = found["raw/scan_1.nxs"]
    assert scan.size == (folder / "raw" / "scan_1.nxs").stat().st_size
    assert scan.sha256 == sha(folder / "raw" / "scan_1.nxs")
    assert scan.is_hdf5 and scan.error == ""
    assert scan.title == "Fe K-edge of hematite"
    assert scan.instrument == "XRF beamline"
    assert scan.start_time == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)  # +01:00 to UTC
    assert scan.nx_classes == "NXentry/NXdata"
    assert scan.parameters == {
        "beamline/mono/energy": {"value": 7.112, "unit": "keV"},
        "beamline/name": {"value": "XRF beamline", "unit": ""},
    }
    notes = found["raw/notes.txt"]
    assert not notes.is_hdf5 and notes.sha256 == sha(folder / "raw" / "notes.txt")
    assert found["raw/broken.h5"].error != ""


def test_reindex_is_idempotent_and_notices_changes(settings: Settings, db, folder: Path) -> None:  # type: ignore[no-untyped-def]
    index_data_root(db, settings.data_root)
    first = {p: (d.id, d.sha256) for p, d in rows(db).items()}
    again = index_data_root(db, settings.data_root)
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 4)
    assert {p: (d.id, d.sha256) for p, d in rows(db).items()} == first

    notes = folder / "raw" / "notes.txt"
    notes.write_text("beam current 290 mA after the refill\n")
    later = datetime.now().timestamp() + 5
    os.utime(notes, (later, later))
    (folder / "raw" / "scan_1.nxs").unlink()
    changed = index_data_root(db, settings.data_root)
    assert (changed.added, changed.updated, changed.removed) == (0, 2, 1)  # notes + its link
    now = rows(db)
    assert "raw/scan_1.nxs" not in now
    assert now["raw/notes.txt"].sha256 == sha(notes) != first["raw/notes.txt"][1]
    assert now["raw/notes.txt"].id == first["raw/notes.txt"][0]


def test_index_file_records_provenance(settings: Settings, db, folder: Path) -> None:  # type: ignore[no-untyped-def]
    from beamdesk.portal.models import Proposal

    proposal = db.scalar(select(Proposal).where(Proposal.number == "20260100"))
    out = folder / "processed" / "fit.nxs"
    write_nexus(out, "XRF fit", "2026-03-02T00:00:00Z", "BeamDesk")
    row = index_file(
        db,
        proposal,
        settings.data_root,
        "processed/fit.nxs",
        provenance={"job": 7, "inputs": ["raw/scan_1.nxs"]},
    )
    assert row.kind == "processed" and row.provenance == {"job": 7, "inputs": ["raw/scan_1.nxs"]}
    assert row.sha256 == sha(out) and row.title == "XRF fit"
    from beamdesk.h5.paths import PathNotFound

    with pytest.raises(PathNotFound):
        index_file(db, proposal, settings.data_root, "raw/escape.txt")


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="the shared example files are not present")
def test_other_facilities_files_are_all_described(settings: Settings, db) -> None:  # type: ignore[no-untyped-def]
    world = make_world(db)
    make_proposal(db, world, "20260101", ProposalState.data_collected)
    db.commit()
    target = settings.data_root / "20260101" / "raw"
    shutil.copytree(EXAMPLES, target)
    index_data_root(db, settings.data_root)
    found = rows(db)
    hdf5 = [d for d in found.values() if d.path.endswith((".hdf5", ".nxs"))]
    assert len(hdf5) == 7
    for d in hdf5:
        assert d.is_hdf5 and d.error == "", d.path
        # The reference: the entry's title read directly with h5py.
        with h5py.File(target / d.path.removeprefix("raw/"), "r") as fh:
            entry = next(fh[k] for k in fh if isinstance(fh[k], h5py.Group))
            title = entry["title"][()] if "title" in entry else b""
            title = title[0] if isinstance(title, np.ndarray) else title
            expected = title.decode() if isinstance(title, bytes) else str(title)
        assert d.title == expected, d.path
    assert found["raw/APS_NXsas_hdf5_nexus-example.hdf5"].start_time == datetime(
        2016, 6, 23, 18, 2, 31, tzinfo=UTC
    )  # file says 2016-06-23T13:02:31-05:00
    assert found["raw/DLS_i16_hdf5_538039.nxs"].instrument == "i16"


@pytest.fixture
def search_world(any_settings: Settings):  # type: ignore[no-untyped-def]
    """Three proposals with datasets: a member's, a released one, and a stranger's."""
    engine = make_engine(any_settings.database_url)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    with sessions() as db:
        world = make_world(db, tokens=True)
        make_proposal(db, world, "20260201", ProposalState.data_collected)
        make_proposal(
            db, world, "20200001", ProposalState.closed, release_date=now - timedelta(days=1)
        )
        saxs = make_proposal(db, world, "20260202", ProposalState.data_collected)
        saxs.beamline_id = world.other_beamline.id
        saxs.beamtimes[0].beamline_id = world.other_beamline.id
        db.commit()
        tokens = dict(world.tokens)
    for number, title, start in (
        ("20260201", "zinc map of roots", "2026-02-01T00:00:00Z"),
        ("20260201", "iron scan", "2026-02-10T00:00:00Z"),
        ("20200001", "zinc open data", "2020-05-01T00:00:00Z"),
        ("20260202", "zinc in silica", "2026-02-05T00:00:00Z"),
    ):
        slug = title.replace(" ", "_")
        write_nexus(any_settings.data_root / number / "raw" / f"{slug}.nxs", title, start, "XRF")
    with sessions() as db:
        index_data_root(db, any_settings.data_root)
        db.commit()
    engine.dispose()
    from beamdesk.web.app import create_app

    app = create_app(any_settings)
    with TestClient(app) as client:
        yield client, tokens
    app.state.engine.dispose()


def _paths(answer) -> list[str]:  # type: ignore[no-untyped-def]
    assert answer.status_code == 200, answer.text
    return [f"{d['proposal']}/{d['path']}" for d in answer.json()["items"]]


def test_search_follows_access_and_filters(search_world) -> None:  # type: ignore[no-untyped-def]
    client, tokens = search_world
    pi = {"Authorization": f"Bearer {tokens['pi']}"}
    outsider = {"Authorization": f"Bearer {tokens['outsider']}"}
    office = {"Authorization": f"Bearer {tokens['office']}"}
    # The PI is a member of all three test proposals; the outsider reads only released data.
    assert _paths(client.get("/api/datasets?q=zinc", headers=outsider)) == [
        "20200001/raw/zinc_open_data.nxs"
    ]
    assert _paths(client.get("/api/datasets?q=zinc")) == ["20200001/raw/zinc_open_data.nxs"]
    assert len(_paths(client.get("/api/datasets?q=zinc", headers=office))) == 3
    assert _paths(client.get("/api/datasets?q=zinc&beamline=SAXS", headers=office)) == [
        "20260202/raw/zinc_in_silica.nxs"
    ]
    assert _paths(client.get("/api/datasets?proposal=20260201&q=ROOTS", headers=pi)) == [
        "20260201/raw/zinc_map_of_roots.nxs"
    ]
    window = "since=2026-02-04T00:00:00Z&until=2026-02-11T00:00:00Z"
    assert _paths(client.get(f"/api/datasets?{window}", headers=office)) == [
        "20260201/raw/iron_scan.nxs",
        "20260202/raw/zinc_in_silica.nxs",
    ]
    # Wildcards typed by a user are literal text, not patterns.
    assert _paths(client.get("/api/datasets?q=%25", headers=office)) == []
    page = client.get("/api/datasets?limit=2&offset=2", headers=office).json()
    assert page["total"] == 4 and len(page["items"]) == 2


def test_proposal_datasets_are_paginated_and_hidden_from_strangers(search_world) -> None:  # type: ignore[no-untyped-def]
    client, tokens = search_world
    pi = {"Authorization": f"Bearer {tokens['pi']}"}
    first = client.get("/api/proposals/20260201/datasets?limit=1", headers=pi).json()
    second = client.get("/api/proposals/20260201/datasets?limit=1&offset=1", headers=pi).json()
    assert first["total"] == 2
    assert [first["items"][0]["path"], second["items"][0]["path"]] == [
        "raw/iron_scan.nxs",
        "raw/zinc_map_of_roots.nxs",
    ]
    for persona in ("outsider", "reviewer"):  # reviewers read proposals, not their data
        r = client.get(
            "/api/proposals/20260201/datasets",
            headers={"Authorization": f"Bearer {tokens[persona]}"},
        )
        assert r.status_code == 404 and "traceback" not in r.text.lower()
    assert client.get("/api/proposals/20200001/datasets").json()["total"] == 1


def test_find_data_page_searches_what_the_visitor_may_read(search_world) -> None:  # type: ignore[no-untyped-def]
    client, tokens = search_world
    anonymous = client.get("/datasets?q=zinc")
    assert anonymous.status_code == 200
    assert "zinc_open_data.nxs" in anonymous.text and "zinc_in_silica" not in anonymous.text
    office = client.get(
        "/datasets?q=zinc&beamline=XRF&since=2026-01-01",
        headers={"Authorization": f"Bearer {tokens['office']}"},
    )
    assert "zinc_map_of_roots.nxs" in office.text
    assert "zinc_in_silica" not in office.text and "zinc_open_data" not in office.text
    assert client.get("/datasets?since=not-a-date").status_code == 200  # ignored, not a 500
