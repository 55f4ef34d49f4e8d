"""A proposal with real HDF5 files of every type, members with API tokens, a test client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from fastapi.testclient import TestClient

from beamdesk.portal.models import ProposalState
from tests.factories import make_proposal, make_world
from tests.h5.builders import NUMBER, OTHER, H5World, write_types


@pytest.fixture
def h5world(app, sessions, settings, tmp_path: Path) -> Iterator[H5World]:  # type: ignore[no-untyped-def]
    with sessions() as db:
        world = make_world(db, tokens=True)
        make_proposal(db, world, NUMBER, ProposalState.data_collected)
        make_proposal(db, world, OTHER, ProposalState.data_collected)
        db.commit()
        tokens = dict(world.tokens)
    root = settings.data_root / NUMBER
    (root / "raw").mkdir(parents=True)
    other = settings.data_root / OTHER
    other.mkdir()
    secret = other / "secret.h5"
    with h5py.File(secret, "w") as f:
        f["values"] = np.full(3, 4242.5)
    outside = tmp_path / "outside.h5"
    with h5py.File(outside, "w") as f:
        f["values"] = np.full(3, 1313.25)
    write_types(root / "raw" / "types.h5")
    with h5py.File(root / "raw" / "ext_target.h5", "w") as f:
        f["values"] = np.arange(4.0)
    (root / "raw" / "link_out.h5").symlink_to(outside)
    with TestClient(app) as client:
        yield H5World(client, root, tokens, secret)
