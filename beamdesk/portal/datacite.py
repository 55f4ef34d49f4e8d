"""DataCite metadata (schema 4) of a data collection, as XML and as REST API JSON (pure).

``Metadata`` is the one description of a collection; the XML (``to_xml``) is what DataCite
stores and what the landing page offers for download, the JSON attributes (``to_json``)
are what its REST API takes. Citations (``beamdesk.portal.citation``) read the same object.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

NS = "http://datacite.org/schema/kernel-4"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XML_NS = "http://www.w3.org/XML/1998/namespace"
SCHEMA_LOCATION = f"{NS} https://schema.datacite.org/meta/kernel-4/metadata.xsd"
RESOURCE_TYPE = "Collection of synchrotron measurements"

# SPDX identifier -> (name, URI) for the licences a facility is likely to choose.
LICENCES: dict[str, tuple[str, str]] = {
    "CC-BY-4.0": (
        "Creative Commons Attribution 4.0 International",
        "https://creativecommons.org/licenses/by/4.0/legalcode",
    ),
    "CC-BY-SA-4.0": (
        "Creative Commons Attribution Share Alike 4.0 International",
        "https://creativecommons.org/licenses/by-sa/4.0/legalcode",
    ),
    "CC0-1.0": (
        "Creative Commons Zero v1.0 Universal",
        "https://creativecommons.org/publicdomain/zero/1.0/legalcode",
    ),
    "CC-BY-NC-4.0": (
        "Creative Commons Attribution Non Commercial 4.0 International",
        "https://creativecommons.org/licenses/by-nc/4.0/legalcode",
    ),
}


@dataclass(frozen=True)
class Creator:
    name: str  # "Family, Given" for people
    given_name: str = ""
    family_name: str = ""
    orcid: str = ""  # bare iD, 0000-0002-1825-0097
    affiliation: str = ""

    @property
    def display(self) -> str:
        return f"{self.given_name} {self.family_name}".strip() or self.name


@dataclass(frozen=True)
class RelatedWork:
    identifier: str
    relation: str  # DataCite relationType, e.g. IsCitedBy, IsPartOf
    kind: str = "DOI"  # DataCite relatedIdentifierType


@dataclass
class Metadata:
    doi: str
    title: str
    creators: list[Creator]
    publisher: str
    publication_year: int
    abstract: str = ""
    keywords: list[str] = field(default_factory=list)
    techniques: list[str] = field(default_factory=list)
    instrument: str = ""
    licence: str = "CC-BY-4.0"
    related: list[RelatedWork] = field(default_factory=list)
    created: datetime | None = None
    available: datetime | None = None  # the end of the embargo
    sizes: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    url: str = ""
    proposal_number: str = ""
    # False for a draft DOI: it does not resolve yet, so citations point to ``url``.
    doi_registered: bool = True

    @property
    def prefix(self) -> str:
        return self.doi.partition("/")[0]

    @property
    def suffix(self) -> str:
        return self.doi.partition("/")[2]

    def licence_name_and_uri(self) -> tuple[str, str]:
        return LICENCES.get(self.licence, (self.licence, ""))


def _day(when: datetime) -> str:
    return when.date().isoformat()


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{NS}}}{tag}", {k: v for k, v in attrs.items() if v})
    if text is not None:
        el.text = text
    return el


def to_xml(meta: Metadata) -> str:
    """DataCite kernel-4 XML (validates against metadata.xsd 4.x)."""
    ET.register_namespace("", NS)
    ET.register_namespace("xsi", XSI)
    root = ET.Element(f"{{{NS}}}resource", {f"{{{XSI}}}schemaLocation": SCHEMA_LOCATION})
    _sub(root, "identifier", meta.doi, identifierType="DOI")
    creators = _sub(root, "creators")
    for c in meta.creators:
        el = _sub(creators, "creator")
        _sub(el, "creatorName", c.name, nameType="Personal")
        if c.given_name:
            _sub(el, "givenName", c.given_name)
        if c.family_name:
            _sub(el, "familyName", c.family_name)
        if c.orcid:
            _sub(
                el,
                "nameIdentifier",
                f"https://orcid.org/{c.orcid}",
                nameIdentifierScheme="ORCID",
                schemeURI="https://orcid.org",
            )
        if c.affiliation:
            _sub(el, "affiliation", c.affiliation)
    titles = _sub(root, "titles")
    title = _sub(titles, "title", meta.title)
    title.set(f"{{{XML_NS}}}lang", "en")
    _sub(root, "publisher", meta.publisher)
    _sub(root, "publicationYear", str(meta.publication_year))
    _sub(root, "resourceType", RESOURCE_TYPE, resourceTypeGeneral="Dataset")
    if meta.keywords or meta.techniques:
        subjects = _sub(root, "subjects")
        for k in meta.keywords:
            _sub(subjects, "subject", k)
        for t in meta.techniques:
            _sub(subjects, "subject", t, subjectScheme="technique")
    contributors = _sub(root, "contributors")
    hosting = _sub(contributors, "contributor", contributorType="HostingInstitution")
    _sub(hosting, "contributorName", meta.publisher, nameType="Organizational")
    dates = [(meta.created, "Created"), (meta.available, "Available")]
    if any(d for d, _ in dates):
        el = _sub(root, "dates")
        for when, kind in dates:
            if when is not None:
                _sub(el, "date", _day(when), dateType=kind)
    _sub(root, "language", "en")
    if meta.related:
        el = _sub(root, "relatedIdentifiers")
        for r in meta.related:
            _sub(
                el,
                "relatedIdentifier",
                r.identifier,
                relatedIdentifierType=r.kind,
                relationType=r.relation,
            )
    if meta.sizes:
        el = _sub(root, "sizes")
        for s in meta.sizes:
            _sub(el, "size", s)
    if meta.formats:
        el = _sub(root, "formats")
        for f in meta.formats:
            _sub(el, "format", f)
    name, uri = meta.licence_name_and_uri()
    rights = _sub(
        _sub(root, "rightsList"),
        "rights",
        name,
        rightsURI=uri,
        rightsIdentifier=meta.licence if uri else "",
        rightsIdentifierScheme="SPDX" if uri else "",
        schemeURI="https://spdx.org/licenses/" if uri else "",
    )
    rights.set(f"{{{XML_NS}}}lang", "en")
    descriptions = _sub(root, "descriptions")
    if meta.abstract:
        _sub(descriptions, "description", meta.abstract, descriptionType="Abstract")
    info = f"Measured on {meta.instrument}" if meta.instrument else "Synchrotron data"
    if meta.proposal_number:
        info += f" under proposal {meta.proposal_number}"
    _sub(descriptions, "description", info + ".", descriptionType="TechnicalInfo")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def to_json(meta: Metadata) -> dict[str, Any]:
    """The ``attributes`` of a DataCite REST API ``dois`` resource (JSON:API)."""
    name, uri = meta.licence_name_and_uri()
    creators = []
    for c in meta.creators:
        item: dict[str, Any] = {"name": c.name, "nameType": "Personal"}
        if c.given_name:
            item["givenName"] = c.given_name
        if c.family_name:
            item["familyName"] = c.family_name
        item["nameIdentifiers"] = (
            [
                {
                    "nameIdentifier": f"https://orcid.org/{c.orcid}",
                    "nameIdentifierScheme": "ORCID",
                    "schemeUri": "https://orcid.org",
                }
            ]
            if c.orcid
            else []
        )
        item["affiliation"] = [{"name": c.affiliation}] if c.affiliation else []
        creators.append(item)
    rights: dict[str, str] = {"rights": name, "lang": "en"}
    if uri:
        rights |= {
            "rightsUri": uri,
            "rightsIdentifier": meta.licence,
            "rightsIdentifierScheme": "SPDX",
            "schemeUri": "https://spdx.org/licenses/",
        }
    dates = [
        {"date": _day(d), "dateType": kind}
        for d, kind in ((meta.created, "Created"), (meta.available, "Available"))
        if d
    ]
    descriptions = [{"description": meta.abstract, "descriptionType": "Abstract"}]
    return {
        "doi": meta.doi,
        "prefix": meta.prefix,
        "suffix": meta.suffix,
        "creators": creators,
        "titles": [{"title": meta.title, "lang": "en"}],
        "publisher": {"name": meta.publisher},
        "publicationYear": meta.publication_year,
        "types": {"resourceTypeGeneral": "Dataset", "resourceType": RESOURCE_TYPE},
        "subjects": [{"subject": k} for k in meta.keywords]
        + [{"subject": t, "subjectScheme": "technique"} for t in meta.techniques],
        "contributors": [
            {
                "name": meta.publisher,
                "nameType": "Organizational",
                "contributorType": "HostingInstitution",
            }
        ],
        "dates": dates,
        "language": "en",
        "relatedIdentifiers": [
            {
                "relatedIdentifier": r.identifier,
                "relatedIdentifierType": r.kind,
                "relationType": r.relation,
            }
            for r in meta.related
        ],
        "sizes": list(meta.sizes),
        "formats": list(meta.formats),
        "rightsList": [rights],
        "descriptions": descriptions if meta.abstract else [],
        "url": meta.url,
        "schemaVersion": "http://datacite.org/schema/kernel-4",
    }
