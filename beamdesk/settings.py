"""BeamDesk's settings: one object, read once from ``BEAMDESK_*`` environment variables.

The top level says where the installation lives (folders, database, secret, public address);
each feature has its own section (``settings.auth``, ``.oidc``, ``.limits``, ``.jobs``,
``.publication``, ``.datacite``, ``.hub``, ``.operations``). Every field names its variable,
its default and its meaning once, here: the README's table is generated from these fields
(``beamdesk settings --markdown``) and a test keeps the two equal.

``load_settings()`` validates everything and raises :class:`SettingsError` with one line per
bad value (``BEAMDESK_EMBARGO_YEARS='three': not a whole number``); it also returns
warnings for ``BEAMDESK_*`` variables that are no setting (a typo is said, not ignored).
Tests build their own ``Settings`` and pass them explicitly, so nothing here is global state
a test must reset.
"""

from __future__ import annotations

import difflib
import os
import secrets
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024
PREFIX = "BEAMDESK_"

# Variables BeamDesk reads that are not settings of the server: the Python client's
# address and token, the demo's password, what a notebook's sandbox is told, test switches.
NOT_SETTINGS = {
    "BEAMDESK_URL",
    "BEAMDESK_TOKEN",
    "BEAMDESK_DEMO_PASSWORD",
    "BEAMDESK_DEMO_STACK",
    "BEAMDESK_PROPOSALS",
    "BEAMDESK_LINKED",
    "BEAMDESK_SERVER",
    "BEAMDESK_SCREENSHOTS",
    "BEAMDESK_FUZZ_EXAMPLES",
    "BEAMDESK_PG_DIR",
    "BEAMDESK_PG_PORT",
}
NOT_SETTING_PREFIXES = ("BEAMDESK_TEST_",)


