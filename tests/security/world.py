"""A small facility for the security tests: every persona, one proposal per variant of
``expectations.VARIANTS`` with an HDF5 file, a text file, a catalogue, a finished job, a
data collection (published for the published proposal) and each persona's API token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import h5py
import numpy as np
from sqlalchemy.orm import Session

from beamdesk.db import utcnow
from beamdesk.jobs.models import Job, JobState
from beamdesk.portal.catalogue import index_proposal
from beamdesk.portal.collections import Collection, CollectionItem
from beamdesk.portal.models import Dataset, ProposalState
from beamdesk.settings import Settings
from tests.factories import make_proposal, make_world
from tests.nexus import nx_data, nx_entry, nx_root
from tests.security.expectations import VARIANTS

H5_FILE = "raw/scan.h5"
H5_DATASET = "/entry/data/counts"
TEXT_FILE = "processed/notes.txt"


@dataclass
class Facts:
    """Plain values the tests need (the rows live in the database)."""

    tokens: dict[str, str] = field(default_factory=dict)
    token_ids: dict[str, int] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)
    job_ids: dict[str, int] = field(default_factory=dict)
    collection_ids: dict[str, int] = field(default_factory=dict)
    dataset_ids: dict[str, int] = field(default_factory=dict)
    dois: dict[str, str] = field(default_factory=dict)


def write_scan(path: Path) -> None:
    """A NeXus-like scan: 2-D counts with a known sum (for "the server still serves")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        nx_root(f, default="entry", nx_class=False)
        entry = nx_entry(f, fields={"title": "matrix scan"})
        counts = np.arange(12, dtype="i4").reshape(3, 4)
        nx_data(entry, "data", "counts", counts, units={"counts": "counts"})


def build(db: Session, settings: Settings) -> Facts:
    world = make_world(db, tokens=True)
    facts = Facts(tokens=dict(world.tokens))
    facts.user_ids = {name: u.id for name, u in world.users.items()}
    now = utcnow()
    dates = {
        "none": None,
        "embargoed": now + timedelta(days=400),
        "released": now - timedelta(days=10),
    }
    for v in VARIANTS:
        p = make_proposal(db, world, v.number, v.state, release_date=dates[v.embargo])
        folder = settings.data_root / v.number
        write_scan(folder / H5_FILE)
        (folder / TEXT_FILE).parent.mkdir(parents=True, exist_ok=True)
        (folder / TEXT_FILE).write_text("beam notes\n")
        index_proposal(db, p, settings.data_root)
        dataset = db.query(Dataset).filter_by(proposal_id=p.id, path=H5_FILE).one()
        facts.dataset_ids[v.number] = dataset.id
        # As beamdesk.jobs.service.submit records one.
        job = Job(
            owner_id=world.users["pi"].id,
            proposal_id=p.id,
            kind="xrf_map",
            parameters={
                "input": f"{H5_FILE}::{H5_DATASET}",
                "file": H5_FILE,
                "dataset": H5_DATASET,
                "config": {},
                "config_file": None,
            },
            inputs=[H5_FILE],
            state=JobState.done,
            progress=1.0,
        )
        db.add(job)
        coll = Collection(
            proposal_id=p.id,
            title=f"Data of {v.number}",
            creators=[{"name": "Pi, Test"}],
            created_by=world.users["pi"].id,
        )
        coll.items.append(CollectionItem(dataset_id=dataset.id))
        if v.collection_published:
            facts.dois[v.number] = f"10.5072/bd.{v.number}"
            coll.doi, coll.doi_state, coll.published_at = facts.dois[v.number], "draft", now
            p.doi = f"10.5072/bd.p{v.number}"
        db.add(coll)
        db.flush()
        facts.job_ids[v.number] = job.id
        facts.collection_ids[v.number] = coll.id
        if v.state == ProposalState.published:
            p.doi = p.doi or f"10.5072/bd.p{v.number}"
    from beamdesk.portal.models import ApiToken

    for name, user in world.users.items():
        facts.token_ids[name] = db.query(ApiToken).filter_by(user_id=user.id).one().id
    db.flush()
    return facts
