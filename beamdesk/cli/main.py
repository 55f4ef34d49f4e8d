"""The ``beamdesk`` command: serve, demo, index, db, users, tokens, and the analysis tools."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from beamdesk.cli import jobs, xrf
from beamdesk.cli.output import console, error, fail, warn
from beamdesk.settings import (
    Settings,
    SettingsError,
    is_secret,
    load_settings,
    settings_table,
)

if TYPE_CHECKING:  # the base install has no SQLAlchemy: imported where used
    from sqlalchemy.orm import Session, sessionmaker

app = typer.Typer(
    help="BeamDesk: the remote office of a synchrotron facility.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="People and their roles.", no_args_is_help=True)
tokens_app = typer.Typer(help="Personal API tokens for scripts.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")


DataOption = Annotated[
    Path | None, typer.Option("--data", help="Data root (default: $BEAMDESK_DATA or ./var/data).")
]


def _settings(data: Path | None = None) -> Settings:
    """The validated settings; a bad value stops the command with one line per variable."""
    try:
        settings, warnings = load_settings(data)
    except SettingsError as problem:
        for line in problem.lines:
            error(line)
        raise typer.Exit(2) from None
    for line in warnings:
        warn(line)
    return settings


def _sessionmaker(settings: Settings) -> sessionmaker[Session]:
    from beamdesk.db import make_engine, make_sessionmaker

    return make_sessionmaker(make_engine(settings.database_url))


@db_app.command("upgrade")
def db_upgrade(data: DataOption = None) -> None:
    """Create or migrate the database schema to the newest version (a SQLite file is
    backed up next to itself first)."""
    from beamdesk.migrate import (
        SchemaError,
        backup_sqlite,
        check_upgradable,
        head_revision,
        pg_dump_hint,
        safe_url,
    )

    url = _settings(data).database_url
    head = head_revision()
    try:
        state = check_upgradable(url)
    except SchemaError as exc:
        fail(str(exc))
    if state.revision == head:
        console.print(
            f"database already at the newest schema ({head}): {safe_url(url)}", soft_wrap=True
        )
        return
    if state.empty:
        _run_upgrade(url, "creating the schema")
        console.print(
            f"database created at the newest schema ({head}): {safe_url(url)}", soft_wrap=True
        )
        return
    saved = None
    if state.is_sqlite:
        saved = backup_sqlite(state, head)
        console.print(
            f"backed up the database (revision {state.revision}) to {saved}", soft_wrap=True
        )
    else:
        console.print(
            f"back up PostgreSQL before upgrading if you have not: {pg_dump_hint(state, head)}",
            soft_wrap=True,
            markup=False,
        )
    after = f"; the database before it is in {saved}" if saved else ""
    _run_upgrade(url, f"upgrading from {state.revision} to {head}", after)
    console.print(
        f"database upgraded from {state.revision} to {head}: {safe_url(url)}", soft_wrap=True
    )


def _run_upgrade(url: str, what: str, after: str = "") -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from beamdesk.migrate import upgrade

    try:
        upgrade(url)
    except (SQLAlchemyError, OSError) as exc:  # the database refused: one line, its own words
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        fail(f"{what} failed: {reason}{after}")


def _require_schema(url: str) -> None:
    """Create an empty database's schema; refuse (one line) an outdated or broken one."""
    from beamdesk.migrate import SchemaError, ensure_schema, safe_url

    try:
        if ensure_schema(url):
            console.print(f"database created at the newest schema: {safe_url(url)}", soft_wrap=True)
    except SchemaError as exc:
        fail(str(exc))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.")] = 1,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            help="Comma-separated addresses of the reverse proxies whose X-Forwarded-For and "
            "X-Forwarded-Proto are trusted ('*': any).",
        ),
    ] = "127.0.0.1",
    root_path: Annotated[
        str, typer.Option(help="The path prefix the proxy serves the portal under (/beamdesk).")
    ] = "",
    data: DataOption = None,
) -> None:
    """Serve the portal, API, viewer and workbench (docs/deployment.md: behind nginx)."""
    import os

    import uvicorn

    from beamdesk.logs import logging_config

    settings = _settings(data)
    if data is not None:
        os.environ["BEAMDESK_DATA"] = str(settings.data_root)
    _require_schema(settings.database_url)  # only `db upgrade` changes an existing schema
    settings.data_root.mkdir(parents=True, exist_ok=True)
    if workers < 1:
        fail("--workers must be at least 1")
    if root_path and (not root_path.startswith("/") or root_path.endswith("/")):
        fail("--root-path starts with / and does not end with one, e.g. /beamdesk")
    console.print(
        f"BeamDesk on http://{host}:{port}{root_path}  (data: {settings.data_root}, "
        f"{workers} worker{'s' if workers > 1 else ''}, proxies trusted: {forwarded_allow_ips})",
        soft_wrap=True,
    )
    cluster = settings.jobs.dask_scheduler or f"{settings.jobs.dask_workers} local dask workers"
    if settings.jobs.jobs_in_server:
        console.print(f"analysis jobs on {cluster} (docs/jobs.md)")
    else:
        console.print(f"analysis jobs run by `beamdesk jobs run` on {cluster}")
    uvicorn.run(
        "beamdesk.web.asgi:app",
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        root_path=root_path,
        log_level="info",
        log_config=logging_config(settings.operations.log_format),  # beamdesk.* INFO too
    )


