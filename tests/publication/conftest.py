"""A small facility for publication tests: NeXus files on disk, catalogued by the real
catalogue, in one released proposal, one under embargo and one on another beamline.

Numbers are chosen so each PaNOSC example query has public matches AND an embargoed
dataset that would match too if access were ignored.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest

from beamdesk.db import make_engine, make_sessionmaker
from beamdesk.migrate import upgrade
from beamdesk.portal.catalogue import index_proposal
from beamdesk.portal.models import MemberRole, ProposalState, Sample
from beamdesk.settings import Settings
from tests.conftest import make_settings
from tests.factories import make_proposal, make_world
from tests.nexus import nx_data, nx_entry, nx_group, nx_root

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
EMBARGO_ENDS = NOW + timedelta(days=30)


def write_scan(
    path: Path,
    *,
    title: str,
    energy: float,
    energy_unit: str,
    temperature: float,
    temperature_unit: str,
    formula: str,
    state: str,
    start: str,
    points: int = 64,
) -> None:
    """A NeXus file as a beamline writes it: entry, instrument, sample, data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        nx_root(f, default="entry", nx_class=False)
        entry = nx_entry(f, default="data", fields={"title": title, "start_time": start})
        instrument = nx_group(entry, "instrument", "NXinstrument", fields={"name": "XRF beamline"})
        mono = {"energy": energy}
        nx_group(instrument, "monochromator", "NXmonochromator", mono, {"energy": energy_unit})
        sample = {"chemical_formula": formula, "state": state, "temperature": temperature}
        nx_group(entry, "sample", "NXsample", sample, {"temperature": temperature_unit})
        nx_data(entry, "data", "counts", np.arange(points, dtype="u4") * 7 % 251)


@dataclass
class Facility:
    """What tests need to know of the facility (plain values: the rows live in the DB)."""

    tokens: dict[str, str]
    beamline_id: int
    files: dict[str, Path] = field(default_factory=dict)  # "number/path" -> file
    dataset_ids: dict[str, int] = field(default_factory=dict)  # "number/path" -> id


def build_facility(db, settings: Settings) -> Facility:  # type: ignore[no-untyped-def]
    world = make_world(db, tokens=True)
    world.beamline.techniques = "X-ray fluorescence, X-Ray Absorption"
    world.other_beamline.techniques = "small-angle X-ray scattering"
    world.users["pi"].full_name = "James Chadwick"
    world.users["pi"].orcid = "0000-0002-1825-0097"
    world.users["pi"].affiliation = "University of Cambridge"
    world.users["participant"].full_name = "Lise Meitner"
    released = make_proposal(
        db, world, "20260001", ProposalState.closed, release_date=NOW - timedelta(days=1)
    )
    released.title = "Copper in ancient bronzes"
    released.samples[:] = [Sample(name="Solid copper cylinder", formula="Cu", safety_declared=True)]
    embargoed = make_proposal(
        db, world, "20260002", ProposalState.closed, release_date=EMBARGO_ENDS
    )
    embargoed.title = "Vanadium under embargo"
    embargoed.samples[:] = [
        Sample(name="Solid copper cylinder", formula="Cu", safety_declared=True)
    ]
    saxs = make_proposal(
        db, world, "20260003", ProposalState.closed, release_date=NOW - timedelta(days=400)
    )
    saxs.title = "Vanadium in a container"
    saxs.beamline_id = world.other_beamline.id
    for b in saxs.beamtimes:
        b.beamline_id = world.other_beamline.id
    saxs.samples[:] = [Sample(name="Vanadium in a container", formula="V", safety_declared=True)]
    # Another PI on the SAXS proposal, so "documents of James Chadwick" tells them apart.
    for m in saxs.members:
        if m.role == MemberRole.pi:
            m.user_id = world.users["outsider"].id
    db.flush()

    root = settings.data_root
    scans = [
        # number, path, energy, unit, temperature, unit, formula, state
        ("20260001", "raw/scan_0001.nxs", 9.0, "keV", 20.0, "celsius", "Cu", "solid"),
        ("20260001", "raw/scan_0002.nxs", 12.0, "keV", 400.0, "K", "Cu", "liquid"),
        ("20260002", "raw/scan_0001.nxs", 930.0, "eV", 20.0, "celsius", "Cu", "solid"),
        ("20260003", "raw/saxs_0001.nxs", 0.93, "keV", 293.15, "K", "V", "solid"),
    ]
    facility = Facility(dict(world.tokens), world.beamline.id)
    for n, (number, rel, e, eu, t, tu, formula, state) in enumerate(scans):
        path = root / number / rel
        write_scan(
            path,
            title=f"{number} {rel}",
            energy=e,
            energy_unit=eu,
            temperature=t,
            temperature_unit=tu,
            formula=formula,
            state=state,
            start=f"2026-0{n + 1}-10T08:00:00Z",
            points=4096 * (n + 1),
        )
        facility.files[f"{number}/{rel}"] = path
    # An extra non-HDF5 file, to prove bytes are bytes.
    notes = root / "20260001" / "processed" / "notes.txt"
    notes.parent.mkdir(parents=True, exist_ok=True)
    notes.write_bytes(bytes(range(256)) * 40)
    facility.files["20260001/processed/notes.txt"] = notes
    for p in (released, embargoed, saxs):
        index_proposal(db, p, root)
    from beamdesk.portal.models import Dataset

    for d in db.query(Dataset).all():
        facility.dataset_ids[f"{d.proposal.number}/{d.path}"] = d.id
    return facility


@pytest.fixture(scope="session")
def facility_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Facility]:
    """Built once (password hashing and HDF5 writing are slow); each test gets a copy."""
    base = tmp_path_factory.mktemp("publication")
    url = f"sqlite:///{base / 'beamdesk.db'}"
    upgrade(url)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as db:
        built = build_facility(db, make_settings(base, url))
        db.commit()
    engine.dispose()
    return base, built


@pytest.fixture
def sqlite_url(tmp_path: Path, facility_template: tuple[Path, Facility]) -> str:
    """The migrated database of ``tests/conftest.py``, with the facility in it."""
    base, _ = facility_template
    shutil.copy(base / "beamdesk.db", tmp_path / "beamdesk.db")
    shutil.copytree(base / "data", tmp_path / "data", dirs_exist_ok=True)
    return f"sqlite:///{tmp_path / 'beamdesk.db'}"


@pytest.fixture
def facility(settings: Settings, facility_template: tuple[Path, Facility]) -> Facility:
    _, built = facility_template
    return replace(built, files={k: settings.data_root / k for k in built.files})


@pytest.fixture
def pinned_app(app):  # type: ignore[no-untyped-def]
    """The app with its clock pinned to ``NOW`` (tests move it with ``app.state.clock``)."""
    app.state.clock = lambda: NOW
    return app


def auth(facility: Facility, persona: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {facility.tokens[persona]}"}
