"""``mainstem suppress``, ``unsuppress`` and ``suppressions``: parse, call
:mod:`mainstem.suppression` and the event store, format."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import msgspec
import psycopg
import typer

from mainstem import suppression, timestamps
from mainstem.console import ConfigOption, DatabaseOption, DataDirOption, workspace_settings
from mainstem.console import fail as _fail
from mainstem.errors import MainstemError
from mainstem.storage import PipelineStore
from mainstem.storage.postgres.pipeline import PostgresPipelineStore
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore

UserIds = Annotated[
    list[str], typer.Argument(metavar="USER_ID...", help="userIds, as the messages carry them.")
]


def _open(
    config_path: str, data_dir: str | None, database_url: str | None, *, writable: bool
) -> PipelineStore:
    """The event store of the workspace: PostgreSQL when a URL is set, else ``pipeline.db`` in
    the data directory."""
    settings, _ = workspace_settings(
        config_path, data_dir, elsewhere=bool(database_url), hint="--data-dir or --database-url"
    )
    url = database_url or settings.database_url.reveal()
    if url:
        try:
            return PostgresPipelineStore(url, readonly=not writable)
        except MainstemError as exc:
            raise _fail(str(exc)) from exc
        except psycopg.Error as exc:
            raise _fail(f"cannot open the event store in PostgreSQL: {exc}") from exc
    root = Path(settings.data_dir)
    if not root.is_dir():
        raise _fail(f"no data directory {root} — pass --data-dir, or start `mainstem serve` once")
    path = root / "pipeline.db"
    if writable:
        # not derived from the event log, unlike the rest of pipeline.db: make it durable
        return SqlitePipelineStore(path, fsync=True)
    if not path.exists():
        raise _fail(f"no event store in {root} yet — start the server with `mainstem serve`")
    return SqlitePipelineStore(path, readonly=True)


def _regulate(
    kind: str, user_ids: list[str], config_path: str, data_dir: str | None, url: str | None
) -> None:
    try:
        regulation = suppression.parse(
            {"regulationType": kind, "subjectType": "USER_ID", "subjectIds": user_ids},
            now=timestamps.now_us(),
        )
    except MainstemError as exc:
        raise _fail(exc.message) from exc
    store = _open(config_path, data_dir, url, writable=True)
    try:
        store.regulate(regulation)
    except (MainstemError, psycopg.Error) as exc:
        raise _fail(f"could not store the regulation: {exc}") from exc
    finally:
        store.close()
    done = "Suppressed" if kind == "SUPPRESS_ONLY" else "Unsuppressed"
    count = len(regulation.subject_ids)
    typer.echo(
        f"{done} {count} user id{'s' if count != 1 else ''} (regulation {regulation.id}); "
        "the processor applies it within about a second."
    )


def suppress_command(
    user_ids: UserIds,
    config_path: ConfigOption = "mainstem.yaml",
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Stop storing (and forwarding) messages with these userIds, from now on (SUPPRESS_ONLY);
    what is stored already stays."""
    _regulate("SUPPRESS_ONLY", user_ids, config_path, data_dir, database_url)


def unsuppress_command(
    user_ids: UserIds,
    config_path: ConfigOption = "mainstem.yaml",
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Store these userIds' messages again, from now on (UNSUPPRESS); what was sent meanwhile
    stays dropped."""
    _regulate("UNSUPPRESS", user_ids, config_path, data_dir, database_url)


def suppressions_command(
    config_path: ConfigOption = "mainstem.yaml",
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object, as GET /api/v1/suppressions.")
    ] = False,
) -> None:
    """List the suppressed userIds, one per line, in sorted order."""
    store = _open(config_path, data_dir, database_url, writable=False)
    try:
        ids = sorted(store.suppressed())
    finally:
        store.close()
    if as_json:
        body = {"suppressed": [{"subjectType": "USER_ID", "subjectIds": ids}] if ids else []}
        sys.stdout.write(msgspec.json.encode(body).decode() + "\n")
        return
    for user_id in ids:
        typer.echo(user_id)
