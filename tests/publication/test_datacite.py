"""DataCite XML validates against the shipped DataCite 4 XSD; JSON and citations agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from lxml import etree

from beamdesk.portal import citation
from beamdesk.portal.datacite import Creator, Metadata, RelatedWork, to_json, to_xml
from tests.publication.fake_datacite import datacite_schema

NS = {"d": "http://datacite.org/schema/kernel-4"}


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return datacite_schema()


def sample(**overrides: object) -> Metadata:
    meta = Metadata(
        doi="10.80123/elettra.20260001.1",
        title="Copper & tin in <ancient> bronzes",
        creators=[
            Creator(
                "Chadwick, James",
                "James",
                "Chadwick",
                "0000-0002-1825-0097",
                "University of Cambridge",
            ),
            Creator("Meitner, Lise", "Lise", "Meitner"),
        ],
        publisher="Elettra Sincrotrone Trieste",
        publication_year=2026,
        abstract="XRF maps of Cu and Sn.",
        keywords=["archaeometry", "bronze"],
        techniques=["X-ray fluorescence"],
        instrument="XRF",
        licence="CC-BY-4.0",
        related=[RelatedWork("10.1000/paper.1", "IsCitedBy")],
        created=datetime(2026, 11, 1, tzinfo=UTC),
        available=datetime(2029, 11, 1, tzinfo=UTC),
        sizes=["123 bytes", "2 files"],
        formats=["application/x-hdf5"],
        url="https://beamdesk.example.org/doi/10.80123/elettra.20260001.1",
        proposal_number="20260001",
    )
    for k, v in overrides.items():
        setattr(meta, k, v)
    return meta


def test_xml_validates_against_datacite_4_xsd(schema: etree.XMLSchema) -> None:
    xml = to_xml(sample())
    doc = etree.fromstring(xml.encode())
    assert schema.validate(doc), schema.error_log
    # Values land in the right elements (read back with XPath, not with our code).
    assert doc.findtext("d:identifier", namespaces=NS) == "10.80123/elettra.20260001.1"
    assert doc.find("d:identifier", NS).get("identifierType") == "DOI"
    assert doc.findtext("d:titles/d:title", namespaces=NS) == "Copper & tin in <ancient> bronzes"
    creators = doc.findall("d:creators/d:creator", NS)
    assert [c.findtext("d:creatorName", namespaces=NS) for c in creators] == [
        "Chadwick, James",
        "Meitner, Lise",
    ]
    orcid = creators[0].find("d:nameIdentifier", NS)
    assert orcid.text == "https://orcid.org/0000-0002-1825-0097"
    assert orcid.get("nameIdentifierScheme") == "ORCID"
    assert creators[0].findtext("d:affiliation", namespaces=NS) == "University of Cambridge"
    rights = doc.find("d:rightsList/d:rights", NS)
    assert rights.get("rightsIdentifier") == "CC-BY-4.0"
    assert rights.get("rightsURI") == "https://creativecommons.org/licenses/by/4.0/legalcode"
    dates = {d.get("dateType"): d.text for d in doc.findall("d:dates/d:date", NS)}
    assert dates == {"Created": "2026-11-01", "Available": "2029-11-01"}
    assert doc.find("d:resourceType", NS).get("resourceTypeGeneral") == "Dataset"
    related = doc.find("d:relatedIdentifiers/d:relatedIdentifier", NS)
    assert (related.text, related.get("relationType")) == ("10.1000/paper.1", "IsCitedBy")


@pytest.mark.parametrize(
    "overrides",
    [
        {
            "abstract": "",
            "keywords": [],
            "techniques": [],
            "related": [],
            "sizes": [],
            "formats": [],
            "available": None,
            "created": None,
        },
        {"licence": "LicenseRef-facility-policy"},
        {"creators": [Creator("Ng, A")]},
    ],
)
def test_minimal_and_unusual_records_validate(
    schema: etree.XMLSchema, overrides: dict[str, object]
) -> None:
    doc = etree.fromstring(to_xml(sample(**overrides)).encode())
    assert schema.validate(doc), schema.error_log


def test_the_validator_rejects_broken_records(schema: etree.XMLSchema) -> None:
    """The XSD check has teeth: a record without a title or publisher is refused."""
    doc = etree.fromstring(to_xml(sample()).encode())
    doc.remove(doc.find("d:titles", NS))
    assert not schema.validate(doc)
    doc = etree.fromstring(to_xml(sample()).encode())
    doc.find("d:resourceType", NS).set("resourceTypeGeneral", "Spreadsheet")
    assert not schema.validate(doc)


def test_json_attributes_match_the_rest_api_shape() -> None:
    attrs = to_json(sample())
    assert attrs["doi"] == "10.80123/elettra.20260001.1"
    assert (attrs["prefix"], attrs["suffix"]) == ("10.80123", "elettra.20260001.1")
    assert attrs["types"]["resourceTypeGeneral"] == "Dataset"
    assert attrs["creators"][0]["nameIdentifiers"][0]["nameIdentifierScheme"] == "ORCID"
    assert attrs["creators"][0]["affiliation"] == [{"name": "University of Cambridge"}]
    assert attrs["rightsList"][0]["rightsIdentifier"] == "CC-BY-4.0"
    assert attrs["publicationYear"] == 2026
    json.dumps(attrs)  # serialisable as is


def test_citations() -> None:
    meta = sample()
    bib = citation.bibtex(meta)
    assert bib.startswith("@misc{Chadwick2026_1,")
    assert "author = {Chadwick, James and Meitner, Lise}" in bib
    assert r"title = {{Copper \& tin in <ancient> bronzes}}" in bib
    assert "doi = {10.80123/elettra.20260001.1}" in bib
    assert bib.count("{") == bib.count("}")
    ris = citation.ris(meta).split("\r\n")
    assert ris[0] == "TY  - DATA"
    assert "AU  - Chadwick, James" in ris and "AU  - Meitner, Lise" in ris
    assert "DO  - 10.80123/elettra.20260001.1" in ris
    assert ris[-2] == "ER  -"
    ld = citation.json_ld(meta)
    assert (
        ld["@type"] == "Dataset"
        and ld["identifier"] == "https://doi.org/10.80123/elettra.20260001.1"
    )
    assert ld["creator"][0]["@id"] == "https://orcid.org/0000-0002-1825-0097"
    assert ld["license"] == "https://creativecommons.org/licenses/by/4.0/legalcode"
    assert citation.text(meta) == (
        "Chadwick, James; Meitner, Lise (2026). Copper & tin in <ancient> bronzes. "
        "Elettra Sincrotrone Trieste. https://doi.org/10.80123/elettra.20260001.1"
    )
