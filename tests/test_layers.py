"""The import rules of docs/architecture.md: import-linter's contracts, and the client alone."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "beamdesk"


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


def test_import_contracts_are_kept() -> None:
    """The contracts in pyproject.toml ([tool.importlinter]), as `make test` runs them."""
    result = run_lint_imports(PACKAGE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_allow_list_names_what_it_did_not_list(tmp_path: Path) -> None:
    """The allow-list contract catches a third-party and a sibling import nobody forbade,
    indirect in a sub-package, and lets the standard library and allowed names through."""
    (tmp_path / "tools").mkdir()
    shutil.copy(PACKAGE.parent / "tools" / "import_contracts.py", tmp_path / "tools")
    pure = tmp_path / "town" / "pure"
    (pure / "deep").mkdir(parents=True)
    (tmp_path / "town" / "__init__.py").write_text("")
    (tmp_path / "town" / "web.py").write_text("")
    (pure / "__init__.py").write_text("import json\nimport numpy\nfrom town.pure import deep\n")
    (pure / "deep" / "__init__.py").write_text("\n\nimport fastapi\nfrom town import web\n")
    (tmp_path / "pyproject.toml").write_text(
        "[tool.importlinter]\n"
        'root_packages = ["town"]\n'
        "include_external_packages = true\n"
        'contract_types = ["allow_list: tools.import_contracts.AllowListContract"]\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "pure"\n'
        'type = "allow_list"\n'
        'source_modules = ["town.pure"]\n'
        'allowed_modules = ["numpy"]\n'
    )
    result = run_lint_imports(tmp_path)
    assert result.returncode == 1
    offences = [line for line in result.stdout.splitlines() if line.startswith("- ")]
    assert offences == [
        "- town.pure.deep (l. 3) imports fastapi",
        "- town.pure.deep (l. 4) imports town.web",
    ]


def run_lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
