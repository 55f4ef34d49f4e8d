"""Configuration from ``BEAMDESK_*`` environment variables, with defaults that run on a laptop.

Settings are read once per process (``get_settings``); tests build their own ``Settings``
and pass them explicitly, so nothing here is global state that a test must reset.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

MiB = 1024 * 1024


def _env(name: str, default: str) -> str:
    return os.environ.get(f"BEAMDESK_{name}", default)


def _var_dir() -> Path:
    return Path(_env("VAR", "var")).resolve()


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


@dataclass(frozen=True)
class Settings:
    data_root: Path
    database_url: str
    secret_key: str
    var_dir: Path
    base_url: str = "http://127.0.0.1:8000"
    # Embargo: release = end of last beamtime + embargo_years; the PI may extend once.
    embargo_years: int = 3
    embargo_extension_years: int = 2
    # The largest selection one HDF5 request may read, in bytes.
    max_read_bytes: int = 256 * MiB
    # Sign-in throttling (beamdesk.web.ratelimit); nothing ever locks an account.
    # Failed password checks of one user name (from anywhere) within the window that cost
    # nothing; each one past them makes the next check of that name wait 0.25 s, doubling,
    # at most login_max_delay seconds (not for a browser that signed in to it before).
    max_failed_logins: int = 5
    login_max_delay: float = 3.0
    # Failed checks of one user name from one address within the window before that
    # address gets 429 for that name (other addresses are not affected).
    login_failures_per_client: int = 10
    # How long a failure counts, in seconds.
    login_failure_window: int = 900
    session_max_age: int = 12 * 3600
    cookie_secure: bool = False
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_name: str = "Single sign-on"
    dask_scheduler: str = ""
    dask_workers: int = 2
    max_concurrent_jobs: int = 2
    # Reader workers that parse users' files (beamdesk.sandbox): "bwrap" confines each to
    # one proposal's folder; "process" only isolates crashes (machines without bubblewrap).
    sandbox: str = "bwrap"
    reader_memory_bytes: int = 3 * 1024 * MiB
    reader_timeout: float = 60.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)


def settings_from_env(data_root: str | Path | None = None) -> Settings:
    var_dir = _var_dir()
    root = Path(data_root or _env("DATA", str(var_dir / "data"))).resolve()
    secret = os.environ.get("BEAMDESK_SECRET_KEY") or _load_or_create_secret(var_dir / "secret_key")
    return Settings(
        data_root=root,
        database_url=_env("DATABASE_URL", f"sqlite:///{var_dir / 'beamdesk.db'}"),
        secret_key=secret,
        var_dir=var_dir,
        base_url=_env("BASE_URL", "http://127.0.0.1:8000"),
        embargo_years=int(_env("EMBARGO_YEARS", "3")),
        embargo_extension_years=int(_env("EMBARGO_EXTENSION_YEARS", "2")),
        max_read_bytes=int(_env("MAX_READ_BYTES", str(256 * MiB))),
        max_failed_logins=int(_env("MAX_FAILED_LOGINS", "5")),
        login_max_delay=float(_env("LOGIN_MAX_DELAY", "3")),
        login_failures_per_client=int(_env("LOGIN_FAILURES_PER_CLIENT", "10")),
        login_failure_window=int(_env("LOGIN_FAILURE_WINDOW", "900")),
        cookie_secure=_env("COOKIE_SECURE", "0") == "1",
        oidc_issuer=_env("OIDC_ISSUER", ""),
        oidc_client_id=_env("OIDC_CLIENT_ID", ""),
        oidc_client_secret=_env("OIDC_CLIENT_SECRET", ""),
        oidc_name=_env("OIDC_NAME", "Single sign-on"),
        dask_scheduler=_env("DASK_SCHEDULER", ""),
        dask_workers=int(_env("DASK_WORKERS", "2")),
        max_concurrent_jobs=int(_env("MAX_CONCURRENT_JOBS", "2")),
        sandbox=_env("SANDBOX", "bwrap"),
        reader_memory_bytes=int(_env("READER_MEMORY_BYTES", str(3 * 1024 * MiB))),
        reader_timeout=float(_env("READER_TIMEOUT", "60")),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return settings_from_env()
