"""The import rules of docs/architecture.md, checked on every module's source."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "beamdesk"

# package -> imports it must never make (beamdesk sub-packages and frameworks)
FORBIDDEN = {
    "xrf": {
        "beamdesk.web",
        "beamdesk.portal",
        "beamdesk.jobs",
        "beamdesk.db",
        "beamdesk.h5",
        "beamdesk.sandbox",
        "fastapi",
        "sqlalchemy",
        "starlette",
    },
    "h5": {
        "beamdesk.web",
        "beamdesk.portal",
        "beamdesk.jobs",
        "beamdesk.db",
        "beamdesk.sandbox",
        "fastapi",
        "sqlalchemy",
        "starlette",
    },
    # reader workers parse users' files: no database, no web, no portal in them
    "sandbox": {
        "beamdesk.web",
        "beamdesk.portal",
        "beamdesk.jobs",
        "beamdesk.db",
        "beamdesk.jupyter",
        "fastapi",
        "sqlalchemy",
        "starlette",
    },
    "portal": {"beamdesk.web", "beamdesk.jobs", "beamdesk.jupyter", "fastapi", "starlette"},
    "jobs": {"beamdesk.web"},
    "demo": {"beamdesk.web", "beamdesk.jobs", "fastapi", "starlette"},
    "jupyter": {"beamdesk.web", "beamdesk.jobs"},
}


def test_client_talks_http_only() -> None:
    """``beamdesk_client`` runs in notebooks: it must not pull in the server's code, and
    needs no more than its distribution declares (httpx, numpy); ``beamdesk.client`` is
    only its old name."""
    client = PACKAGE.parent / "client" / "beamdesk_client"
    names = set().union(*(imported_modules(p) for p in client.rglob("*.py")))
    assert [n for n in names if n == "beamdesk" or n.startswith("beamdesk.")] == []
    third_party = {n.split(".")[0] for n in names} - sys.stdlib_module_names
    assert third_party <= {"httpx", "numpy", "beamdesk_client"}
    assert imported_modules(PACKAGE / "client.py") == {"beamdesk_client"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_imports(package: str) -> None:
    offences = []
    for path in sorted((PACKAGE / package).rglob("*.py")):
        for name in imported_modules(path):
            for banned in FORBIDDEN[package]:
                if name == banned or name.startswith(banned + "."):
                    offences.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert offences == []
