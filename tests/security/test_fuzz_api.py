"""Schemathesis against the OpenAPI description: generated requests, signed in with a
Bearer token, must never get a 5xx and every answer must match the documented schema.

Half the generated proposal numbers and file names are swapped for real ones, so the
fuzzer gets past the access check into the HDF5 and catalogue code. Examples per operation
are limited (``FUZZ_EXAMPLES``, default 30) to keep the run near a minute; raise it for a
longer hunt: ``BEAMDESK_FUZZ_EXAMPLES=200 pytest tests/security/test_fuzz_api.py``.
"""

from __future__ import annotations

import os
import zlib
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.security.conftest import Facility
from tests.security.expectations import VARIANTS
from tests.security.world import H5_DATASET, H5_FILE

FUZZ_EXAMPLES = int(os.environ.get("BEAMDESK_FUZZ_EXAMPLES", "30"))
PERSONA = "office"  # sees everything, so requests reach the deepest code


def _pick(value: Any, choices: list[str]) -> Any:
    """Deterministically replace half the generated values by real ones."""
    h = zlib.crc32(repr(value).encode())
    return choices[h % len(choices)] if h % 2 == 0 else value


def map_path_parameters(context: Any, path_parameters: dict[str, Any]) -> dict[str, Any]:
    if path_parameters and "number" in path_parameters:
        path_parameters["number"] = _pick(path_parameters["number"], [v.number for v in VARIANTS])
    if path_parameters and "path" in path_parameters:
        path_parameters["path"] = _pick(path_parameters["path"], [H5_FILE])
    return path_parameters


def map_query(context: Any, query: dict[str, Any]) -> dict[str, Any]:
    if query and "file" in query:
        query["file"] = _pick(query["file"], [H5_FILE])
    if query and "path" in query:
        query["path"] = _pick(query["path"], [H5_DATASET, "/entry", "/"])
    return query


def api_schema(facility: Facility) -> Any:
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", facility.app)
    # Revoking the fuzzer's own token would sign it out for the rest of the run; the
    # event stream of a job never ends while the job runs.
    schema = schema.exclude(method="DELETE", path="/api/tokens/{token_id}")
    schema = schema.exclude(path="/api/jobs/{job_id}/events")
    schema.hook(map_path_parameters)
    schema.hook(map_query)
    return schema


def test_api_answers_within_its_schema(facility: Facility) -> None:
    """Each operation in turn (schemathesis' pytest plugin does not load under pytest 9,
    so the operations' Hypothesis strategies are driven here directly)."""
    failures: list[str] = []
    operations = 0
    for result in api_schema(facility).get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call(headers=facility.bearer(PERSONA))
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance]
            )

        try:
            run()
        except Exception as exc:  # one operation's failure must not hide the others'
            failures.append(
                f"{operation.method.upper()} {operation.path}: {str(exc).strip()[:1500]}"
            )
    assert operations > 30
    assert not failures, f"{len(failures)} operations fail:\n\n" + "\n\n".join(failures)
