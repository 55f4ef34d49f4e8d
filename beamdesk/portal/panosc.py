"""The PaNOSC search API: its ``filter`` query language and its data model over BeamDesk.

A federated PaNOSC portal sends ``GET /datasets?filter={"where": …, "include": […],
"limit": n, "skip": m}`` (Loopback filter syntax) to every facility and merges the answers.
This module parses a filter, evaluates it, and maps BeamDesk rows to the PaNOSC classes:

===============  ==========================================================
PaNOSC           BeamDesk
===============  ==========================================================
Dataset          one catalogued file (``Dataset`` row): a scan or a result
Document         a proposal (type ``proposal``) or a published collection
                 (type ``publication``, its DOI as ``pid``)
Instrument       a beamline
Member, Person   proposal members / collection creators
Parameter        NeXus scalars of sample and instrument (``Dataset.parameters``)
Sample           the proposal's samples
Technique        the beamline's techniques and the collection's
File             the catalogued file itself
===============  ==========================================================

Only data the caller may read are ever loaded (``access.readable_proposals``; anonymous
callers: released data only), so no filter can reach an embargoed dataset. Conditions on
columns are translated to SQL to narrow the rows read; the evaluator below then applies
the whole filter, so both agree by construction.

Semantics where the specification leaves room (those of the PaNOSC reference server):
an ``include`` whose ``scope`` has a ``where`` (at any depth) keeps only parents with at
least one matching related object; ``like``/``ilike`` take SQL patterns (``%``, ``_``,
``\\`` escaping the next character, as PostgreSQL's default ``ESCAPE``) and, without
wildcards, match a substring; parameter queries convert units to SI.

One request must not stall or exhaust the server, so a filter is bounded before it is
read (``MAX_FILTER_BYTES``, JSON nesting) and after (and/or depth, include chains, number
of conditions, ``skip``): too much is a ``FilterTooLarge`` (422) with a sentence. Patterns
are matched by ``like_matcher`` in linear time (no backtracking regular expression).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, true, type_coerce
from sqlalchemy.orm import Session, selectinload

from beamdesk.db import UTCDateTime
from beamdesk.errors import Invalid
from beamdesk.portal.models import Beamline, Dataset, Proposal, ProposalMember, Sample

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
# Bounds on one filter (a federated portal's queries stay far below them).
MAX_FILTER_BYTES = 8192
MAX_JSON_DEPTH = 32  # objects and lists inside each other, anywhere in the filter
MAX_WHERE_DEPTH = 8  # and/or inside and/or
MAX_INCLUDE_DEPTH = 4  # include inside an include's scope
MAX_CONDITIONS = 64  # conditions in every where (filter and scopes), and/or counted too
MAX_SKIP = 100_000
MAX_NUMBER = 2**53  # JSON numbers beyond this are not exact in most clients
OPERATORS = {
    "eq",
    "neq",
    "gt",
    "gte",
    "lt",
    "lte",
    "inq",
    "nin",
    "between",
    "like",
    "nlike",
    "ilike",
    "nilike",
}


class FilterError(Invalid, ValueError):
    """The filter is not valid PaNOSC/Loopback syntax; the message says where. A ValueError
    too, as the parser's own helpers catch it with the numbers' errors."""


class FilterTooLarge(FilterError):
    """The filter is valid but too big or too deep to evaluate in one request (422, as
    ever: the route says which parameter; not 413, as the request itself is small)."""


# ---------------------------------------------------------------------------- the model
# model -> relation -> (target model, to-many?)
RELATIONS: dict[str, dict[str, tuple[str, bool]]] = {
    "Dataset": {
        "document": ("Document", False),
        "instrument": ("Instrument", False),
        "files": ("File", True),
        "parameters": ("Parameter", True),
        "samples": ("Sample", True),
        "techniques": ("Technique", True),
    },
    "Document": {
        "datasets": ("Dataset", True),
        "members": ("Member", True),
        "parameters": ("Parameter", True),
    },
    "Instrument": {"datasets": ("Dataset", True)},
    "Member": {"person": ("Person", False), "affiliations": ("Affiliation", True)},
    "Person": {},
    "Affiliation": {},
    "File": {},
    "Parameter": {},
    "Sample": {},
    "Technique": {},
}


@dataclass
class Include:
    relation: str
    where: dict[str, Any] | None = None
    include: list[Include] = field(default_factory=list)

    @property
    def restricts(self) -> bool:
        """Does this include drop parents with nothing matching? (see module docstring)"""
        return bool(self.where) or any(i.restricts for i in self.include)


@dataclass
class Filter:
    where: dict[str, Any] | None = None
    include: list[Include] = field(default_factory=list)
    limit: int = DEFAULT_LIMIT
    skip: int = 0


def load_json(text: str, what: str = "filter") -> Any:
    """``text`` as JSON, refused (FilterTooLarge) before parsing if too long or too deep."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILTER_BYTES:
        raise FilterTooLarge(
            f"the {what} is {size} bytes long; at most {MAX_FILTER_BYTES} are accepted"
        )
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FilterError(f"{what} is not JSON: {exc.msg} at position {exc.pos}") from exc
    except RecursionError as exc:
        raise FilterTooLarge(
            f"the {what} nests objects and lists more than {MAX_JSON_DEPTH} levels deep"
        ) from exc
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise FilterTooLarge(f"the {what} holds a number out of range") from exc
    _check_shape(raw, what)
    return raw


