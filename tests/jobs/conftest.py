"""A proposal with a synthetic XRF map of known element amplitudes, people, a job runner.

The map comes from the independent forward model in ``tests/xrf/xrf_synth.py`` (xraylib
line energies and rates, Gaussians, Poisson noise), never from ``beamdesk.xrf``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from beamdesk.portal.models import ProposalState
from beamdesk.settings import Settings
from tests.factories import World, make_proposal, make_world
from tests.xrf.xrf_synth import expected_spectrum, synthetic_cfg_text, write_map

NUMBER = "20260001"
DS = "/entry/data/spectra"
FE_LEVEL, CU_LEVEL = 1500.0, 400.0
AREAS = {"Fe": 1500.0, "Cu": 400.0, "Zn": 300.0}  # of every pixel of the slow map


def truth(shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Known K-group areas: an Fe gradient, a Cu particle, flat Zn."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return {
        "Fe": FE_LEVEL + 40.0 * xx,
        "Cu": np.where(
            (yy - shape[0] // 2) ** 2 + (xx - shape[1] // 2) ** 2 < 16, 2000.0, CU_LEVEL
        ),
        "Zn": np.full(shape, 300.0),
    }


def cfg_text() -> str:
    # the synthetic detector's configuration with only the elements of this map
    text = synthetic_cfg_text()
    return text.replace("Ti = K\n", "").replace("Sr = K\n", "")


def write_slow_map(path: Path, rows: int = 160, cols: int = 160) -> None:
    """A gzip map with one-row chunks: a few seconds of work, so a kill lands mid-job."""
    mean = expected_spectrum(AREAS, continuum=5.0)
    rng = np.random.default_rng(11)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(
            DS,
            shape=(rows, cols, mean.size),
            dtype="u2",
            chunks=(1, cols, mean.size),
            compression="gzip",
            compression_opts=1,
        )
        for r in range(0, rows, 8):
            ds[r : r + 8] = rng.poisson(mean, size=(min(8, rows - r), cols, mean.size))


@dataclass
class JobsWorld:
    world: World
    settings: Settings
    folder: Path
    truth: dict[str, np.ndarray]

    def token(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.world.tokens[who]}"}


def build_world(
    settings: Settings, sessions: sessionmaker[Session], shape: tuple[int, int] = (12, 16)
) -> JobsWorld:
    with sessions() as db:
        world = make_world(db, tokens=True)
        make_proposal(db, world, NUMBER, ProposalState.scheduled)
        make_proposal(db, world, "20260002", ProposalState.scheduled)
        db.commit()
    folder = settings.data_root / NUMBER
    (folder / "raw").mkdir(parents=True)
    (settings.data_root / "20260002" / "raw").mkdir(parents=True)
    amplitudes = truth(shape)
    write_map(folder / "raw" / "map.h5", amplitudes, continuum=5.0, seed=7, chunks=None)
    with h5py.File(folder / "raw" / "line.h5", "w") as f:
        f["entry/data/spectra"] = np.arange(1024, dtype=np.uint16)
    (folder / "raw" / "fit.cfg").write_text(cfg_text())
    return JobsWorld(world, settings, folder, amplitudes)


@pytest.fixture
def thread_settings(settings: Settings) -> Settings:
    """Two thread workers: quick to start, enough for everything but killing a worker."""
    return settings.changed(jobs={"dask_workers": 2, "dask_processes": False})


@pytest.fixture
def jobs_world(thread_settings: Settings, sessions: sessionmaker[Session]) -> JobsWorld:
    return build_world(thread_settings, sessions)


@pytest.fixture
def jobs_app(thread_settings: Settings):  # type: ignore[no-untyped-def]
    """The app with a running job runner on a thread LocalCluster."""
    from beamdesk.web.app import create_app

    application = create_app(thread_settings, run_jobs=True)
    yield application
    application.state.engine.dispose()


@pytest.fixture
def jobs_client(jobs_app, jobs_world: JobsWorld) -> Iterator:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(jobs_app) as test_client:
        yield test_client
