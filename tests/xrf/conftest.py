"""Fixtures for the XRF tests (helpers live in xrf_synth.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from xrf_synth import synthetic_cfg_text


@pytest.fixture
def synthetic_cfg(tmp_path: Path):
    from beamdesk.xrf.config import load_config

    p = tmp_path / "synthetic.cfg"
    p.write_text(synthetic_cfg_text())
    return load_config(p)
