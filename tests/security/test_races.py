"""Swapping a folder for a symlink while files are served must never serve what the
symlink points at: files are opened once, beneath the proposal, by descriptor."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from tests.security.conftest import Facility
from tests.security.expectations import VARIANTS

RELEASED = VARIANTS[4].number
EMBARGOED = VARIANTS[2].number


def test_symlink_swap_during_downloads_never_serves_the_embargoed_file(facility: Facility) -> None:
    root = facility.settings.data_root
    secret_dir = root / EMBARGOED / "raw" / "race"
    secret_dir.mkdir(parents=True, exist_ok=True)
    (secret_dir / "data.bin").write_bytes(b"EMBARGOED" * 1000)
    public = root / RELEASED / "raw" / "race"
    real = root / RELEASED / "raw" / "race-real"
    real.mkdir(parents=True, exist_ok=True)
    (real / "data.bin").write_bytes(b"public..." * 1000)
    public.symlink_to(real.name)  # inside the proposal: allowed
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            for target in (secret_dir, Path(real.name)):
                tmp = public.with_name("race.tmp")
                tmp.unlink(missing_ok=True)
                tmp.symlink_to(target)
                os.replace(tmp, public)

    thread = threading.Thread(target=swap)
    thread.start()
    statuses: dict[int, int] = {}
    try:
        for _ in range(200):
            r = facility.client.get(f"/api/proposals/{RELEASED}/files/raw/race/data.bin")
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert b"EMBARGOED" not in r.content
    finally:
        stop.set()
        thread.join()
    assert set(statuses) <= {200, 404}, statuses
    assert statuses.get(200, 0) > 0, statuses  # the public file is still served
