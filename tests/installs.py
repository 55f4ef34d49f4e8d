"""Building BeamDesk's wheels and installing them into new venvs, for the packaging tests.

The wheels are built by uv from this checkout (sdist first, then the wheel from the sdist, as
a release would). Each venv is new, under the test's tmp_path: ``uv sync --frozen --offline``
puts uv.lock's pins for the chosen part into it from uv's cache (filled by ``make setup`` from
the same lock, so nothing is downloaded), then the built wheels go in with ``--no-deps`` and
``uv pip check`` confirms each wheel's own requirements are met. The venv sees neither this
checkout nor .venv's site-packages (its Python runs with ``-I``, outside the checkout).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
APP_DIR = REPO / "beamdesk" / "web" / "static" / "app"


def uv() -> str:
    """The uv that ``make`` uses: given by ``make test``, else on PATH, else make's own copy."""
    for candidate in (
        os.environ.get("BEAMDESK_TEST_UV"),
        shutil.which("uv"),
        str(REPO / ".tools" / "uv" / "bin" / "uv"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("uv not found: run `make setup`, which installs it into .tools/uv")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without venv, project or BeamDesk variables."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("BEAMDESK_", "VIRTUAL_ENV", "UV_PROJECT", "PYTHON"))
    }
    env.update(extra)
    return env


def run(args: list[str | Path], cwd: Path, timeout: float = 600, **env: str) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        pytest.fail(
            f"{args[:3]} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done.stdout


def build(out: Path) -> dict[str, Path]:
    """Build both distributions into ``out``; their wheels by distribution name."""
    run([uv(), "build", "--all-packages", "--out-dir", out], cwd=REPO)
    wheels = {}
    for name in ("beamdesk", "beamdesk_client"):
        found = sorted(out.glob(f"{name}-*.whl"))
        assert len(found) == 1, f"{name}: {found}"
        wheels[name] = found[0]
    return wheels


def new_venv(path: Path, *selection: str, wheels: list[Path]) -> Path:
    """A new venv at ``path``: uv.lock's pins for ``selection`` (``--package``, ``--extra``)
    without the projects themselves, then ``wheels``; its Python."""
    run(
        [
            *(uv(), "sync", "--frozen", "--offline", "--quiet", "--no-install-workspace"),
            *("--python", sys.executable, *selection),
        ],
        cwd=REPO,
        UV_PROJECT_ENVIRONMENT=str(path),
    )
    python = path / "bin" / "python"
    install(python, *wheels)
    return python


def install(python: Path, *wheels: Path) -> None:
    """Built wheels into ``python``'s venv; their requirements must already be there."""
    uv_pip = [uv(), "pip", "--quiet"]
    run([*uv_pip, "install", "--offline", "--no-deps", "--python", python, *wheels], cwd=REPO)
    run([*uv_pip, "check", "--python", python], cwd=REPO)


def lock_closure(name: str) -> set[str]:
    """Every distribution ``name`` pulls in on this machine, read from uv.lock itself."""
    from packaging.markers import Marker

    lock = tomllib.loads((REPO / "uv.lock").read_text())
    packages = {p["name"]: p for p in lock["package"]}
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for dep in packages[current].get("dependencies", []):
            if Marker(dep.get("marker", "python_version >= '3'")).evaluate():
                todo.append(dep["name"])
    return seen
