"""What every ``beamdesk`` command prints: results on stdout, one red line per error on stderr.

Bad input never produces a traceback: the command says what is wrong and exits with code 2.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err = Console(stderr=True)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)


def error(message: str) -> None:
    # soft_wrap: one line however narrow the terminal; escape: messages quote file content
    # such as "[attenuators]", which is not rich markup.
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str) -> NoReturn:
    error(message)
    raise typer.Exit(2)
