"""``beamdesk demo``: every role and state present, real NeXus data, idempotent."""

from __future__ import annotations

import itertools

import h5py
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from beamdesk.demo import create_demo
from beamdesk.demo.facility import DEMO_XRF_DATASET, DEMO_XRF_MAP, DEMO_XRF_PROPOSAL
from beamdesk.portal.auth import authenticate
from beamdesk.portal.models import Dataset, Proposal, ProposalState, User
from tests.test_auth import sign_in

PASSWORD = "demo password for the tests"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from beamdesk.db import make_engine, make_sessionmaker
    from beamdesk.migrate import upgrade
    from tests.conftest import make_settings

    tmp = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{tmp / 'beamdesk.db'}"
    upgrade(url)
    settings = make_settings(tmp, url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    mp = pytest.MonkeyPatch()
    mp.setenv("BEAMDESK_DEMO_PASSWORD", PASSWORD)
    first = create_demo(settings, sessions)
    second = create_demo(settings, sessions)
    mp.undo()
    yield settings, sessions, first, second
    engine.dispose()


def test_every_role_and_state_is_there(demo) -> None:  # type: ignore[no-untyped-def]
    _settings, sessions, first, _ = demo
    assert set(first.passwords) == {"alice", "bob", "carol", "dave", "eve", "mallory"}
    assert set(first.passwords.values()) == {PASSWORD}
    with sessions() as db:
        states = set(db.scalars(select(Proposal.state)))
        assert states == set(ProposalState)
        alice = authenticate(db, "alice", PASSWORD)
        assert alice is not None
        dave = db.scalar(select(User).where(User.username == "dave"))
        assert {b.name for b in dave.beamlines} == {"XRF", "SAXS"}
        # Each history is a chain: every step starts where the previous one ended.
        for proposal in db.scalars(select(Proposal)):
            steps = [
                (t.from_state, t.to_state)
                for t in proposal.transitions
                if t.action not in ("release_early", "extend_embargo")
            ]
            assert steps[0] == ("", "draft")
            for (_, before), (after, _) in itertools.pairwise(steps):
                assert before == after, proposal.number
            assert steps[-1][1] == proposal.state.value


def test_second_run_adds_nothing(demo) -> None:  # type: ignore[no-untyped-def]
    _, _, first, second = demo
    assert first.new_proposals and first.files
    assert second.new_proposals == [] and second.files == [] and second.passwords == {}
    assert set(second.existing_users) == set(first.passwords)


def test_released_data_is_open_and_the_rest_is_not(demo) -> None:  # type: ignore[no-untyped-def]
    settings, _, _, _ = demo
    from beamdesk.web.app import create_app

    app = create_app(settings)
    with TestClient(app) as client:
        assert sign_in(client, "mallory", PASSWORD).status_code == 303
        seen = [p["number"] for p in client.get("/api/proposals").json()["items"]]
        assert seen == ["20210001"]
        assert client.get("/api/proposals/20210001/datasets").json()["total"] >= 2
        assert client.get(f"/api/proposals/{DEMO_XRF_PROPOSAL}/datasets").status_code == 404
    app.state.engine.dispose()


def test_data_are_real_nexus(demo) -> None:  # type: ignore[no-untyped-def]
    settings, sessions, _, _ = demo
    root = settings.data_root / DEMO_XRF_PROPOSAL
    with h5py.File(root / DEMO_XRF_MAP, "r") as fh:
        spectra = fh[DEMO_XRF_DATASET]
        assert spectra.ndim == 3 and spectra.shape[-1] == 2048
        energy = fh["/entry/spectra/energy"][()]
        total = spectra[()].sum(axis=(0, 1))
    # The strongest line between 6 and 7 keV must be Fe Kα1 at 6.404 keV (tabulated).
    window = (energy > 6.0) & (energy < 7.0)
    assert abs(energy[window][np.argmax(total[window])] - 6.404) <= 0.011
    with h5py.File(root / "raw" / "tomo" / "projections.nxs", "r") as fh:
        stack = fh["/entry/data/data"]
        assert stack.size * stack.dtype.itemsize >= 1_000_000_000
        assert stack.compression is not None or stack.id.get_create_plist().get_nfilters() > 0
        assert not np.array_equal(stack[0], stack[100])
    assert (root / "raw" / "tomo" / "projections.nxs").stat().st_size < 200_000_000
    with h5py.File(settings.data_root / "20260009" / "raw" / "saxs" / "insulin_001.nxs") as fh:
        frames = fh["/entry/data/data"]
        # Detector frames are bitshuffle-LZ4 compressed (filter 32008), as Dectris writes them.
        plist = frames.id.get_create_plist()
        assert 32008 in [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        assert frames[0].max() > 1000
    with sessions() as db:
        rows = list(db.scalars(select(Dataset)))
        assert len(rows) >= 20
        assert [r.path for r in rows if r.error] == []
        assert any(r.path.startswith("raw/other-facilities/") for r in rows)


def test_released_proposal_has_a_published_collection(demo) -> None:  # type: ignore[no-untyped-def]
    settings, _, _, _ = demo
    from beamdesk.web.app import create_app

    app = create_app(settings)
    with TestClient(app) as client:
        page = client.get("/catalogue")
        assert page.status_code == 200
        assert "µXRF maps and Fe K-edge XANES of lead white" in page.text
        assert "10.5072/" in page.text
    app.state.engine.dispose()
