"""Every endpoint × every persona × proposals in several states and embargoes.

The endpoints come from the app itself (``app.routes``: the OpenAPI operations and the
pages), so a new endpoint without a line in ``expectations.EXPECTATIONS`` fails
``test_every_endpoint_has_an_expectation`` by name. Each endpoint is then called as each
persona with its session cookie and CSRF token (path parameters filled with real numbers,
files and ids; bodies minimal and valid) and the answer's class is checked:

- allowed: not 401/403/404 and never 5xx (422/400/409 for a body the endpoint dislikes,
  or a state it refuses, is fine: the access check let the caller through);
- denied, proposal-scoped: 404 when the persona may not see the proposal (or 401 for an
  anonymous caller on a sign-in-only route), 403/409 when they see it but may not act
  (404 for data, jobs and collections), a redirect to sign-in for anonymous page views;
- denied, global: 401 (API) or a redirect to sign-in (pages) for anonymous callers, 403
  or 404 for signed-in ones.

Requests that changed something are undone (the SQLite file is restored) so every call
sees the facility as built. PostgreSQL answers the same rules in test_access_matrix.
"""

from __future__ import annotations

import time
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from starlette.routing import Mount

from beamdesk.db import utcnow
from tests.security.conftest import Facility
from tests.security.expectations import (
    ANY,
    EXPECTATIONS,
    GLOBAL_RULES,
    HIDDEN_WHEN_DENIED,
    NOBODY,
    PERSONAS,
    PROPOSAL_RULES,
    TRANSITION_FROM,
    VARIANTS,
    Variant,
    proposal_allows,
    proposal_sees,
    rule_is_known,
)
from tests.security.world import H5_DATASET, H5_FILE

SAFE = {"GET", "HEAD", "OPTIONS"}
# Endpoints that hand over to a service the matrix does not run (503 once access passed).
NEEDS_SERVICE = {"/jupyter", "/proposals/{number}/notebook", "/jobs/{job_id}/notebook"}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    route: APIRoute | None

    @property
    def is_api(self) -> bool:
        return self.path.startswith("/api/")


def endpoints(app: Any) -> list[Endpoint]:
    """Every (method, path) the app answers, OpenAPI operations and pages alike."""
    found: dict[tuple[str, str], Endpoint] = {}
    for rc in iter_route_contexts(app.routes):
        original = rc.original_route
        if isinstance(original, Mount) or rc.path is None or not rc.methods:
            continue
        route = original if isinstance(original, APIRoute) else None
        for method in sorted(rc.methods - {"HEAD"}):
            found[(method, rc.path)] = Endpoint(method, rc.path, route)
    # Cross-check with the OpenAPI description: nothing in it may escape the walk above.
    for path, ops in app.openapi()["paths"].items():
        for method in ops:
            key = (method.upper(), path)
            assert key in found or any(
                k[0] == key[0] and k[1].replace(":path", "") == path for k in found
            ), f"{key} is in the OpenAPI description but not in app.routes"
    return sorted(found.values(), key=lambda e: (e.path, e.method))


# ------------------------------------------------------------------ the table is complete
def test_every_endpoint_has_an_expectation(facility: Facility) -> None:
    missing = [
        f"{e.method} {e.path}"
        for e in endpoints(facility.app)
        if (e.method, e.path) not in EXPECTATIONS
    ]
    assert not missing, (
        "endpoints without an access expectation (add them to "
        "tests/security/expectations.py): " + ", ".join(missing)
    )


def test_no_expectation_is_stale_or_unknown(facility: Facility) -> None:
    present = {(e.method, e.path) for e in endpoints(facility.app)}
    stale = [f"{m} {p}" for (m, p) in EXPECTATIONS if (m, p) not in present]
    unknown = [f"{m} {p}: {r}" for (m, p), r in EXPECTATIONS.items() if not rule_is_known(r)]
    assert not unknown, unknown
    assert not stale, "expectations for endpoints that no longer exist: " + ", ".join(stale)


# ------------------------------------------------------------------ filling requests
# Values for parameters and body fields by name; anything else gets a type's minimal value.
NAMED: dict[str, Any] = {
    "username": "participant",
    "beamline": "XRF",
    "doi": "10.5072/matrix-test",
    "score": 3,
    "title": "Matrix test",
    "name": "matrix",
    "file": H5_FILE,
    "path": H5_DATASET,
    "paths": [H5_DATASET],
    "input": f"{H5_FILE}::{H5_DATASET}",
    "comment": "",
    "op": "release",
    "role": "participant",
    "user_id": 0,
    "shifts": 3,
    "expires_days": 30,
    "dataset": H5_DATASET,
    "dataset_ids": [],
}