class SettingsError(ValueError):
    """Bad values in the environment, one line each, naming the variable."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def setting(default: Any, doc: str, *, shown: str | None = None, secret: bool = False) -> Any:
    """A field with its README line: ``doc`` is the meaning, ``shown`` the default as said."""
    extra: dict[str, Any] = {"secret": secret}
    if shown is not None:
        extra["shown"] = shown
    return Field(default=default, description=doc, json_schema_extra=extra)


class Section(BaseSettings):
    """A group of settings; its variables are ``BEAMDESK_<env_prefix><FIELD>``."""

    title: ClassVar[str] = ""
    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="ignore")

    @classmethod
    def variable(cls, field: str) -> str:
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()


class AuthSection(Section):
    title = "Sign-in and sessions"

    cookie_secure: bool = setting(
        False, "`true` behind HTTPS: cookies only over TLS, and HSTS is sent"
    )
    session_max_age: int = setting(12 * 3600, "seconds a sign-in lasts", shown="`43200` (12 h)")
    max_failed_logins: int = setting(
        5,
        "failed sign-ins of one name (from anywhere, within the window) before each further "
        "try of that name waits: 0.25 s, doubling (a browser that signed in to it before does "
        "not wait; no account is ever locked)",
    )
    login_max_delay: float = setting(3.0, "the longest such wait, in seconds")
    login_failures_per_client: int = setting(
        10, "failed sign-ins of one name from one address before that address gets 429 for it"
    )
    login_failure_window: int = setting(900, "seconds a failed sign-in counts")


class OidcSection(Section):
    title = "OpenID Connect (docs/authentication.md)"
    model_config = SettingsConfigDict(env_prefix=f"{PREFIX}OIDC_")

    issuer: str = setting("", "issuer URL (Keycloak realm, Umbrella ID); unset: passwords only")
    client_id: str = setting("", "BeamDesk's client id at the issuer")
    client_secret: str = setting("", "its client secret", secret=True)
    name: str = setting("Single sign-on", "the button's label")

    @property
    def enabled(self) -> bool:
        return bool(self.issuer and self.client_id)


class LimitsSection(Section):
    title = "Reading users' files"

    max_read_bytes: int = setting(
        256 * MiB,
        "largest HDF5 selection one request may read, in bytes",
        shown="`268435456` (256 MiB)",
    )
    sandbox: Literal["bwrap", "process"] = setting(
        "bwrap",
        "how users' files are parsed: `bwrap` (reader workers confined by bubblewrap to one "
        "proposal) or `process` (separate processes, no confinement)",
    )
    reader_memory_bytes: int = setting(
        3 * 1024 * MiB, "address space of one reader worker, in bytes", shown="`3221225472` (3 GiB)"
    )
    reader_timeout: float = setting(
        60.0, "seconds a reader worker may stay silent before it is killed"
    )


class JobsSection(Section):
    title = "Analysis jobs (docs/jobs.md)"

    dask_scheduler: str = setting(
        "", "address of an existing dask scheduler (`tcp://host:8786`); unset: local workers"
    )
    dask_workers: int = setting(2, "local dask workers started with `beamdesk serve`")
    dask_processes: bool = setting(
        True, "local workers as processes (`false`: threads of one process, for tests)"
    )
    max_concurrent_jobs: int = setting(2, "analysis jobs queued or running per user")
    jobs_in_server: bool = setting(
        True,
        "`beamdesk serve` runs the jobs (`false`: only `beamdesk jobs run`, its own service, "
        "does; docs/deployment.md)",
    )


class PublicationSection(Section):
    title = "Embargo and publication (docs/publication.md)"

    embargo_years: int = setting(3, "data open this long after the last beamtime ends")
    embargo_extension_years: int = setting(2, "the one extension a PI may ask for")
    licence: str = setting("CC-BY-4.0", "default licence of published data collections")
    publisher: str = setting("Elettra Sincrotrone Trieste", "publisher named in DOI metadata")
    facility: str = setting("Elettra", "facility named in DOI metadata and landing pages")


class DataCiteSection(Section):
    title = "DOIs (docs/publication.md)"
    model_config = SettingsConfigDict(env_prefix=f"{PREFIX}DATACITE_")

    url: str = setting("", "DataCite REST API; unset: draft DOIs only")
    repository: str = setting("", "repository account")
    password: str = setting("", "its password", secret=True)
    prefix: str = setting("", "DOI prefix", shown="the DataCite test prefix")


class HubSection(Section):
    title = "JupyterHub (`beamdesk hub`, docs/jupyter.md)"
    model_config = SettingsConfigDict(env_prefix=f"{PREFIX}HUB_")

    url: str = setting("http://127.0.0.1:8800", "public address of the hub")
    bind_url: str = setting(
        "",
        "where the hub's proxy listens when a reverse proxy serves the public address "
        "(`http://127.0.0.1:8800`; docs/deployment.md)",
        shown="`$BEAMDESK_HUB_URL`",
    )
    port: int = setting(0, "the hub's own port, on loopback", shown="the public port + 1")
    proxy_api_port: int = setting(0, "the proxy's REST API port", shown="the public port + 2")
    dir: str = setting(
        "", "the hub's state: database, secrets, homes", shown="`$BEAMDESK_VAR/jupyter`"
    )
    portal_url: str = setting("", "the portal as the hub reaches it", shown="`$BEAMDESK_BASE_URL`")
    proxy_command: str = setting(
        "", "configurable-http-proxy to run", shown="the one `make jupyter-proxy` installs"
    )
    db_url: str = setting("", "the hub's own database", shown="SQLite in the hub's folder")
    extra_config: str = setting("", "a jupyterhub_config fragment the facility adds (spawners)")
    spawner: Literal["sandbox", "simple"] = setting(
        "sandbox", "`sandbox` (one account per user, bubblewrap) or `simple` (single-user machine)"
    )
    mem_limit: str = setting("4G", "address space per process of a server; empty for none")
    cpu_limit: float = setting(0.0, "cores a server may use; 0 for all")
    max_processes: int = setting(512, "processes and threads of one user's account; 0 for none")


class OperationsSection(Section):
    title = "Operations: metrics and logs"

    metrics_token: str = setting(
        "",
        "lets a scraper elsewhere read `/metrics` with this bearer token (unset: loopback only; "
        "a proxy on the same host must send `X-Forwarded-For`)",
        secret=True,
    )
    log_format: Literal["text", "json"] = setting(
        "text",
        "`json`: `beamdesk serve` logs one JSON object per line (time, level, logger, message, "
        "request_id). Either way `beamdesk.*` INFO lines are written, the proxy's "
        "`X-Request-ID` (or a new one) is on each request's lines and answer, and tokens and "
        "passwords in URLs are `[redacted]`",
    )


SECTIONS: dict[str, type[Section]] = {
    "auth": AuthSection,
    "oidc": OidcSection,
    "limits": LimitsSection,
    "jobs": JobsSection,
    "publication": PublicationSection,
    "datacite": DataCiteSection,
    "hub": HubSection,
    "operations": OperationsSection,
}


class Settings(BaseModel):
    """Where the installation lives, and one section per feature."""

    model_config = ConfigDict(frozen=True)

    var_dir: Path = setting(
        Path("var"), "the SQLite database and the generated secret key", shown="`./var`"
    )
    data_root: Path = setting(
        Path("var/data"),
        "data root: `<proposal number>/raw/…`, `…/processed/…`",
        shown="`$BEAMDESK_VAR/data`",
    )
    database_url: str = setting(
        "",
        "e.g. `postgresql+psycopg://user:pw@host/beamdesk`",
        shown="`sqlite:///$BEAMDESK_VAR/beamdesk.db`",
    )
    secret_key: str = setting(
        "",
        "signs session cookies",
        shown="generated once into `$BEAMDESK_VAR/secret_key`",
        secret=True,
    )
    base_url: str = setting("http://127.0.0.1:8000", "the portal's public address")

    auth: AuthSection = Field(default_factory=AuthSection)
    oidc: OidcSection = Field(default_factory=OidcSection)
    limits: LimitsSection = Field(default_factory=LimitsSection)
    jobs: JobsSection = Field(default_factory=JobsSection)
    publication: PublicationSection = Field(default_factory=PublicationSection)
    datacite: DataCiteSection = Field(default_factory=DataCiteSection)
    hub: HubSection = Field(default_factory=HubSection)
    operations: OperationsSection = Field(default_factory=OperationsSection)

    def changed(self, **changes: Any) -> Settings:
        """A copy with some values changed; a section's are given as a dict of its fields:
        ``settings.changed(base_url=..., auth={"cookie_secure": True})``."""
        update = {}
        for key, value in changes.items():
            if key in SECTIONS and isinstance(value, dict):
                value = getattr(self, key).model_copy(update=value)
            elif key not in type(self).model_fields:
                raise TypeError(f"Settings have no {key!r}")
            update[key] = value
        return self.model_copy(update=update)

    def environment(self) -> dict[str, str]:
        """These settings as the ``BEAMDESK_*`` variables that give them to a child process."""
        env = {name: str(getattr(self, field)) for field, name in self.VARIABLES.items()}
        for key, section in SECTIONS.items():
            values = getattr(self, key)
            for field in section.model_fields:
                value = getattr(values, field)
                env[section.variable(field)] = (
                    str(value).lower() if isinstance(value, bool) else str(value)
                )
        return env

    # The top level's variables (BEAMDESK_VAR and BEAMDESK_DATA keep their short names).
    VARIABLES: ClassVar[dict[str, str]] = {
        "var_dir": "BEAMDESK_VAR",
        "data_root": "BEAMDESK_DATA",
        "database_url": "BEAMDESK_DATABASE_URL",
        "secret_key": "BEAMDESK_SECRET_KEY",
        "base_url": "BEAMDESK_BASE_URL",
    }


def _load_or_create_secret(path: Path) -> str:
    """A per-installation secret kept next to the data, created on first start.

    A constant default secret would let anyone forge session cookies, so there is none.
    """
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret)
    return secret


def known_variables() -> dict[str, str]:
    """Every setting's variable, and where it lives (``auth.cookie_secure``)."""
    known = {name: field for field, name in Settings.VARIABLES.items()}
    for key, section in SECTIONS.items():
        for field in section.model_fields:
            known[section.variable(field)] = f"{key}.{field}"
    return known