def _check_shape(raw: Any, what: str) -> None:
    """JSON nesting depth and number sizes, without recursion."""
    stack: list[tuple[Any, int]] = [(raw, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise FilterTooLarge(
                    f"the {what} nests objects and lists more than {MAX_JSON_DEPTH} levels deep"
                )
            items = value.values() if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in items)
        elif (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (not math.isfinite(value) or abs(value) > MAX_NUMBER)
        ):
            raise FilterTooLarge(
                f"the {what} holds a number out of range (at most {MAX_NUMBER} in size)"
            )


def parse_filter(text: str | None, model: str) -> Filter:
    """Parse the ``filter`` query parameter (a JSON object) for ``model``."""
    if not text:
        return Filter()
    raw = load_json(text)
    if not isinstance(raw, dict):
        raise FilterError("filter must be a JSON object")
    unknown = set(raw) - {"where", "include", "limit", "skip", "fields", "order"}
    if unknown:
        raise FilterError(f"unknown filter keys: {', '.join(sorted(unknown))}")
    budget = _Budget()
    where = parse_where(raw.get("where"), budget)
    include = _includes(raw.get("include"), model, "include", budget)
    limit = _count(raw.get("limit", DEFAULT_LIMIT), "limit")
    # Loopback: a limit of 0 means "no limit"; ours is capped so one call stays cheap.
    limit = MAX_LIMIT if limit == 0 else min(limit, MAX_LIMIT)
    skip = _count(raw.get("skip", 0), "skip")
    if skip > MAX_SKIP:
        raise FilterTooLarge(f"skip is {skip}; at most {MAX_SKIP} (narrow the where instead)")
    return Filter(where=where, include=include, limit=limit, skip=skip)


def parse_where_text(text: str | None) -> dict[str, Any] | None:
    """The ``where`` query parameter of the ``/count`` endpoints (JSON), bounded alike."""
    return parse_where(load_json(text, "where")) if text else None


@dataclass
class _Budget:
    """Conditions left for one filter (every where of it, include scopes too)."""

    left: int = MAX_CONDITIONS

    def spend(self, at: str) -> None:
        self.left -= 1
        if self.left < 0:
            raise FilterTooLarge(
                f"the filter has more than {MAX_CONDITIONS} conditions "
                f"(counting and/or; the last one at {at})"
            )


def parse_where(raw: Any, budget: _Budget | None = None) -> dict[str, Any] | None:
    if raw is None or raw == {}:
        return None
    if not isinstance(raw, dict):
        raise FilterError("where must be a JSON object")
    _check_where(raw, "where", budget or _Budget(), 0)
    return raw


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FilterError(f"{name} must be a non-negative integer")
    return value


def _check_where(where: dict[str, Any], at: str, budget: _Budget, depth: int) -> None:
    if _is_parameter_query(where):
        budget.spend(at)
        return
    for key, value in where.items():
        budget.spend(f"{at}.{key}")
        if key in ("and", "or"):
            if depth >= MAX_WHERE_DEPTH:
                raise FilterTooLarge(
                    f"{at}.{key} nests and/or more than {MAX_WHERE_DEPTH} levels deep"
                )
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise FilterError(f"{at}.{key} must be a list of objects")
            for n, part in enumerate(value):
                _check_where(part, f"{at}.{key}[{n}]", budget, depth + 1)
        elif key == "query":
            if not isinstance(value, dict) or not _is_parameter_query(value):
                raise FilterError(f"{at}.query needs variable, operator and value")
        elif isinstance(value, dict):
            if len(value) != 1 or next(iter(value)) not in OPERATORS:
                raise FilterError(f"{at}.{key}: one operator of {', '.join(sorted(OPERATORS))}")
            op, operand = next(iter(value.items()))
            if op in ("inq", "nin") and not isinstance(operand, list):
                raise FilterError(f"{at}.{key}.{op} needs a list")
            if op == "between" and (not isinstance(operand, list) or len(operand) != 2):
                raise FilterError(f"{at}.{key}.between needs [low, high]")
            if op in ("like", "nlike", "ilike", "nilike"):
                if not isinstance(operand, str):
                    raise FilterError(f"{at}.{key}.{op} needs a string")
                if _ends_with_escape(operand):
                    raise FilterError(
                        f"{at}.{key}.{op}: the pattern ends with the escape "
                        "character \\ (write \\\\ for a backslash)"
                    )


def _is_parameter_query(d: dict[str, Any]) -> bool:
    return "operator" in d and "value" in d and ("variable" in d or "name" in d)


def _includes(raw: Any, model: str, at: str, budget: _Budget, depth: int = 0) -> list[Include]:
    if raw is None:
        return []
    if depth >= MAX_INCLUDE_DEPTH:
        raise FilterTooLarge(f"{at} chains includes more than {MAX_INCLUDE_DEPTH} levels deep")
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for n, item in enumerate(items):
        where_at = f"{at}[{n}]"
        scope: Any
        if isinstance(item, str):
            relation, scope = item, {}
        elif isinstance(item, dict) and isinstance(item.get("relation"), str):
            relation, scope = item["relation"], item.get("scope") or {}
            if not isinstance(scope, dict):
                raise FilterError(f"{where_at}.scope must be an object")
        else:
            raise FilterError(f"{where_at} must be a relation name or {{relation, scope}}")
        if relation not in RELATIONS[model]:
            known = ", ".join(sorted(RELATIONS[model])) or "none"
            raise FilterError(f"{model} has no relation {relation!r} (known: {known})")
        target = RELATIONS[model][relation][0]
        budget.spend(where_at)
        out.append(
            Include(
                relation,
                parse_where(scope.get("where"), budget),
                _includes(
                    scope.get("include"), target, f"{where_at}.scope.include", budget, depth + 1
                ),
            )
        )
    return out


# ---------------------------------------------------------------------------- units
# unit -> (factor, offset) to SI: si = value * factor + offset.
_EV = 1.602176634e-19
UNITS: dict[str, tuple[float, float]] = {
    "": (1.0, 0.0),
    "ev": (_EV, 0.0),
    "kev": (1e3 * _EV, 0.0),
    "mev": (1e6 * _EV, 0.0),
    "j": (1.0, 0.0),
    "k": (1.0, 0.0),
    "kelvin": (1.0, 0.0),
    "mk": (1e-3, 0.0),
    "celsius": (1.0, 273.15),
    "degc": (1.0, 273.15),
    "°c": (1.0, 273.15),
    "m": (1.0, 0.0),
    "mm": (1e-3, 0.0),
    "um": (1e-6, 0.0),
    "µm": (1e-6, 0.0),
    "micrometre": (1e-6, 0.0),
    "nm": (1e-9, 0.0),
    "angstrom": (1e-10, 0.0),
    "å": (1e-10, 0.0),
    "s": (1.0, 0.0),
    "ms": (1e-3, 0.0),
    "us": (1e-6, 0.0),
    "min": (60.0, 0.0),
    "h": (3600.0, 0.0),
    "pa": (1.0, 0.0),
    "kpa": (1e3, 0.0),
    "bar": (1e5, 0.0),
    "mbar": (1e2, 0.0),
    "hz": (1.0, 0.0),
    "khz": (1e3, 0.0),
    "rad": (1.0, 0.0),
    "mrad": (1e-3, 0.0),
    "deg": (math.pi / 180, 0.0),
    "degree": (math.pi / 180, 0.0),
    "degrees": (math.pi / 180, 0.0),
}


def to_si(value: float, unit: str) -> float | None:
    """``value`` in ``unit`` as SI (None if the unit is unknown)."""
    key = unit.strip().lower().replace(" ", "")
    if key not in UNITS:
        return None
    factor, offset = UNITS[key]
    return value * factor + offset


# ---------------------------------------------------------------------------- evaluation
def _ends_with_escape(pattern: str) -> bool:
    trailing = len(pattern) - len(pattern.rstrip("\\"))
    return trailing % 2 == 1


def _like_parts(pattern: str) -> list[list[str | None]]:
    """``pattern`` as literal characters and ``None`` for ``_``, split on ``%``."""
    segments: list[list[str | None]] = [[]]
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            segments[-1].append(next(chars, "\\"))
        elif ch == "%":
            segments.append([])
        else:
            segments[-1].append(None if ch == "_" else ch)
    return segments


class _Segment:
    """A piece of a pattern between two ``%``: literal text and ``_`` (one character)."""

    def __init__(self, tokens: list[str | None]) -> None:
        self.size = len(tokens)
        self.text = "".join(t for t in tokens if t is not None)
        self.plain = all(t is not None for t in tokens)
        # No quantifier in it, so matching it anywhere costs at most len(value) * size.
        self.regex = re.compile(
            "".join("." if t is None else re.escape(t) for t in tokens), re.DOTALL
        )

    def at(self, value: str, pos: int) -> bool:
        return self.regex.match(value, pos) is not None

    def find(self, value: str, pos: int) -> int:
        if self.plain:
            return value.find(self.text, pos)
        m = self.regex.search(value, pos)
        return m.start() if m else -1


@dataclass(frozen=True)
class LikeMatcher:
    """SQL LIKE with ``\\`` as escape, matched greedily segment by segment.

    Between two ``%`` the leftmost match of a segment is always the best one, so there
    is nothing to backtrack: the cost is linear in the value for plain text segments
    and at most value length × segment length with ``_`` in them.
    """

    first: _Segment
    middle: tuple[_Segment, ...]
    last: _Segment | None  # None: the pattern has no %
    fold: bool

    def __call__(self, value: str) -> bool:
        if self.fold:
            value = value.lower()
        if self.last is None:
            return len(value) == self.first.size and self.first.at(value, 0)
        if len(value) < self.first.size or not self.first.at(value, 0):
            return False
        pos = self.first.size
        for seg in self.middle:
            found = seg.find(value, pos)
            if found < 0:
                return False
            pos = found + seg.size
        end = len(value) - self.last.size
        return end >= pos and self.last.at(value, end)


@lru_cache(maxsize=256)
def like_matcher(pattern: str, case: bool = True) -> LikeMatcher:
    """A matcher for a ``like`` (``case``) or ``ilike`` pattern; without a wildcard
    (``%``, ``_`` not escaped) the pattern matches a substring, as the reference server."""
    if not case:
        pattern = pattern.lower()
    parts = _like_parts(pattern)
    if len(parts) == 1 and None not in parts[0]:
        parts = [[], parts[0], []]
    segments = [_Segment(p) for p in parts]
    if len(segments) == 1:
        return LikeMatcher(segments[0], (), None, not case)
    middle = tuple(s for s in segments[1:-1] if s.size)  # %% is one %
    return LikeMatcher(segments[0], middle, segments[-1], not case)


def _comparable(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Bring two values to one type (dates as datetimes, numbers as floats) or None."""
    if isinstance(a, bool) or isinstance(b, bool):
        return (a, b) if isinstance(a, bool) and isinstance(b, bool) else None
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a), float(b)
    if isinstance(a, str) and isinstance(b, str):
        da, db = _date(a), _date(b)
        if da is not None and db is not None:
            return da, db
        return a, b
    return None


def _date(text: str) -> datetime | None:
    if not re.match(r"^\d{4}-\d{2}-\d{2}", text):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def compare(value: Any, op: str, operand: Any) -> bool:
    """One Loopback operator applied to one value."""
    if op == "eq":
        pair = _comparable(value, operand)
        return pair is not None and pair[0] == pair[1]
    if op == "neq":
        return not compare(value, "eq", operand)
    if op in ("gt", "gte", "lt", "lte"):
        pair = _comparable(value, operand)
        if pair is None:
            return False
        a, b = pair
        try:
            return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]
        except TypeError:
            return False
    if op == "inq":
        return any(compare(value, "eq", o) for o in operand)
    if op == "nin":
        return not compare(value, "inq", operand)
    if op == "between":
        return compare(value, "gte", operand[0]) and compare(value, "lte", operand[1])
    if op in ("like", "ilike", "nlike", "nilike"):
        if not isinstance(value, str):
            return op.startswith("n")
        hit = like_matcher(operand, case=op in ("like", "nlike"))(value)
        return not hit if op.startswith("n") else hit
    raise FilterError(f"unknown operator {op!r}")


def _values(obj: Any, path: list[str]) -> list[Any]:
    """All values at a dotted path; lists fan out (``techniques.name``: any technique)."""
    if not path:
        return obj if isinstance(obj, list) else [obj]
    if isinstance(obj, list):
        return [v for item in obj for v in _values(item, path)]
    if not isinstance(obj, dict) or path[0] not in obj:
        return []
    return _values(obj[path[0]], path[1:])


def parameter_matches(param: dict[str, Any], query: dict[str, Any]) -> bool:
    """A PaNOSC parameter query (variable, operator, value, unit) against one parameter."""
    name = str(query.get("variable") or query.get("name") or "")
    if name.lower() not in param.get("_aliases", {str(param.get("name", "")).lower()}):
        return False
    value, operand, op = param.get("value"), query.get("value"), query.get("operator", "eq")
    if isinstance(value, int | float) and isinstance(operand, int | float):
        want_unit, have_unit = str(query.get("unit", "")), str(param.get("unit", ""))
        if want_unit.strip() != have_unit.strip():
            si_value, si_operand = to_si(float(value), have_unit), to_si(float(operand), want_unit)
            if si_value is None or si_operand is None:
                return False
            value, operand = si_value, si_operand
            # Tolerance: "eq" after a unit conversion must forgive rounding.
            if op == "eq":
                return math.isclose(value, operand, rel_tol=1e-9)
    return compare(value, op, operand)


def matches(obj: dict[str, Any], where: dict[str, Any] | None) -> bool:
    """Does ``obj`` (a PaNOSC object with its relations) satisfy ``where``?"""
    if not where:
        return True
    if _is_parameter_query(where):
        return any(parameter_matches(p, where) for p in obj.get("parameters", []))
    for key, cond in where.items():
        if key == "and":
            ok = all(matches(obj, part) for part in cond)
        elif key == "or":
            ok = any(matches(obj, part) for part in cond)
        elif key == "query":
            ok = any(parameter_matches(p, cond) for p in obj.get("parameters", []))
        else:
            values = _values(obj, key.split("."))
            op, operand = next(iter(cond.items())) if isinstance(cond, dict) else ("eq", cond)
            if op in ("neq", "nin", "nlike", "nilike"):
                ok = all(compare(v, op, operand) for v in values)
            else:
                ok = any(compare(v, op, operand) for v in values)
        if not ok:
            return False
    return True


def project(obj: dict[str, Any], model: str, includes: list[Include]) -> dict[str, Any] | None:
    """The object as the API returns it: own fields plus the included relations.

    None when a restricting include leaves nothing (the parent does not match).
    """
    relations = RELATIONS[model]
    out = {k: v for k, v in obj.items() if k not in relations and not k.startswith("_")}
    for inc in includes:
        target, many = relations[inc.relation]
        value = obj.get(inc.relation)
        # A relation the object does not carry (a dataset's document has no datasets, to
        # break the cycle) is empty, so chains such as document.datasets stay valid.
        if many:
            candidates = value if isinstance(value, list) else []
        else:
            candidates = [value] if isinstance(value, dict) else []
        kept = []
        for item in candidates:
            if matches(item, inc.where):
                shown = project(item, target, inc.include)
                if shown is not None:
                    kept.append(shown)
        if inc.restricts and not kept:
            return None
        out[inc.relation] = kept if many else (kept[0] if kept else None)
    return out


def run(objects: Iterable[dict[str, Any]], model: str, flt: Filter) -> list[dict[str, Any]]:
    """Apply where, include, skip and limit to PaNOSC objects, in their given order."""
    out: list[dict[str, Any]] = []
    skipped = 0
    for obj in objects:
        if not matches(obj, flt.where):
            continue
        shown = project(obj, model, flt.include)
        if shown is None:
            continue
        if skipped < flt.skip:
            skipped += 1
            continue
        out.append(shown)
        if len(out) >= flt.limit:
            break
    return out


# ---------------------------------------------------------------------------- SQL narrowing
# Typed, so bound instants are written the way the column stores them (SQLite: text).
_created = type_coerce(func.coalesce(Dataset.start_time, Dataset.mtime), UTCDateTime())


def _sql_op(column: Any, op: str, operand: Any) -> ColumnElement[bool] | None:
    if op == "eq":
        return column == operand
    if op == "neq":
        return column != operand
    if op in ("gt", "gte", "lt", "lte"):
        return {
            "gt": column > operand,
            "gte": column >= operand,
            "lt": column < operand,
            "lte": column <= operand,
        }[op]
    if op == "inq":
        return column.in_(operand)
    if op == "between":
        return column.between(operand[0], operand[1])
    return None  # like & co.: the evaluator decides (substring semantics differ from SQL)


def dataset_sql(where: dict[str, Any] | None) -> ColumnElement[bool]:
    """A SQL condition on ``Dataset`` (joined to ``Proposal``) implied by ``where``.

    Never narrower than ``where`` (parts it cannot translate become TRUE), so it only
    saves reading rows that could not match; the evaluator has the last word.
    """
    cond = _dataset_sql(where) if where else None
    return cond if cond is not None else true()


def _dataset_sql(where: dict[str, Any]) -> ColumnElement[bool] | None:
    if _is_parameter_query(where):
        return Dataset.parameters.is_not(None)
    parts: list[ColumnElement[bool]] = []
    for key, cond in where.items():
        if key == "and":
            sub = [c for c in (_dataset_sql(p) for p in cond) if c is not None]
            if sub:
                parts.append(and_(*sub))
            continue
        if key == "or":
            alts = [_dataset_sql(p) for p in cond]
            if alts and all(c is not None for c in alts):
                parts.append(or_(*[c for c in alts if c is not None]))
            continue
        if key == "query":
            parts.append(Dataset.parameters.is_not(None))
            continue
        op, operand = next(iter(cond.items())) if isinstance(cond, dict) else ("eq", cond)
        # Only columns whose PaNOSC value is the column itself (a title may fall back to
        # the file name, so it is left to the evaluator).
        column: Any = {"size": Dataset.size}.get(key)
        if key == "id" and op in ("eq", "inq"):
            wanted = operand if isinstance(operand, list) else [operand]
            numbers = [
                int(w)
                for w in wanted
                if isinstance(w, str | int)
                and not isinstance(w, bool)
                and str(w).isdigit()
                and len(str(w)) <= 18
            ]  # more digits: no row has that id
            parts.append(Dataset.id.in_(numbers))
            continue
        if key == "creationDate" and isinstance(operand, str | list):
            try:
                operand = (
                    [_parse_day(o) for o in operand]
                    if isinstance(operand, list)
                    else _parse_day(operand)
                )
            except (ValueError, TypeError):
                continue
            column = _created
        if column is not None and not isinstance(operand, bool):
            sql = _sql_op(column, op, operand)
            if sql is not None:
                parts.append(sql)
        elif key == "samples.name" and op == "eq" and isinstance(operand, str):
            parts.append(
                exists(
                    select(Sample.id).where(
                        Sample.proposal_id == Proposal.id, Sample.name == operand
                    )
                )
            )
        elif key == "instrument.name" and op == "eq" and isinstance(operand, str):
            # The instrument is the beamline, or the NeXus name when there is no beamline.
            parts.append(
                or_(
                    Proposal.beamline_id.in_(select(Beamline.id).where(Beamline.name == operand)),
                    and_(Proposal.beamline_id.is_(None), Dataset.instrument == operand),
                )
            )
    return and_(*parts) if parts else None


def _parse_day(text: Any) -> datetime:
    parsed = _date(str(text))
    if parsed is None:
        raise ValueError(text)
    return parsed


# ---------------------------------------------------------------------------- mapping
def parameter_aliases(key: str) -> set[str]:
    """Names a NeXus parameter answers to: its path, its last name, PaNOSC's usual names.

    ``sample/temperature`` answers to ``temperature`` and ``sample_temperature``;
    an energy under the instrument (``instrument/monochromator/energy``) to
    ``photon_energy``; ``sample/chemical_formula`` to ``chemical_formula``.
    """
    parts = [p.lower() for p in key.split("/") if p]
    if not parts:
        return set()
    names = {key.lower(), parts[-1], f"{parts[0]}_{parts[-1]}", "_".join(parts)}
    if parts[0] == "instrument" and parts[-1] in ("energy", "incident_energy"):
        names.add("photon_energy")
    if parts[0] == "instrument" and parts[-1] in ("wavelength", "incident_wavelength"):
        names.add("wavelength")
    return names


def parameters_of(raw: dict[str, Any] | None) -> list[dict[str, Any]]:
    out = []
    for key, item in sorted((raw or {}).items()):
        if not isinstance(item, dict) or "value" not in item:
            continue
        out.append(
            {
                "name": key,
                "value": item["value"],
                "unit": item.get("unit", "") or "",
                "_aliases": parameter_aliases(key),
            }
        )
    return out


def split_techniques(text: str) -> list[str]:
    return [t.strip() for t in re.split(r"[,;]", text or "") if t.strip()]


def iso(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when else None


MEMBER_ROLES = {
    "pi": "principal investigator",
    "participant": "participant",
    "local_contact": "local contact",
}


def _person(
    name: str, given: str = "", family: str = "", orcid: str = "", pid_fallback: str = ""
) -> dict[str, Any]:
    if not given and not family:
        given, _, family = name.rpartition(" ")
    return {
        "id": re.sub(r"[^0-9A-Za-z_.~-]", "_", orcid or pid_fallback or name),
        "fullName": f"{given} {family}".strip(),
        "name": f"{given} {family}".strip(),
        "givenName": given,
        "familyName": family,
        **({"pid": f"https://orcid.org/{orcid}"} if orcid else {}),
    }


class Harvest:
    """PaNOSC objects for one caller at one instant (only what they may read).

    Each object carries all its relations; ``run`` projects what the filter includes.
    Documents and datasets refer to each other without cycles: a dataset's document has
    no ``datasets``, a document's datasets have no ``document``.
    """

    def __init__(
        self,
        db: Session,
        readable: ColumnElement[bool],
        now: datetime,
        facility: str,
        licence: str,
        base_url: str,
    ) -> None:
        self.db, self.readable, self.now = db, readable, now
        self.facility, self.licence, self.base_url = facility, licence, base_url.rstrip("/")
        self._proposals: dict[int, Proposal] = {}

    # -- rows
    def _load_proposals(self, ids: Iterable[int] | None = None) -> list[Proposal]:
        query = (
            select(Proposal)
            .where(self.readable)
            .options(
                selectinload(Proposal.samples),
                selectinload(Proposal.beamline),
                selectinload(Proposal.beamtimes),
                selectinload(Proposal.members).selectinload(ProposalMember.user),
            )
            .order_by(Proposal.number)
        )
        if ids is not None:
            wanted = [i for i in set(ids) if i not in self._proposals]
            if wanted:
                query = query.where(Proposal.id.in_(wanted))
                for p in self.db.scalars(query):
                    self._proposals[p.id] = p
            return [self._proposals[i] for i in ids if i in self._proposals]
        rows = list(self.db.scalars(query))
        self._proposals.update({p.id: p for p in rows})
        return rows

    def dataset_rows(
        self, where: dict[str, Any] | None = None, proposal_ids: list[int] | None = None
    ) -> list[Dataset]:
        query = (
            select(Dataset)
            .join(Proposal, Proposal.id == Dataset.proposal_id)
            .where(self.readable, dataset_sql(where))
            .order_by(Dataset.id)
        )
        if proposal_ids is not None:
            query = query.where(Dataset.proposal_id.in_(proposal_ids))
        rows = list(self.db.scalars(query))
        self._load_proposals({d.proposal_id for d in rows})
        return rows

    # -- objects
    def _released(self, p: Proposal) -> bool:
        return p.release_date is not None and p.release_date <= self.now

    def instrument(self, beamline: Beamline | None, fallback: str = "") -> dict[str, Any] | None:
        if beamline is None and not fallback:
            return None
        name = beamline.name if beamline else fallback
        return {
            "id": str(beamline.id) if beamline else re.sub(r"[^0-9A-Za-z_.~-]", "_", name),
            "pid": f"{self.base_url}/instruments/{name}",
            "name": name,
            "facility": self.facility,
        }

    def proposal_document(self, p: Proposal) -> dict[str, Any]:
        starts = [b.start for b in p.beamtimes]
        ends = [b.end for b in p.beamtimes]
        return {
            "id": f"proposal-{p.number}",
            "pid": p.doi or f"{self.base_url}/proposals/{p.number}",
            "type": "proposal",
            "isPublic": self._released(p),
            "title": p.title,
            "summary": p.abstract,
            "startDate": iso(min(starts)) if starts else None,
            "endDate": iso(max(ends)) if ends else None,
            "releaseDate": iso(p.release_date),
            "license": self.licence,
            "keywords": [],
            "members": [
                {
                    "role": MEMBER_ROLES.get(m.role.value, m.role.value),
                    "person": _person(
                        m.user.full_name or m.user.username,
                        orcid=m.user.orcid,
                        pid_fallback=m.user.username,
                    ),
                    "affiliations": [{"name": m.user.affiliation}] if m.user.affiliation else [],
                }
                for m in p.members
            ],
            "parameters": [],
        }

    def dataset(self, d: Dataset, with_document: bool = True) -> dict[str, Any]:
        p = self._proposals[d.proposal_id]
        techniques = split_techniques(p.beamline.techniques if p.beamline else "")
        obj: dict[str, Any] = {
            "id": str(d.id),
            "pid": f"{self.base_url}/proposals/{p.number}/files/{d.path}",
            "title": d.title or d.path.rsplit("/", 1)[-1],
            "creationDate": iso(d.start_time or d.mtime),
            "isPublic": self._released(p),
            "size": d.size,
            "instrument": self.instrument(p.beamline, d.instrument),
            "files": [
                {"id": str(d.id), "name": d.path.rsplit("/", 1)[-1], "path": d.path, "size": d.size}
            ],
            "parameters": parameters_of(d.parameters),
            "samples": [
                {"id": f"sample-{s.id}", "name": s.name, "description": s.formula}
                for s in p.samples
            ],
            "techniques": [{"name": t, "pid": ""} for t in techniques],
        }
        if with_document:
            obj["document"] = self.proposal_document(p)
        return obj

    def datasets(self, where: dict[str, Any] | None) -> list[dict[str, Any]]:
        return [self.dataset(d) for d in self.dataset_rows(where)]

    def documents(self, collections: list[tuple[Any, list[Dataset]]]) -> list[dict[str, Any]]:
        """Proposals, then published collections (given with their datasets, readable ones)."""
        proposals = self._load_proposals()
        by_proposal: dict[int, list[Dataset]] = {}
        for d in self.dataset_rows(proposal_ids=[p.id for p in proposals]):
            by_proposal.setdefault(d.proposal_id, []).append(d)
        docs = []
        for p in proposals:
            doc = self.proposal_document(p)
            doc["datasets"] = [
                self.dataset(d, with_document=False) for d in by_proposal.get(p.id, [])
            ]
            docs.append(doc)
        for c, rows in collections:
            self._load_proposals([c.proposal_id])
            if c.proposal_id not in self._proposals:
                continue
            p = self._proposals[c.proposal_id]
            docs.append(
                {
                    "id": f"collection-{c.id}",
                    "pid": c.doi or f"{self.base_url}/collections/{c.id}",
                    "type": "publication",
                    "isPublic": self._released(p),
                    "title": c.title,
                    "summary": c.abstract,
                    "doi": c.doi,
                    "releaseDate": iso(p.release_date),
                    "license": c.licence,
                    "keywords": list(c.keywords),
                    "startDate": None,
                    "endDate": None,
                    "members": [
                        {
                            "role": "creator",
                            "person": _person(
                                cr.get("name", ""),
                                cr.get("given_name", ""),
                                cr.get("family_name", ""),
                                cr.get("orcid", ""),
                            ),
                            "affiliations": [{"name": cr["affiliation"]}]
                            if cr.get("affiliation")
                            else [],
                        }
                        for cr in c.creators
                    ],
                    "datasets": [self.dataset(d, with_document=False) for d in rows],
                    "parameters": [],
                }
            )
        return docs

    def instruments(self) -> list[dict[str, Any]]:
        beamlines = list(self.db.scalars(select(Beamline).order_by(Beamline.name)))
        rows = self.dataset_rows()
        out = []
        for b in beamlines:
            obj = self.instrument(b)
            assert obj is not None
            obj["datasets"] = [
                self.dataset(d) for d in rows if self._proposals[d.proposal_id].beamline_id == b.id
            ]
            out.append(obj)
        return out
