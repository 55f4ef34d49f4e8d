"""Access and confinement: what a caller may not see is 404, on every endpoint."""

from __future__ import annotations

from datetime import timedelta

import pytest

from beamdesk.db import utcnow
from beamdesk.portal.models import Proposal
from tests.h5.builders import NUMBER, H5World

ENDPOINTS = [
    ("meta", {}),
    ("attr", {}),
    ("paths", {}),
    ("data", {"path": "/f4"}),
    ("data", {"path": "/f4", "format": "npy"}),
    ("stats", {"path": "/f4"}),
    ("subset", {"paths": "/f4"}),
]


@pytest.mark.parametrize(("endpoint", "params"), ENDPOINTS)
def test_members_and_office_read(h5world: H5World, endpoint: str, params: dict) -> None:
    for who in ("pi", "participant", "local_contact", "office"):
        r = h5world.get(endpoint, who=who, file="raw/types.h5", **params)
        assert r.status_code == 200, (who, r.text)


@pytest.mark.parametrize(("endpoint", "params"), ENDPOINTS)
def test_outsiders_and_anonymous_get_404(h5world: H5World, endpoint: str, params: dict) -> None:
    for who in ("outsider", "reviewer", "other_scientist", None):
        r = h5world.get(endpoint, who=who, file="raw/types.h5", **params)
        assert r.status_code == 404, (who, endpoint, r.status_code)
        assert r.json()["message"] == r.json()["detail"]
        assert "f4" not in r.text and "types" not in r.text


def test_anonymous_reads_released_data(h5world: H5World, sessions) -> None:  # type: ignore[no-untyped-def]
    assert h5world.get("meta", who=None, file="raw/types.h5").status_code == 404
    with sessions() as db:
        proposal = db.query(Proposal).filter_by(number=NUMBER).one()
        proposal.release_date = utcnow() - timedelta(days=1)
        db.commit()
    r = h5world.get("data", who=None, file="raw/types.h5", path="/int8")
    assert r.status_code == 200 and r.json() == list(range(-5, 5))


ATTACKS = [
    "../20260002/secret.h5",
    "raw/../../20260002/secret.h5",
    "/etc/passwd",
    "raw/link_out.h5",
    "raw/%2e%2e/%2e%2e/20260002/secret.h5",
    "..%2F20260002%2Fsecret.h5",
    "\uff0e\uff0e/20260002/secret.h5",
    "raw/\u202etypes.h5",
    "raw/types.h5\x00",
    "raw",
    "raw/missing.h5",
]


@pytest.mark.parametrize("file", ATTACKS)
@pytest.mark.parametrize("endpoint", ["meta", "data", "paths"])
def test_path_attacks_are_404(h5world: H5World, file: str, endpoint: str) -> None:
    r = h5world.get(endpoint, file=file, path="/values")
    assert r.status_code == 404, r.text
    assert "4242" not in r.text and "1313" not in r.text


def test_raw_encoded_url_is_404(h5world: H5World) -> None:
    for raw in (
        "..%2F20260002%2Fsecret.h5",
        "%2Fetc%2Fpasswd",
        "raw%2F..%2F..%2F20260002%2Fsecret.h5",
    ):
        r = h5world.client.get(
            f"/api/proposals/{NUMBER}/h5/meta?file={raw}", headers=h5world.auth()
        )
        assert r.status_code == 404


def test_bad_token_is_refused(h5world: H5World) -> None:
    r = h5world.client.get(
        f"/api/proposals/{NUMBER}/h5/meta",
        params={"file": "raw/types.h5"},
        headers={"Authorization": "Bearer bd_nonsense"},
    )
    assert r.status_code == 401


@pytest.mark.parametrize("name", ["\x00", "/f4\x00", "", "\x00x"])
def test_names_libhdf5_cannot_look_up_are_not_found(h5world: H5World, name: str) -> None:
    """A NUL in a path or attribute name (``%00`` in the query) made h5py raise RuntimeError:
    found by the schema fuzzer once broad catches were gone. It is 404, like any other name
    the file does not have."""
    if name:
        r = h5world.get("meta", file="raw/types.h5", path=name)
        assert r.status_code == 404, r.text
    r = h5world.get("attr", file="raw/types.h5", path="/f4", attr_keys=[name])
    assert r.status_code == 404, r.text
    assert "No attribute" in r.json()["detail"]
