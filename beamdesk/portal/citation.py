"""How to cite a collection: a text citation, BibTeX, RIS and schema.org JSON-LD (pure)."""

from __future__ import annotations

import re
from typing import Any

from beamdesk.portal.datacite import Metadata

# BibTeX counts every brace, escaped or not (``\}`` still closes a group), so user text
# must bring no brace of its own: braces, backslashes and the characters LaTeX or a
# ``.bib`` reader treat specially become brace-balanced commands.
_BIBTEX_SPECIAL = {
    "{": r"{\textbraceleft}",
    "}": r"{\textbraceright}",
    "\\": r"{\textbackslash}",
    "@": r"{\char64}",
    "^": r"{\textasciicircum}",
    "~": r"{\textasciitilde}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
}
_BIBTEX_RE = re.compile("|".join(re.escape(c) for c in _BIBTEX_SPECIAL))
# Line breaks of every kind (CR, LF, VT, FF, NEL, U+2028/9, the C0 separators) and other
# control characters: an exported field is always one line.
_BREAKS = re.compile(r"\s*[\x00-\x1f\x7f-\x9f\u2028\u2029]+\s*")


def _doi_url(meta: Metadata) -> str:
    if meta.doi and (meta.doi_registered or not meta.url):
        return f"https://doi.org/{meta.doi}"
    return meta.url


def text(meta: Metadata) -> str:
    """DataCite's recommended form: Creators (Year). Title. Publisher. DOI."""
    names = "; ".join(c.name for c in meta.creators)
    return f"{names} ({meta.publication_year}). {meta.title}. {meta.publisher}. {_doi_url(meta)}"


def one_line(value: str) -> str:
    """``value`` with each run of line breaks and control characters as one space."""
    return _BREAKS.sub(" ", value).strip()


def _bib(value: str) -> str:
    """User text as a BibTeX value: one line, no brace or backslash of its own."""
    return _BIBTEX_RE.sub(lambda m: _BIBTEX_SPECIAL[m.group()], one_line(value))


def _bib_name(name: str) -> str:
    # A literal "and" inside one name would split it into two authors.
    return re.sub(r"\band\b", "{and}", _bib(name), flags=re.IGNORECASE)


def _bib_verbatim(value: str) -> str:
    """A DOI or URL (not escaped, so it stays usable): one line, braces percent-encoded."""
    return one_line(value).replace("{", "%7B").replace("}", "%7D").replace(" ", "%20")


def bibtex_key(meta: Metadata) -> str:
    family = meta.creators[0].family_name or meta.creators[0].name if meta.creators else "data"
    stem = re.sub(r"[^A-Za-z0-9]", "", family) or "data"
    tail = re.sub(r"[^A-Za-z0-9]", "", meta.suffix.rsplit(".", 1)[-1]) if meta.doi else ""
    return f"{stem}{meta.publication_year}{('_' + tail) if tail else ''}"


def bibtex(meta: Metadata) -> str:
    fields = [
        ("author", " and ".join(_bib_name(c.name) for c in meta.creators)),
        ("title", "{" + _bib(meta.title) + "}"),
        ("publisher", _bib(meta.publisher)),
        ("year", str(meta.publication_year)),
    ]
    if meta.doi:
        fields.append(("doi", _bib_verbatim(meta.doi)))
    fields.append(("url", _bib_verbatim(_doi_url(meta))))
    if meta.keywords:
        fields.append(("keywords", _bib(", ".join(meta.keywords))))
    if meta.licence:
        fields.append(("copyright", _bib(meta.licence)))
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields)
    return f"@misc{{{bibtex_key(meta)},\n{body}\n}}\n"


def ris(meta: Metadata) -> str:
    """One RIS record; every value is one line, so no field can start a tag or end it."""
    lines = [("TY", "DATA")]
    lines += [("AU", c.name) for c in meta.creators]
    lines += [("TI", meta.title), ("PY", str(meta.publication_year)), ("PB", meta.publisher)]
    if meta.doi:
        lines.append(("DO", meta.doi))
    lines.append(("UR", _doi_url(meta)))
    if meta.abstract:
        lines.append(("AB", " ".join(meta.abstract.split())))
    lines += [("KW", k) for k in meta.keywords]
    lines.append(("ER", ""))
    # RIS: two-letter tag, two spaces, hyphen, space; CRLF line ends.
    return "".join(f"{tag}  - {one_line(value)}".rstrip() + "\r\n" for tag, value in lines)


def json_ld(meta: Metadata) -> dict[str, Any]:
    """schema.org Dataset, for search engines (Google Dataset Search reads this)."""
    name, uri = meta.licence_name_and_uri()
    doc: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Dataset",
        "name": meta.title,
        "description": meta.abstract or meta.title,
        "url": meta.url or _doi_url(meta),
        "creator": [
            {
                "@type": "Person",
                "name": c.display,
                **({"givenName": c.given_name} if c.given_name else {}),
                **({"familyName": c.family_name} if c.family_name else {}),
                **({"@id": f"https://orcid.org/{c.orcid}"} if c.orcid else {}),
                **(
                    {"affiliation": {"@type": "Organization", "name": c.affiliation}}
                    if c.affiliation
                    else {}
                ),
            }
            for c in meta.creators
        ],
        "publisher": {"@type": "Organization", "name": meta.publisher},
        "datePublished": str(meta.publication_year),
        "keywords": meta.keywords + meta.techniques,
        "license": uri or name,
        "isAccessibleForFree": True,
    }
    if meta.doi:
        doc["identifier"] = _doi_url(meta)
    if meta.available:
        doc["dateModified"] = meta.available.date().isoformat()
    if meta.instrument:
        doc["measurementTechnique"] = meta.techniques or [meta.instrument]
    return doc
