"""Settings as an operator meets them: spelled the usual ways, checked, documented.

The CLI runs as a subprocess with a real environment; the app built from those settings is
asked over HTTPS whether its cookies are Secure and HSTS is sent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from beamdesk.settings import (
    NOT_SETTINGS,
    SettingsError,
    known_variables,
    load_settings,
    settings_table,
)
from beamdesk.web.app import create_app
from tests.test_auth import people, set_cookies, sign_in

__all__ = ["people"]  # a fixture used below
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("BEAMDESK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BEAMDESK_VAR", str(tmp_path / "var"))
    return monkeypatch


@pytest.mark.parametrize(
    ("spelled", "secure"),
    [
        *[(word, True) for word in ("true", "True", "1", "yes", "on")],
        *[(word, False) for word in ("false", "0", "no", "off")],
    ],
)
def test_cookie_secure_is_understood_as_operators_write_it(
    clean_env: pytest.MonkeyPatch, spelled: str, secure: bool
) -> None:
    clean_env.setenv("BEAMDESK_COOKIE_SECURE", spelled)
    settings, warnings = load_settings()
    assert settings.auth.cookie_secure is secure
    assert warnings == []


def test_cookie_secure_true_gives_secure_cookies_and_hsts(  # type: ignore[no-untyped-def]
    clean_env: pytest.MonkeyPatch, settings, people
) -> None:
    """The first round's bug: `true` was not `1`, and cookies stayed insecure."""
    clean_env.setenv("BEAMDESK_COOKIE_SECURE", "true")
    clean_env.setenv("BEAMDESK_DATABASE_URL", settings.database_url)
    clean_env.setenv("BEAMDESK_DATA", str(settings.data_root))
    from_env, _ = load_settings()
    with TestClient(create_app(from_env), base_url="https://testserver") as client:
        response = sign_in(client, "alice")
        cookies = set_cookies(response)
        assert cookies and all("; secure" in c.lower() for c in cookies.values())
        hsts = client.get("/").headers.get("strict-transport-security", "")
        assert re.match(r"max-age=\d{7,}", hsts), hsts


def test_every_bad_value_is_one_line_naming_its_variable(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BEAMDESK_EMBARGO_YEARS", "three")
    clean_env.setenv("BEAMDESK_READER_TIMEOUT", "soon")
    clean_env.setenv("BEAMDESK_SANDBOX", "docker")
    clean_env.setenv("BEAMDESK_OIDC_CLIENT_SECRET", "x")  # fine, and never shown
    with pytest.raises(SettingsError) as caught:
        load_settings()
    lines = caught.value.lines
    assert len(lines) == 3
    assert any(line.startswith("BEAMDESK_READER_TIMEOUT='soon': ") for line in lines)
    assert any(line.startswith("BEAMDESK_EMBARGO_YEARS='three': ") for line in lines)
    assert any("BEAMDESK_SANDBOX='docker'" in line and "'bwrap'" in line for line in lines)


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BEAMDESK_")}
    return subprocess.run(
        [sys.executable, "-m", "beamdesk.cli", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_refuses_bad_values_with_one_line_each(tmp_path: Path) -> None:
    env = {
        "BEAMDESK_VAR": str(tmp_path),
        "BEAMDESK_EMBARGO_YEARS": "three",
        "BEAMDESK_HUB_CPU_LIMIT": "lots",
    }
    result = run_cli("serve", env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "pydantic" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, result.stderr
    assert any("BEAMDESK_EMBARGO_YEARS='three'" in line for line in errors)
    assert any("BEAMDESK_HUB_CPU_LIMIT='lots'" in line for line in errors)


def test_a_misspelt_variable_is_warned_about(tmp_path: Path) -> None:
    env = {"BEAMDESK_VAR": str(tmp_path), "BEAMDESK_COOKIE_SECRUE": "true"}
    result = run_cli("settings", env=env)
    assert result.returncode == 0, result.stderr
    assert (
        "BEAMDESK_COOKIE_SECRUE is not a BeamDesk setting and is ignored "
        "(did you mean BEAMDESK_COOKIE_SECURE?)" in " ".join(result.stderr.split())
    )
    assert "BEAMDESK_COOKIE_SECURE=false" in result.stdout


def test_settings_command_hides_secrets(tmp_path: Path) -> None:
    env = {
        "BEAMDESK_VAR": str(tmp_path),
        "BEAMDESK_SECRET_KEY": "s3cr3t-key-value",
        "BEAMDESK_DATACITE_PASSWORD": "hunter2",
        "BEAMDESK_DATABASE_URL": "postgresql+psycopg://bd:pw0rd@db/beamdesk",
    }
    result = run_cli("settings", env=env)
    assert result.returncode == 0, result.stderr
    for secret in ("s3cr3t-key-value", "hunter2", "pw0rd"):
        assert secret not in result.stdout
    assert "BEAMDESK_DATACITE_PASSWORD=(set)" in result.stdout


def test_readme_table_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- settings table: beamdesk settings --markdown -->\n")
    end = readme.index("<!-- end of settings table -->")
    body = readme[start:end].split("\n", 1)[1]
    assert body == settings_table(), "run `beamdesk settings --markdown` into the README"


def test_every_variable_the_package_reads_is_a_setting_or_named_as_not_one() -> None:
    known = set(known_variables()) | NOT_SETTINGS
    used: set[str] = set()
    for path in (ROOT / "beamdesk").rglob("*.py"):
        used |= set(re.findall(r"BEAMDESK_[A-Z][A-Z0-9_]*[A-Z0-9](?![A-Z0-9_])", path.read_text()))
    unknown = sorted(used - known - {"BEAMDESK_TEST_POSTGRES_URL"})
    assert unknown == [], f"read outside beamdesk/settings.py, or undocumented: {unknown}"


def test_a_child_process_gets_the_same_settings(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BEAMDESK_HUB_MEM_LIMIT", "2G")
    clean_env.setenv("BEAMDESK_DASK_PROCESSES", "false")
    clean_env.setenv("BEAMDESK_SECRET_KEY", "k" * 40)
    first, _ = load_settings()
    for name, value in first.environment().items():
        clean_env.setenv(name, value)
    second, warnings = load_settings()
    assert second == first and warnings == []
    assert second.hub.mem_limit == "2G" and second.jobs.dask_processes is False