@app.command()
def hub(data: DataOption = None) -> None:
    """Run JupyterHub (with configurable-http-proxy) signing users in through the portal."""
    import os

    from beamdesk.jupyter.hub_config import hub_command
    from beamdesk.jupyter.layout import hub_layout

    settings = _settings(data)
    _require_schema(settings.database_url)  # the hub's sign-in reads the portal's tables
    argv, env, folder = hub_command(settings)
    if data is not None:
        env["BEAMDESK_DATA"] = str(settings.data_root)
    console.print(f"JupyterHub on {hub_layout(settings).url}  (state: {folder})")
    os.chdir(folder)
    # exec: the hub gets signals directly and stops its proxy and servers on Ctrl-C.
    os.execvpe(argv[0], argv, env)


@app.command()
def demo(data: DataOption = None) -> None:
    """Create a realistic demo facility: beamlines, people, proposals, NeXus data."""
    from beamdesk.demo import create_demo

    settings = _settings(data)
    _require_schema(settings.database_url)
    create_demo(settings, _sessionmaker(settings), console=console)


@app.command()
def index(
    data: DataOption = None,
    proposal: Annotated[str | None, typer.Option(help="Only this proposal number.")] = None,
) -> None:
    """Walk the data root and record every file in the catalogue (idempotent)."""
    from beamdesk.db import session_scope
    from beamdesk.portal.catalogue import index_data_root

    settings = _settings(data)
    with session_scope(_sessionmaker(settings)) as db:
        report = index_data_root(db, settings.data_root, only=proposal, console=console)
    console.print(report.summary())


@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[str, typer.Option(help="user, pi, reviewer, scientist or user_office.")],
    email: Annotated[str, typer.Option(help="E-mail address.")] = "",
    full_name: Annotated[str, typer.Option("--name", help="Full name.")] = "",
    beamline: Annotated[
        list[str] | None, typer.Option(help="Beamline of a scientist (repeatable).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a local account (prints a generated password unless --password-stdin)."""
    import secrets

    from sqlalchemy import select

    from beamdesk.db import session_scope
    from beamdesk.portal.auth import create_user
    from beamdesk.portal.models import Beamline, GlobalRole

    aliases = {
        "pi": "user",
        "principal_investigator": "user",
        "participant": "user",
        "beamline_scientist": "scientist",
        "useroffice": "user_office",
    }
    try:
        global_role = GlobalRole(aliases.get(role, role))
    except ValueError:
        fail(f"unknown role {role!r}; use user, pi, reviewer, scientist or user_office")
    password = sys.stdin.readline().rstrip("\n") if password_stdin else secrets.token_urlsafe(12)
    settings = _settings()
    try:
        with session_scope(_sessionmaker(settings)) as db:
            user = create_user(
                db, username, global_role, password=password, email=email, full_name=full_name
            )
            for name in beamline or []:
                bl = db.scalar(select(Beamline).where(Beamline.name == name))
                if bl is None:
                    fail(f"no beamline {name!r}")
                user.beamlines.append(bl)
    except ValueError as exc:
        fail(str(exc))
    console.print(f"created {username} ({global_role.value})")
    if not password_stdin:
        console.print(f"password (shown once): [bold]{password}[/bold]")


@tokens_app.command("create")
def tokens_create(
    username: str,
    expires: Annotated[int, typer.Option(help="Days until the token expires (0: never).")] = 90,
    name: Annotated[str, typer.Option(help="A label to recognise the token by.")] = "cli",
) -> None:
    """Create a personal API token and print it once."""
    from sqlalchemy import select

    from beamdesk.db import session_scope
    from beamdesk.portal.auth import create_api_token
    from beamdesk.portal.models import User

    settings = _settings()
    with session_scope(_sessionmaker(settings)) as db:
        user = db.scalar(select(User).where(User.username == username))
        if user is None:
            fail(f"no user {username!r}")
        new = create_api_token(db, user, name=name, expires_days=expires or None)
    # Only the token on stdout, so scripts can capture it.
    print(new.token)


@app.command("settings")
def settings_command(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="The README's table of every setting.")
    ] = False,
) -> None:
    """Show the settings in effect (secrets hidden), or document them all."""
    if markdown:
        print(settings_table(), end="")
        return
    settings = _settings()
    for name, value in sorted(settings.environment().items()):
        shown = "(set)" if value and is_secret(name) else value
        console.print(f"{name}={shown}", soft_wrap=True, markup=False, highlight=False)


@app.command("backup")
def backup_command(
    out_dir: Annotated[Path, typer.Argument(help="New, empty folder for the backup.")],
    data: DataOption = None,
) -> None:
    """Back up the database and the processed results (not raw data; see docs/security.md)."""
    from beamdesk.backup import BackupError, backup

    try:
        summary = backup(_settings(data), out_dir, report=console.print)
    except BackupError as exc:
        fail(str(exc))
    console.print(
        f"backup in {out_dir}: {summary.rows} rows in {summary.tables} tables, "
        f"{summary.files} files"
    )


@app.command("restore")
def restore_command(
    in_dir: Annotated[Path, typer.Argument(help="Folder written by 'beamdesk backup'.")],
    data: DataOption = None,
) -> None:
    """Restore a backup into an empty instance (run 'beamdesk db upgrade' first)."""
    from beamdesk.backup import BackupError, restore

    try:
        summary = restore(_settings(data), in_dir, report=console.print)
    except BackupError as exc:
        fail(str(exc))
    console.print(f"restored {summary.rows} rows and {summary.files} files, checksums verified")


@app.command("openapi")
def openapi_command() -> None:
    """Print the API's OpenAPI document (JSON): frontend/scripts/gen-api.mjs reads it."""
    import json

    from beamdesk.web.app import create_app

    print(json.dumps(create_app(_settings()).openapi(), indent=1, ensure_ascii=False))


app.add_typer(xrf.app, name="xrf")
app.add_typer(jobs.app, name="jobs")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
