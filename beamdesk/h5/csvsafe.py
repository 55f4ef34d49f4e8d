"""CSV cells a spreadsheet cannot run: formula injection ("CSV injection") neutralised.

A spreadsheet treats a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a CR as a
formula (``=HYPERLINK(…)``, ``=cmd|…``). Text from a file (dataset names, units, titles)
reaches our CSV exports, so every text cell starting with one of those gets a leading
``'`` (as OWASP recommends), which spreadsheets show as text. Numbers stay numbers, the
negative ones too (``-1.5``, ``-1e-3``, ``-inf``). Every export that writes CSV uses
``cell``/``row``; ``row`` also quotes commas, quotes and line breaks (RFC 4180), so a
cell can never start another cell or row.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(
    r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE
)


def cell(value: object) -> str:
    """One CSV cell as text: numbers as they are, text neutralised if it could be a formula."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    text = str(value)
    if text.startswith(FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def row(values: Iterable[object]) -> str:
    """One CSV line (``\\n``-terminated) of safe cells, quoted where needed."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([cell(v) for v in values])
    return out.getvalue()


def flat(text: str) -> str:
    """``text`` on one line: line breaks and control characters become single spaces."""
    return " ".join(re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", " ", text).split())


def comment(text: str) -> str:
    """A ``# …`` line: one line and one cell (commas become semicolons)."""
    return "# " + flat(text).replace(",", ";") + "\n"
