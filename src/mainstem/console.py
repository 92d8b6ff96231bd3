"""What every ``mainstem`` command shares: the ``--config`` and ``--data-dir`` options, the
consoles, how a command finds its settings, and how it reports a library error."""

from __future__ import annotations

import dataclasses
import os
from typing import Annotated

import typer
from rich.console import Console

from mainstem import config
from mainstem.config import Workspace
from mainstem.errors import MainstemError
from mainstem.settings import Settings, resolve

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


def workspace_settings(
    config_path: str,
    data_dir: str | None,
    *,
    elsewhere: bool = False,
    hint: str = "--data-dir",
) -> tuple[Settings, Workspace | None]:
    """The workspace's settings, with ``data_dir`` when one is given, and the workspace. When
    the file does not load, the environment's settings and no workspace — if a data directory
    is named (``--data-dir`` or ``MAINSTEM_DATA_DIR``) or the caller has one ``elsewhere``
    (a database URL); otherwise the command fails, suggesting ``hint``."""
    workspace: Workspace | None
    try:
        workspace = config.load(config_path)
        settings = workspace.settings
    except MainstemError as exc:
        if data_dir is None and not elsewhere and not os.environ.get("MAINSTEM_DATA_DIR"):
            raise fail(f"{exc} (or pass {hint})") from exc
        workspace, settings = None, resolve(env=os.environ)
    if data_dir is not None:
        settings = dataclasses.replace(settings, data_dir=data_dir)
    return settings, workspace
