"""Collections end to end over HTTP: who may edit, DOI minting against a fake DataCite,
landing pages and exports, the embargo opening at the injected instant, Range requests
and the streamed zip."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from datetime import timedelta

import pytest
from lxml import etree
from sqlalchemy import select

from beamdesk.portal.minting import DataCiteRest, DraftOnly
from beamdesk.portal.models import AuditEvent, Transition
from tests.publication.conftest import EMBARGO_ENDS, NOW, Facility, auth
from tests.publication.fake_datacite import FakeDataCite, datacite_schema


def make_collection(client, facility: Facility, number: str, persona: str = "pi", **extra: object):  # type: ignore[no-untyped-def]
    ids = [i for key, i in facility.dataset_ids.items() if key.startswith(number + "/")]
    body = {
        "title": f"Bronze data of {number}",
        "abstract": "Cu and Sn maps.",
        "keywords": ["bronze"],
        "related_dois": ["10.1000/paper.1"],
        "dataset_ids": ids,
    } | extra
    return client.post(
        f"/api/proposals/{number}/collections", json=body, headers=auth(facility, persona)
    )


def test_only_pi_and_office_make_collections(pinned_app, client, facility) -> None:  # type: ignore[no-untyped-def]
    r = make_collection(client, facility, "20260001")
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["licence"] == "CC-BY-4.0"  # the facility default
    assert made["creators"][0]["name"] == "Chadwick, James"  # the PI first, from the proposal
    assert made["creators"][0]["orcid"] == "0000-0002-1825-0097"
    assert made["techniques"] == ["X-ray fluorescence", "X-Ray Absorption"]
    assert len(made["datasets"]) == 3
    assert make_collection(client, facility, "20260001", "office").status_code == 201
    assert make_collection(client, facility, "20260001", "participant").status_code == 403
    assert make_collection(client, facility, "20260002", "scientist").status_code == 403
    # The outsider cannot see the embargoed proposal at all: 404, not 403.
    assert make_collection(client, facility, "20260002", "outsider").status_code == 404
    # A dataset of another proposal cannot be slipped in.
    other = facility.dataset_ids["20260002/raw/scan_0001.nxs"]
    r = make_collection(client, facility, "20260001", dataset_ids=[other])
    assert r.status_code == 422
    # Unpublished: not visible to the public, visible to members.
    cid = made["id"]
    assert client.get(f"/api/collections/{cid}").status_code == 404
    assert (
        client.get(f"/api/collections/{cid}", headers=auth(facility, "participant")).status_code
        == 200
    )
    r = client.patch(
        f"/api/collections/{cid}",
        json={"abstract": "New abstract."},
        headers=auth(facility, "participant"),
    )
    assert r.status_code == 403
    r = client.patch(
        f"/api/collections/{cid}",
        json={
            "abstract": "New abstract.",
            "creators": [{"name": "Chadwick, James", "orcid": "1234"}],
        },
        headers=auth(facility, "pi"),
    )
    assert r.status_code == 422 and "ORCID" in r.json()["detail"]


def test_publish_registers_the_doi_with_datacite(pinned_app, client, facility) -> None:  # type: ignore[no-untyped-def]
    with FakeDataCite() as fake:
        pinned_app.state.minter = DataCiteRest(
            fake.url, fake.repository, fake.password, fake.prefix
        )
        cid = make_collection(client, facility, "20260001").json()["id"]
        r = client.post(f"/api/collections/{cid}/publish", headers=auth(facility, "pi"))
        assert r.status_code == 200, r.text
        doi = r.json()["doi"]
        assert doi == f"{fake.prefix}/elettra.20260001.{cid}"
        assert r.json()["doi_state"] == "findable"
        assert fake.requests == [("POST", "/dois")]
        record = fake.records[doi]
        assert record["url"] == f"http://127.0.0.1:8000/doi/{doi}"
        assert record["titles"] == [{"title": "Bronze data of 20260001", "lang": "en"}]
        # Edit and publish again: an update (PUT) of the same DOI.
        client.patch(
            f"/api/collections/{cid}",
            json={"title": "Bronze data, revised"},
            headers=auth(facility, "pi"),
        )
        r = client.post(f"/api/collections/{cid}/publish", headers=auth(facility, "office"))
        assert r.status_code == 200, r.text
        assert fake.requests[-1] == ("PUT", f"/dois/{doi}")
        assert fake.records[doi]["titles"][0]["title"] == "Bronze data, revised"
        # Wrong password: refused, explained, and the collection stays unpublished.
        pinned_app.state.minter = DataCiteRest(fake.url, fake.repository, "wrong", fake.prefix)
        cid2 = make_collection(client, facility, "20260003", "office").json()["id"]
        r = client.post(f"/api/collections/{cid2}/publish", headers=auth(facility, "office"))
        assert r.status_code == 422 and "401" in r.json()["detail"]
        assert client.get(f"/api/collections/{cid2}").status_code == 404
    # The landing page the DOI points to is public, and its XML export validates.
    page = client.get(f"/doi/{doi}")
    assert page.status_code == 200 and "Bronze data, revised" in page.text
    xml = client.get(f"/collections/{cid}/datacite.xml")
    assert xml.status_code == 200
    assert datacite_schema().validate(etree.fromstring(xml.content))
    with pinned_app.state.sessionmaker() as db:
        actions = set(db.scalars(select(AuditEvent.action)))
        assert {
            "collection_created",
            "collection_published",
            "collection_doi_updated",
            "collection_edited",
        } <= actions
        history = [t.action for t in db.scalars(select(Transition))]
        assert "collection_published" in history


def test_draft_only_backend_by_default(pinned_app, client, facility) -> None:  # type: ignore[no-untyped-def]
    pinned_app.state.minter = DraftOnly()
    cid = make_collection(client, facility, "20260001").json()["id"]
    r = client.post(f"/api/collections/{cid}/publish", headers=auth(facility, "pi"))
    assert r.json()["doi"] == f"10.5072/elettra.20260001.{cid}"
    assert r.json()["doi_state"] == "draft"
    assert "draft, not yet resolvable" in client.get(f"/collections/{cid}").text


def published(pinned_app, client, facility: Facility, number: str) -> int:  # type: ignore[no-untyped-def]
    pinned_app.state.minter = DraftOnly("10.80123")
    cid = make_collection(client, facility, number).json()["id"]
    assert (
        client.post(f"/api/collections/{cid}/publish", headers=auth(facility, "pi")).status_code
        == 200
    )
    return cid


def test_embargo_opens_at_the_injected_instant(pinned_app, client, facility) -> None:  # type: ignore[no-untyped-def]
    cid = published(pinned_app, client, facility, "20260002")
    url = "/api/proposals/20260002/files/raw/scan_0001.nxs"
    # Metadata is public at once; the files are not.
    landing = client.get(f"/collections/{cid}")
    assert landing.status_code == 200 and 'data-testid="embargo-note"' in landing.text
    assert f'href="{url}"' not in landing.text
    for instant, status in [
        (EMBARGO_ENDS - timedelta(seconds=1), 404),
        (EMBARGO_ENDS, 200),
        (EMBARGO_ENDS + timedelta(days=1), 200),
    ]:
        pinned_app.state.clock = lambda instant=instant: instant
        assert client.get(url).status_code == status, instant
        assert client.get(f"/collections/{cid}/download.zip").status_code == status
        assert client.get(f"/api/collections/{cid}").json()["released"] is (status == 200)
    assert f'href="{url}"' in client.get(f"/collections/{cid}").text


def test_pi_releases_early_and_office_extends_once(pinned_app, client, facility) -> None:  # type: ignore[no-untyped-def]
    cid = published(pinned_app, client, facility, "20260002")
    r = client.post("/api/proposals/20260002/embargo/extend", headers=auth(facility, "office"))
    assert r.status_code == 200
    assert (
        client.post(
            "/api/proposals/20260002/embargo/extend", headers=auth(facility, "office")
        ).status_code
        == 403
    )
    assert client.get(f"/api/collections/{cid}").json()["release_date"].startswith("2028-12-24")
    r = client.post("/api/proposals/20260002/embargo/release", headers=auth(facility, "pi"))
    assert r.status_code == 200
    assert client.get(f"/api/collections/{cid}").json()["released"] is True
    assert client.get("/api/proposals/20260002/files/raw/scan_0001.nxs").status_code == 200
    with pinned_app.state.sessionmaker() as db:
        assert [
            t.action
            for t in db.scalars(
                select(Transition)
                .where(Transition.action.in_(["extend_embargo", "release_early"]))
                .order_by(Transition.id)
            )
        ] == ["extend_embargo", "release_early"]


def test_range_requests_return_the_exact_bytes(pinned_app, client, facility) -> None:  # type: ignore[no-untyped-def]
    published(pinned_app, client, facility, "20260001")
    for rel in ("raw/scan_0002.nxs", "processed/notes.txt"):
        data = facility.files[f"20260001/{rel}"].read_bytes()
        url = f"/api/proposals/20260001/files/{rel}"
        for first, last in [(0, 0), (0, 1023), (517, 9999), (len(data) - 10, len(data) - 1)]:
            r = client.get(url, headers={"Range": f"bytes={first}-{last}"})
            assert r.status_code == 206
            assert r.content == data[first : last + 1]
            assert r.headers["content-range"] == f"bytes {first}-{last}/{len(data)}"
        r = client.get(url, headers={"Range": "bytes=-100"})
        assert r.content == data[-100:]
        r = client.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert r.status_code == 416


def test_streamed_zip_holds_exactly_the_files(pinned_app, client, facility) -> None:  # type: ignore[no-untyped-def]
    cid = published(pinned_app, client, facility, "20260001")
    with client.stream("GET", f"/collections/{cid}/download.zip") as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/zip"
        length = int(r.headers["content-length"])
        chunks = list(r.iter_raw())
    body = b"".join(chunks)
    assert len(body) == length
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.testzip() is None
    expected = {
        f"20260001/{k.split('/', 1)[1]}": p
        for k, p in facility.files.items()
        if k.startswith("20260001/")
    }
    assert sorted(archive.namelist()) == sorted(expected)
    for name, path in expected.items():
        assert (
            hashlib.sha256(archive.read(name)).digest()
            == hashlib.sha256(path.read_bytes()).digest()
        )


def test_landing_page_and_exports(pinned_app, client, facility) -> None:  # type: ignore[no-untyped-def]
    cid = published(pinned_app, client, facility, "20260001")
    page = client.get(f"/collections/{cid}").text
    ld = json.loads(
        re.search(
            r'<script type="application/ld\+json" id="schema-org">(.*?)</script>', page, re.S
        ).group(1)
    )
    assert ld["@type"] == "Dataset" and ld["name"] == "Bronze data of 20260001"
    # A draft DOI does not resolve yet: the citation points to the landing page.
    assert ld["identifier"] == f"http://127.0.0.1:8000/doi/10.80123/elettra.20260001.{cid}"
    assert "Chadwick, James; Meitner, Lise" in page
    for export, kind, marker in [
        ("citation.bib", "application/x-bibtex", "@misc{Chadwick2026"),
        ("citation.ris", "application/x-research-info-systems", "TY  - DATA"),
        ("datacite.json", "application/json", '"resourceTypeGeneral": "Dataset"'),
        ("schema.jsonld", "application/ld+json", '"@context"'),
    ]:
        r = client.get(f"/collections/{cid}/{export}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
        assert marker in r.text
    catalogue = client.get("/catalogue").text
    assert f'href="/collections/{cid}"' in catalogue
    assert client.get("/collections/999999").status_code == 404


@pytest.mark.parametrize("path", ["/collections/1/download.zip", "/collections/1/citation.bib"])
def test_unknown_or_unpublished_is_404(pinned_app, client, facility, path: str) -> None:  # type: ignore[no-untyped-def]
    make_collection(client, facility, "20260002")
    assert client.get(path).status_code == 404
    assert NOW  # the pinned instant is what the app sees


def test_draft_doi_is_replaced_once_datacite_is_configured(pinned_app, client, facility) -> None:  # type: ignore[no-untyped-def]
    pinned_app.state.minter = DraftOnly()
    cid = make_collection(client, facility, "20260001").json()["id"]
    draft = client.post(f"/api/collections/{cid}/publish", headers=auth(facility, "pi")).json()
    assert draft["doi"].startswith("10.5072/")
    with FakeDataCite() as fake:
        pinned_app.state.minter = DataCiteRest(
            fake.url, fake.repository, fake.password, fake.prefix
        )
        r = client.post(f"/api/collections/{cid}/publish", headers=auth(facility, "pi"))
        assert r.status_code == 200, r.text
        assert r.json()["doi"] == f"{fake.prefix}/elettra.20260001.{cid}"
        assert r.json()["doi_state"] == "findable"
        assert fake.requests == [("POST", "/dois")]
    assert client.get(f"/doi/{draft['doi']}").status_code == 404