_INSTRUMENT: dict[str, str] = {}


def instrument_id(fac: Facility) -> str:
    """The PaNOSC id of the facility's first instrument, as the public list gives it."""
    if not _INSTRUMENT:
        fac.use("anonymous")
        items = fac.client.get("/api/panosc/instruments").json()
        _INSTRUMENT["id"] = str(items[0]["id"]) if items else "none"
    return _INSTRUMENT["id"]


def path_values(fac: Facility, persona: str, v: Variant) -> dict[str, str]:
    """A real value for every path parameter the app uses, for one persona and proposal."""
    facts = fac.facts
    doi = facts.dois.get(v.number, "10.99999/no-such-collection")
    prefix, suffix = doi.split("/", 1)
    return {
        "number": v.number,
        "token_id": str(facts.token_ids.get(persona, 999_999)),
        "username": "participant",
        "action": TRANSITION_FROM[v.state][0],
        "job_id": str(facts.job_ids[v.number]),
        "collection_id": str(facts.collection_ids[v.number]),
        "dataset_id": str(facts.dataset_ids[v.number]),
        "document_id": f"proposal-{v.number}",
        "instrument_id": instrument_id(fac),
        "prefix": prefix,
        "suffix": suffix,
        "export": "citation.bib",
        "path": H5_FILE,
    }


def fill_path(path: str, values: dict[str, str]) -> str:
    out = path
    while "{" in out:
        start, end = out.index("{"), out.index("}")
        name = out[start + 1 : end].split(":")[0]
        assert name in values, (
            f"no value for path parameter {name!r} of {path}: add one to path_values() in "
            "tests/security/test_endpoint_matrix.py"
        )
        out = out[:start] + values[name] + out[end + 1 :]
    return out


def _fields(dependant: Any) -> Iterator[tuple[str, Any]]:
    for f in dependant.query_params:
        yield "query", f
    for f in dependant.body_params:
        yield "body", f
    for sub in dependant.dependencies:
        yield from _fields(sub)


def minimal_json(schema: dict[str, Any], defs: dict[str, Any], name: str = "") -> Any:
    """The smallest value the JSON schema accepts, preferring ``NAMED`` values."""
    if "$ref" in schema:
        return minimal_json(defs[schema["$ref"].split("/")[-1]], defs, name)
    if name in NAMED and not isinstance(NAMED[name], list | dict):
        return NAMED[name]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"]
            return minimal_json(options[0], defs, name) if options else None
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: minimal_json(props[k], defs, k) for k in schema.get("required", [])}
    if kind == "array":
        return [minimal_json(schema.get("items", {}), defs)] * schema.get("minItems", 0)
    if kind == "string":
        if schema.get("format") == "date-time":
            later = utcnow() + timedelta(days=2 if name == "end" else 1)
            return later.isoformat()
        return "x" * max(1, schema.get("minLength", 1))
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1)
        return max(1, low) if schema.get("maximum", 10**9) >= 1 else low
    if kind == "boolean":
        return False
    return "x"


def minimal_scalar(name: str, annotation: Any) -> Any:
    if name in NAMED:
        return NAMED[name]
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        return []
    if annotation in (int, float):
        return 1
    if annotation is bool:
        return False
    return "x"


@dataclass
class Request:
    params: dict[str, Any]
    json: Any = None
    data: dict[str, Any] | None = None


def build_request(endpoint: Endpoint) -> Request:
    req = Request(params={})
    if endpoint.route is None:
        return req
    for where, f in _fields(endpoint.route.dependant):
        info = f.field_info
        annotation = info.annotation
        if where == "query":
            if info.is_required():
                req.params[f.alias or f.name] = minimal_scalar(f.name, annotation)
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            schema = annotation.model_json_schema()
            req.json = minimal_json(schema, schema.get("$defs", {}))
        elif type(info).__name__ == "Form":
            if info.is_required():
                req.data = req.data or {}
                req.data[f.alias or f.name] = minimal_scalar(f.name, annotation)
        elif info.is_required():  # an embedded JSON field
            req.json = req.json or {}
            req.json[f.alias or f.name] = minimal_scalar(f.name, annotation)
    return req


# ------------------------------------------------------------------ judging answers
def goes_to_sign_in(response: Any) -> bool:
    return response.status_code in (302, 303, 307) and response.headers.get(
        "location", ""
    ).startswith("/login")


def _short(response: Any) -> str:
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        return str(response.json().get("detail", ""))[:160]
    return " ".join(response.text.split())[:80]


