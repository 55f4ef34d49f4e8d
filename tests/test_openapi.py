"""The OpenAPI description covers every answer of every /api operation, errors included,
and the front end's API types (frontend/src/common/api.gen.ts) are generated from it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from beamdesk.web.schemas import ProblemDetails

ROOT = Path(__file__).resolve().parents[1]
PROBLEM = {"$ref": "#/components/schemas/ProblemDetails"}
METHODS = {"get", "post", "put", "patch", "delete"}


def api_operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in spec["paths"].items()
        if path.startswith("/api/")
        for method, op in ops.items()
        if method in METHODS
    ]


def described(answer: dict[str, Any]) -> bool:
    """A schema that says something, or a media type that is not JSON."""
    for media_type, content in answer.get("content", {}).items():
        if "json" not in media_type:
            return True
        schema = content.get("schema", {})
        if schema.get("$ref") or schema.get("items", {}).get("$ref"):
            return True
        if schema.get("type") not in (None, "object") or schema.get("properties"):
            return True  # a list of strings, text
    return False


def test_every_api_operation_describes_its_answer(app) -> None:
    spec = app.openapi()
    operations = api_operations(spec)
    assert len(operations) > 60
    vague = []
    for method, path, op in operations:
        ok = [
            code
            for code, answer in op["responses"].items()
            if code.startswith("2") and (code == "204" or described(answer))
        ]
        if not ok:
            vague.append(f"{method} {path}: {sorted(op['responses'])}")
    assert not vague, "answers without a schema or media type:\n" + "\n".join(vague)


def test_every_api_operation_declares_its_errors_as_problem_details(app) -> None:
    spec = app.openapi()
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's, never sent
    wrong = []
    for method, path, op in api_operations(spec):
        errors = {c: a for c, a in op["responses"].items() if c[0] in "45"}
        if not {"401", "403", "404", "422", "500"} <= errors.keys():
            wrong.append(f"{method} {path}: errors {sorted(errors)}")
        for code, answer in errors.items():
            if path == "/api/ready" and code == "503":
                continue  # the readiness answer names the failing parts instead
            sent = answer.get("content", {}).get("application/problem+json", {})
            if sent.get("schema") != PROBLEM:
                wrong.append(f"{method} {path} {code}: {answer.get('content')}")
    assert not wrong, "\n".join(wrong)


def test_problem_details_model_is_what_is_sent(client) -> None:
    """Real error answers (404, 422, 401, 400) have exactly the fields of ProblemDetails."""
    fields = set(ProblemDetails.model_fields)
    required = {n for n, f in ProblemDetails.model_fields.items() if f.is_required()}
    answers = [
        client.get("/api/no-such-thing"),
        client.get("/api/proposals", params={"limit": "0"}),
        client.get("/api/me"),
        client.get("/api/panosc/datasets", params={"filter": "x"}),
    ]
    assert [r.status_code for r in answers] == [404, 422, 401, 400]
    for r in answers:
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert required <= body.keys() <= fields, body
        assert body["status"] == r.status_code
        assert body["message"] == body["detail"]
        ProblemDetails.model_validate(body)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_front_end_api_types_are_generated_from_the_api() -> None:
    script = ROOT / "frontend" / "scripts" / "gen-api.mjs"
    if not (ROOT / "frontend" / "node_modules" / "openapi-typescript").is_dir():
        pytest.skip("front-end packages not installed: make frontend")
    env = {**os.environ, "BEAMDESK_PYTHON": sys.executable}
    run = subprocess.run(
        ["node", str(script), "--check"],
        cwd=ROOT / "frontend",
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-2000:]
