"""A proposal with a small synthetic XRF map of known element areas, for the workbench tests.

The map comes from the independent forward model in ``tests/xrf/xrf_synth.py`` (xraylib
line energies and rates, Gaussians, Poisson noise), never from ``beamdesk.xrf``, so fitted
areas are compared with the amplitudes that made the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from beamdesk.portal.catalogue import index_data_root
from beamdesk.portal.models import ProposalState
from beamdesk.settings import Settings
from tests.factories import World, make_proposal, make_world
from tests.xrf.xrf_synth import synthetic_cfg_text, write_map

NUMBER = "20260001"
OTHER = "20260002"
MAP_FILE = "raw/xrf/map.nxs"
MAP_PATH = "/entry/data/spectra"
CONFIG_FILE = "config/fit.cfg"
SHAPE = (12, 16)
CONTINUUM = 5.0


def truth(shape: tuple[int, int] = SHAPE) -> dict[str, np.ndarray]:
    """Known K-group areas per pixel: an Fe gradient, a Cu particle, flat Zn."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return {
        "Fe": 1500.0 + 40.0 * xx,
        "Cu": np.where((yy - shape[0] // 2) ** 2 + (xx - shape[1] // 2) ** 2 < 16, 2000.0, 400.0),
        "Zn": np.full(shape, 300.0),
    }


def cfg_text() -> str:
    """The synthetic detector's PyMca configuration with only this map's elements."""
    return synthetic_cfg_text().replace("Ti = K\n", "").replace("Sr = K\n", "")


@dataclass
class WorkbenchWorld:
    world: World
    folder: Path
    truth: dict[str, np.ndarray]

    def token(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.world.tokens[who]}"}


def build(settings: Settings, sessions: sessionmaker[Session]) -> WorkbenchWorld:
    with sessions() as db:
        world = make_world(db, tokens=True)
        make_proposal(db, world, NUMBER, ProposalState.scheduled)
        make_proposal(db, world, OTHER, ProposalState.scheduled)
        db.commit()
    folder = settings.data_root / NUMBER
    (folder / "raw" / "xrf").mkdir(parents=True)
    (folder / "config").mkdir()
    (settings.data_root / OTHER / "raw").mkdir(parents=True)
    amplitudes = truth()
    write_map(folder / MAP_FILE, amplitudes, continuum=CONTINUUM, seed=7, chunks=None)
    with h5py.File(folder / "raw" / "line.h5", "w") as f:
        f["entry/data/spectra"] = np.arange(1024, dtype=np.uint16)
    (folder / CONFIG_FILE).write_text(cfg_text())
    (settings.data_root / OTHER / "secret.cfg").write_text(cfg_text())
    with sessions() as db:  # catalogued, so the proposal page lists the files
        index_data_root(db, settings.data_root, only=NUMBER)
        db.commit()
    return WorkbenchWorld(world, folder, amplitudes)
