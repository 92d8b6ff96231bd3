"""What every ``mainstem`` command shares: the ``--config`` and ``--data-dir`` options, the
consoles, and how a command reports a library error."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

ConfigOption = Annotated[
    str, typer.Option("--config", "-c", envvar="MAINSTEM_CONFIG", help="Workspace file.")
]
DataDirOption = Annotated[
    str | None,
    typer.Option("--data-dir", help="Data directory (default: the workspace's data_dir setting)."),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        "--database",
        envvar="MAINSTEM_DATABASE_URL",
        help="PostgreSQL URL (default: the workspace's database_url setting).",
    ),
]
out = Console()
err = Console(stderr=True)


def fail(message: object) -> typer.Exit:
    """Report an error on stderr; the caller raises the returned exit (status 1)."""
    err.print(f"[red]Error:[/red] {message}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code=1)
