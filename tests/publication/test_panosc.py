"""The PaNOSC search API answers the specification's example queries with the right
datasets, and never with an embargoed one.

The facility (conftest): 20260001 released (XRF: Cu scans at 9 keV/20 °C solid and
12 keV/400 K liquid, plus a text file), 20260002 under embargo (XRF: 930 eV, 20 °C, solid
Cu: it would match several queries), 20260003 released (SAXS: 0.93 keV = 930 eV, 293.15 K
= 20 °C, vanadium).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from beamdesk.portal import panosc
from tests.publication.conftest import Facility, auth

A = "20260001/raw/scan_0001.nxs"
B = "20260001/raw/scan_0002.nxs"
NOTES = "20260001/processed/notes.txt"
EMBARGOED = "20260002/raw/scan_0001.nxs"
D = "20260003/raw/saxs_0001.nxs"


def ids(facility: Facility, *keys: str) -> set[str]:
    return {str(facility.dataset_ids[k]) for k in keys}


def walk_ids(obj: Any, found: set[str]) -> set[str]:
    """Every dataset id anywhere in an answer (nested includes too)."""
    if isinstance(obj, dict):
        if "creationDate" in obj and "id" in obj:
            found.add(obj["id"])
        for v in obj.values():
            walk_ids(v, found)
    elif isinstance(obj, list):
        for v in obj:
            walk_ids(v, found)
    return found


@pytest.fixture
def search(pinned_app, client, facility):  # type: ignore[no-untyped-def]
    embargoed = str(facility.dataset_ids[EMBARGOED])

    def get(model: str, flt: dict[str, Any] | None = None, persona: str | None = None):  # type: ignore[no-untyped-def]
        params = {"filter": json.dumps(flt)} if flt is not None else {}
        r = client.get(
            f"/api/panosc/{model}",
            params=params,
            headers=auth(facility, persona) if persona else {},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        if persona is None:
            assert embargoed not in walk_ids(body, set()), "an embargoed dataset leaked"
        return body

    return get


def test_spec_dataset_by_technique(search, facility) -> None:  # type: ignore[no-untyped-def]
    got = search("datasets", {"where": {"techniques.name": "X-Ray Absorption"}})
    assert {d["id"] for d in got} == ids(facility, A, B, NOTES)


def test_spec_dataset_photon_energy_range_with_unit_conversion(search, facility) -> None:  # type: ignore[no-untyped-def]
    flt = {
        "where": {
            "and": [
                {"variable": "photon_energy", "operator": "gt", "value": 880, "unit": "eV"},
                {"variable": "photon_energy", "operator": "lt", "value": 990, "unit": "eV"},
            ]
        },
        "include": ["parameters"],
    }
    got = search("datasets", flt)
    # 0.93 keV is inside 880-990 eV; the embargoed 930 eV scan is not shown.
    assert {d["id"] for d in got} == ids(facility, D)
    energy = next(p for p in got[0]["parameters"] if p["name"] == "instrument/monochromator/energy")
    assert (energy["value"], energy["unit"]) == (0.93, "keV")


def test_spec_dataset_solid_copper(search, facility) -> None:  # type: ignore[no-untyped-def]
    flt = {
        "where": {
            "and": [
                {"variable": "sample_state", "operator": "eq", "value": "solid"},
                {"variable": "chemical_formula", "operator": "eq", "value": "Cu"},
            ]
        }
    }
    assert {d["id"] for d in search("datasets", flt)} == ids(facility, A)


def test_spec_dataset_temperature_below_80_celsius(search, facility) -> None:  # type: ignore[no-untyped-def]
    flt = {
        "where": {
            "query": {"variable": "temperature", "operator": "lt", "value": 80, "unit": "celsius"}
        }
    }
    # 20 °C and 293.15 K match; 400 K (126.85 °C) does not.
    assert {d["id"] for d in search("datasets", flt)} == ids(facility, A, D)


def test_spec_documents_of_a_principal_investigator(search, facility) -> None:  # type: ignore[no-untyped-def]
    flt = {
        "where": {"type": "proposal"},
        "include": [
            {
                "relation": "members",
                "scope": {
                    "where": {"role": "principal investigator"},
                    "include": [
                        {"relation": "person", "scope": {"where": {"name": "James Chadwick"}}}
                    ],
                },
            },
            {"relation": "datasets"},
        ],
    }
    got = search("documents", flt)
    assert [d["id"] for d in got] == ["proposal-20260001"]
    assert got[0]["members"][0]["person"]["fullName"] == "James Chadwick"
    assert {d["id"] for d in got[0]["datasets"]} == ids(facility, A, B, NOTES)


def test_spec_documents_containing_datasets_in_a_range(search, facility) -> None:  # type: ignore[no-untyped-def]
    flt = {
        "include": [
            {
                "relation": "datasets",
                "scope": {
                    "where": {
                        "and": [
                            {
                                "name": "photon_energy",
                                "operator": "gt",
                                "value": 1000,
                                "unit": "eV",
                            },
                            {
                                "name": "photon_energy",
                                "operator": "lt",
                                "value": 10000,
                                "unit": "eV",
                            },
                        ]
                    }
                },
            }
        ]
    }
    got = search("documents", flt)
    assert [d["id"] for d in got] == ["proposal-20260001"]
    assert {d["id"] for d in got[0]["datasets"]} == ids(facility, A)


def test_spec_documents_by_sample_and_technique(search, facility) -> None:  # type: ignore[no-untyped-def]
    flt = {
        "include": [
            {
                "relation": "datasets",
                "scope": {
                    "include": [
                        {
                            "relation": "techniques",
                            "scope": {"where": {"name": "X-Ray Absorption"}},
                        },
                        {
                            "relation": "samples",
                            "scope": {"where": {"name": "Solid copper cylinder"}},
                        },
                    ]
                },
            }
        ]
    }
    got = search("documents", flt)
    assert [d["id"] for d in got] == ["proposal-20260001"]


def test_operators_or_inq_like_between(search, facility) -> None:  # type: ignore[no-untyped-def]
    got = search(
        "datasets",
        {
            "where": {
                "or": [
                    {"title": {"like": "%scan_0002%"}},
                    {"samples.name": "Vanadium in a container"},
                ]
            }
        },
    )
    assert {d["id"] for d in got} == ids(facility, B, D)
    got = search("datasets", {"where": {"id": {"inq": sorted(ids(facility, A, EMBARGOED))}}})
    assert {d["id"] for d in got} == ids(facility, A)
    got = search(
        "datasets",
        {"where": {"creationDate": {"between": ["2026-01-01T00:00:00Z", "2026-02-28T00:00:00Z"]}}},
    )
    assert {d["id"] for d in got} == ids(facility, A, B)
    got = search("datasets", {"where": {"title": {"ilike": "SAXS"}}})
    assert {d["id"] for d in got} == ids(facility, D)
    got = search("datasets", {"where": {"instrument.name": {"neq": "XRF"}}})
    assert {d["id"] for d in got} == ids(facility, D)


def test_limit_skip_and_include_shapes(search, facility) -> None:  # type: ignore[no-untyped-def]
    everything = search(
        "datasets", {"include": ["files", "instrument", "document", "samples", "techniques"]}
    )
    assert {d["id"] for d in everything} == ids(facility, A, B, NOTES, D)
    assert all(d["isPublic"] for d in everything)
    first = everything[0]
    assert first["files"][0]["size"] == facility.files[A].stat().st_size
    assert first["instrument"] == {
        "id": str(facility.beamline_id),
        "name": "XRF",
        "pid": "http://127.0.0.1:8000/instruments/XRF",
        "facility": "Elettra",
    }
    assert first["document"]["type"] == "proposal"
    page = search("datasets", {"limit": 2, "skip": 1})
    assert [d["id"] for d in page] == [d["id"] for d in everything[1:3]]
    assert "files" not in page[0]  # not included, not shown


def test_instruments_and_single_objects(search, client, facility) -> None:  # type: ignore[no-untyped-def]
    got = search("instruments", {"where": {"name": "XRF"}, "include": ["datasets"]})
    assert len(got) == 1 and {d["id"] for d in got[0]["datasets"]} == ids(facility, A, B, NOTES)
    assert client.get("/api/panosc/instruments/count").json() == {"count": 2}
    one = client.get(f"/api/panosc/datasets/{facility.dataset_ids[A]}").json()
    assert one["samples"][0]["name"] == "Solid copper cylinder"
    assert client.get(f"/api/panosc/datasets/{facility.dataset_ids[EMBARGOED]}").status_code == 404
    assert client.get("/api/panosc/documents/proposal-20260002").status_code == 404
    assert client.get("/api/panosc/documents/proposal-20260003").json()["type"] == "proposal"
    assert client.get(
        "/api/panosc/datasets/count",
        params={"where": json.dumps({"techniques.name": "X-Ray Absorption"})},
    ).json() == {"count": 3}


def test_members_see_their_embargoed_data_marked_not_public(search, facility) -> None:  # type: ignore[no-untyped-def]
    got = search("datasets", {"where": {"isPublic": False}}, persona="pi")
    assert {d["id"] for d in got} == ids(facility, EMBARGOED)
    got = search("datasets", {"where": {"isPublic": False}}, persona="outsider")
    assert got == []


def test_embargo_ends_and_the_dataset_appears(pinned_app, search, facility) -> None:  # type: ignore[no-untyped-def]
    from tests.publication.conftest import EMBARGO_ENDS

    pinned_app.state.clock = lambda: EMBARGO_ENDS
    embargoed = str(facility.dataset_ids[EMBARGOED])
    r = search("datasets", {"where": {"id": embargoed}}, persona="outsider")
    assert [d["id"] for d in r] == [embargoed]


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        "[]",
        '{"where": []}',
        '{"limit": -1}',
        '{"where": {"title": {"foo": 1}}}',
        '{"include": "nonsense"}',
        '{"where": {"id": {"inq": 3}}}',
        '{"order": 1, "x": 2}',
    ],
)
def test_bad_filters_are_400_problems(pinned_app, client, facility, bad: str) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/api/panosc/datasets", params={"filter": bad})
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")


def test_unit_conversion_reference_values() -> None:
    # Independent constants: 1 eV = 1.602176634e-19 J (exact, SI 2019); 0 °C = 273.15 K.
    assert panosc.to_si(1.0, "keV") == pytest.approx(1.602176634e-16)
    assert panosc.to_si(80.0, "celsius") == pytest.approx(353.15)
    assert panosc.to_si(1.0, "Å") == pytest.approx(1e-10)
    assert panosc.to_si(1.0, "furlong") is None


@pytest.mark.parametrize(
    "where",
    [
        {"creationDate": {"lte": "2026-01-10T08:00:00Z"}},  # exactly scan A's start
        {"creationDate": {"between": ["2026-01-10T08:00:00Z", "2026-03-10T08:00:00Z"]}},
        {"creationDate": {"gt": "2026-02-10T08:00:00Z"}},
        {"instrument.name": "SAXS"},
        {"samples.name": "Solid copper cylinder"},
        {"size": {"gt": 50000}},
        {"id": {"inq": ["1", "3", "x"]}},
        {"or": [{"size": {"lt": 20000}}, {"title": {"like": "%saxs%"}}]},
        {
            "and": [
                {"instrument.name": "XRF"},
                {"query": {"variable": "temperature", "operator": "gt", "value": 300, "unit": "K"}},
            ]
        },
    ],
)
def test_sql_narrowing_agrees_with_the_evaluator(pinned_app, facility, where) -> None:  # type: ignore[no-untyped-def]
    """SQL only skips rows that cannot match: same answer as evaluating every row."""
    from beamdesk.portal import access
    from tests.publication.conftest import NOW

    with pinned_app.state.sessionmaker() as db:
        harvest = panosc.Harvest(
            db,
            access.readable_proposals(access.ANONYMOUS, NOW),
            NOW,
            "Elettra",
            "CC-BY-4.0",
            "http://x",
        )
        narrowed = {d["id"] for d in harvest.datasets(where) if panosc.matches(d, where)}
        everything = {d["id"] for d in harvest.datasets(None) if panosc.matches(d, where)}
    assert narrowed == everything
    if where == {"creationDate": {"lte": "2026-01-10T08:00:00Z"}}:
        assert narrowed == ids(facility, A)  # the boundary instant itself is included
