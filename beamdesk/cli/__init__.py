"""The ``beamdesk`` command: one Typer app (``main``) with a module per group of commands.

``main`` holds the operator's commands (serve, db, users, demo …), ``xrf`` the analysis
commands and ``jobs`` the operator's view of analysis jobs; ``output`` is how they all print.
"""

from beamdesk.cli.main import app, main

__all__ = ["app", "main"]