def verdict(
    endpoint: Endpoint, rule: str, persona: str, v: Variant | None, response: Any
) -> str | None:
    """None if the answer follows the rule, else what is wrong."""
    code = response.status_code
    if code == 503 and endpoint.path in NEEDS_SERVICE:
        code = 200  # e.g. JupyterHub not running here: unavailable, yet let through
    if code >= 500:
        return f"server error {code}"
    if rule == ANY:
        return None
    if rule == NOBODY:
        return None if code in (401, 403, 404) else f"refused to every persona, got {code}"
    if rule in GLOBAL_RULES:
        if persona in GLOBAL_RULES[rule]:
            if code in (401, 403, 404) or goes_to_sign_in(response):
                return f"allowed but got {code}"
            return None
        if persona == "anonymous":
            ok = code == 401 or goes_to_sign_in(response)
            return None if ok else f"anonymous should get 401 or sign-in, got {code}"
        return None if code in (403, 404) else f"denied but got {code}"
    assert v is not None
    if proposal_allows(rule, persona, v):
        if persona == "anonymous" and goes_to_sign_in(response) and not endpoint.is_api:
            return None  # a page form asks an anonymous visitor to sign in before acting
        if code in (401, 403, 404) or goes_to_sign_in(response):
            return f"allowed but got {code}: {_short(response)}"
        return None
    if not proposal_sees(persona, v) or rule in HIDDEN_WHEN_DENIED:
        wanted = {404}
    else:
        wanted = {403, 404, 409}
    if persona == "anonymous":
        wanted |= {401}
        if goes_to_sign_in(response):
            return None
    if code in wanted:
        return None
    return f"denied: wanted {sorted(wanted)}, got {code}: {_short(response)}"


def call(fac: Facility, endpoint: Endpoint, persona: str, v: Variant, req: Request) -> Any:
    csrf = fac.use(persona)
    url = fill_path(endpoint.path, path_values(fac, persona, v))
    headers = {} if endpoint.method in SAFE else {"X-CSRF-Token": csrf}
    if endpoint.path.endswith("/events"):
        headers["Accept"] = "text/event-stream"
    response = fac.client.request(
        endpoint.method, url, params=req.params, json=req.json, data=req.data, headers=headers
    )
    if endpoint.method not in SAFE and response.status_code < 400:
        fac.restore()  # it may have changed something: back to the facility as built
    return response


def test_every_endpoint_follows_its_rule(facility: Facility) -> None:
    started = time.monotonic()
    failures: list[str] = []
    calls = 0
    for endpoint in endpoints(facility.app):
        rule = EXPECTATIONS.get((endpoint.method, endpoint.path))
        if rule is None:
            continue  # reported by test_every_endpoint_has_an_expectation
        req = build_request(endpoint)
        variants = VARIANTS if rule in PROPOSAL_RULES else VARIANTS[-1:]
        for v in variants:
            for persona in PERSONAS:
                response = call(facility, endpoint, persona, v, req)
                calls += 1
                wrong = verdict(endpoint, rule, persona, v, response)
                if wrong:
                    failures.append(
                        f"{endpoint.method} {endpoint.path} [{rule}] as {persona} "
                        f"on {v.number} ({v.state.value}, {v.embargo}): {wrong}"
                    )
    elapsed = time.monotonic() - started
    print(f"\n{calls} calls in {elapsed:.1f} s")
    if failures:
        report = facility.settings.var_dir / "matrix-failures.txt"
        report.write_text("\n".join(failures))
        print(f"all failures in {report}")
    assert not failures, f"{len(failures)} answers break the rules:\n" + "\n".join(failures)


@pytest.mark.parametrize("persona", ["outsider", "reviewer", "other_scientist"])
def test_denials_do_not_leak_existence(facility: Facility, persona: str) -> None:
    """A proposal the caller may not see answers exactly like one that does not exist."""
    facility.use(persona)
    hidden = VARIANTS[2].number  # scheduled, under embargo
    for url in (
        f"/api/proposals/{hidden}",
        f"/api/proposals/{hidden}/datasets",
        f"/api/proposals/{hidden}/h5/meta?file={H5_FILE}",
    ):
        real = facility.client.get(url)
        ghost = facility.client.get(url.replace(hidden, "29990999"))
        if persona == "reviewer" and url.endswith(hidden):
            assert real.status_code == 200  # assigned to it
            continue
        assert real.status_code == ghost.status_code == 404, (url, real.status_code)
        assert real.headers["content-type"] == ghost.headers["content-type"]
        body_real, body_ghost = real.json(), ghost.json()
        assert body_real["title"] == body_ghost["title"]