def is_secret(variable: str) -> bool:
    """Whether a setting's value must not be shown (keys, passwords, client secrets)."""
    if variable in ("BEAMDESK_SECRET_KEY", "BEAMDESK_DATABASE_URL", "BEAMDESK_HUB_DB_URL"):
        return True  # database URLs may carry a password
    for section in SECTIONS.values():
        for field, info in section.model_fields.items():
            if section.variable(field) == variable:
                return _secret(info)
    return False


def _secret(info: FieldInfo) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("secret"))


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning per ``BEAMDESK_*`` variable that is no setting, with the likely one."""
    known = known_variables()
    warnings = []
    for name in sorted(environ):
        if not name.startswith(PREFIX) or name in known or name in NOT_SETTINGS:
            continue
        if name.startswith(NOT_SETTING_PREFIXES):
            continue
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        warnings.append(f"{name} is not a BeamDesk setting and is ignored{hint}")
    return warnings


def _error_lines(section: type[Section], error: ValidationError) -> list[str]:
    lines = []
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else ""
        message = problem["msg"].replace("Input should be", "should be")
        shown = "…" if _secret(section.model_fields[field]) else repr(problem["input"])
        lines.append(f"{section.variable(field)}={shown}: {message}")
    return lines


def load_settings(data_root: str | Path | None = None) -> tuple[Settings, list[str]]:
    """Settings from this process's environment, validated, and the warnings to show.

    Raises :class:`SettingsError` naming every bad variable at once.
    """
    env = dict(os.environ)
    lines: list[str] = []
    sections: dict[str, Section] = {}
    for key, section in SECTIONS.items():
        try:
            sections[key] = section()  # each section reads its own variables
        except ValidationError as error:
            lines += _error_lines(section, error)
    if lines:
        raise SettingsError(lines)
    var_dir = Path(env.get("BEAMDESK_VAR") or "var").resolve()
    root = Path(data_root or env.get("BEAMDESK_DATA") or var_dir / "data").resolve()
    secret = env.get("BEAMDESK_SECRET_KEY") or _load_or_create_secret(var_dir / "secret_key")
    settings = Settings.model_validate(
        {
            "var_dir": var_dir,
            "data_root": root,
            "database_url": env.get("BEAMDESK_DATABASE_URL")
            or f"sqlite:///{var_dir / 'beamdesk.db'}",
            "secret_key": secret,
            "base_url": env.get("BEAMDESK_BASE_URL") or "http://127.0.0.1:8000",
            **sections,
        }
    )
    return settings, unknown_variables(env)


def settings_from_env(data_root: str | Path | None = None) -> Settings:
    """The settings of this process's environment (warnings are the CLI's to show)."""
    return load_settings(data_root)[0]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return settings_from_env()


def _rows(model: type[BaseModel], variable: Any) -> Iterator[str]:
    for name, field in model.model_fields.items():
        if field.description is None:
            continue  # a section, listed on its own
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        default = extra.get("shown")
        if default is None:
            value = field.default
            if isinstance(value, bool):
                value = str(value).lower()
            default = f"`{value}`" if value not in ("", None) else "unset"
        yield f"| `{variable(name)}` | {default} | {field.description} |"


def settings_table() -> str:
    """The README's table of settings, in Markdown, generated from the fields above."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    lines += _rows(Settings, Settings.VARIABLES.__getitem__)
    for section in SECTIONS.values():
        lines.append(f"| **{section.title}** | | |")
        lines += _rows(section, section.variable)
    return "\n".join(lines) + "\n"
