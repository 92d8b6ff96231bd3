"""``mainstem destinations``, ``mainstem deliveries`` and ``mainstem replay``: parse, call
:mod:`.service`, format."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mainstem import config
from mainstem.api import parse_since
from mainstem.config import Workspace
from mainstem.console import ConfigOption, DataDirOption
from mainstem.console import err as _err
from mainstem.console import fail as _fail
from mainstem.console import out as _out
from mainstem.destinations import service
from mainstem.destinations.state import DeliveryState
from mainstem.errors import MainstemError
from mainstem.storage import PipelineStore
from mainstem.storage.postgres.delivery import PostgresDeliveryState
from mainstem.storage.postgres.pipeline import PostgresPipelineStore
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _workspace(config_path: str, data_dir: str | None) -> tuple[Workspace, Path]:
    try:
        workspace = config.load(config_path)
    except MainstemError as exc:
        raise _fail(exc) from exc
    return workspace, Path(data_dir or workspace.settings.data_dir)


@contextmanager
def _storage(
    workspace: Workspace, root: Path, *, writable_state: bool = False
) -> Iterator[tuple[PipelineStore | None, DeliveryState | None]]:
    """The event store and delivery state: the shared PostgreSQL when ``database_url`` is set,
    else the files in ``root`` (``None`` for each that does not exist yet)."""
    url = workspace.settings.database_url.reveal()
    store: PipelineStore | None
    state: DeliveryState | None
    if url:
        store = PostgresPipelineStore(url, readonly=True)
        state = PostgresDeliveryState(url)
    else:
        path = root / "pipeline.db"
        store = SqlitePipelineStore(path, readonly=True) if path.exists() else None
        state = service.open_state(root, readonly=not writable_state)
    try:
        yield store, state
    finally:
        for closable in (state, store):
            if closable is not None:
                closable.close()


def destinations_command(
    config_path: ConfigOption = "mainstem.yaml",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the destinations with their position, lag, totals and last error."""
    workspace, root = _workspace(config_path, data_dir)
    with _storage(workspace, root) as (store, state):
        rows = service.overview(workspace.destinations, state, store)
    if as_json:
        typer.echo(msgspec.json.encode(rows).decode())
        return
    table = Table(title="Destinations")
    columns = ("id", "type", "enabled", "delivered", "filtered", "dead", "retries", "lag")
    for column in (*columns, "last error"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["id"],
            row["type"],
            "yes" if row["enabled"] else "no",
            str(row["delivered"]),
            str(row["filtered"]),
            str(row["dead_letters"]),
            str(row["retries"]),
            str(row["lag"]),
            row["last_error"] or "-",
        )
    _out.print(table)


def deliveries_command(
    destination: Annotated[
        str | None, typer.Option("--destination", "-d", help="Only this destination id.")
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Only retried and dead-lettered batches.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many, newest first.")] = 50,
    config_path: ConfigOption = "mainstem.yaml",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show delivery attempts (the delivery log), newest first."""
    workspace, root = _workspace(config_path, data_dir)
    if destination is not None:
        try:
            service.find(workspace.destinations, destination)
        except MainstemError as exc:
            raise _fail(exc) from exc
    with _storage(workspace, root) as (_, state):
        attempts = state.attempts(destination, failed=failed, limit=limit) if state else []
    rows = [service.attempt_json(attempt) for attempt in attempts]
    if as_json:
        typer.echo(msgspec.json.encode(rows).decode())
        return
    table = Table(title="Deliveries")
    for column in ("at", "destination", "seq", "events", "attempt", "outcome", "status", "error"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["at"],
            row["destination"],
            f"{row['first_seq']}-{row['last_seq']}",
            str(row["events"]),
            str(row["attempt"]),
            row["outcome"],
            str(row["status"] if row["status"] is not None else "-"),
            row["error"] or "-",
        )
    _out.print(table)


def replay_command(
    destination: Annotated[str, typer.Option("--destination", "-d", help="Destination id.")],
    dead_letters: Annotated[
        bool, typer.Option("--dead-letters", help="Re-send the pending dead letters.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Re-send stored events received from this time or ago (24h)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="…and received before this time or ago.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be sent; send nothing.")
    ] = False,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            min=0.001,
            help="At most this many events per second (default: the destination's rate_limit).",
        ),
    ] = None,
    config_path: ConfigOption = "mainstem.yaml",
    data_dir: DataDirOption = None,
) -> None:
    """Send events to a destination again: its dead letters, or a time range of stored events
    (consent and filters apply; the integrations object does not)."""
    workspace, root = _workspace(config_path, data_dir)
    try:
        target = service.find(workspace.destinations, destination)
        start = parse_since(since)
        end = parse_since(until)
    except MainstemError as exc:
        raise _fail(exc) from exc
    columns = (
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with _storage(workspace, root, writable_state=True) as (store, state):
        if store is None or state is None:
            raise _fail(f"no events in {root} yet — start the server with `mainstem serve`")
        try:
            with Progress(*columns, console=_err, transient=True) as progress:
                task = progress.add_task("replay", total=None)
                result = service.replay(
                    target,
                    store,
                    state,
                    dead_letters=dead_letters,
                    since=start,
                    until=end,
                    dry_run=dry_run,
                    rate=rate,
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                )
        except MainstemError as exc:
            raise _fail(exc) from exc
    verb = "would send" if dry_run else "sent"
    typer.echo(
        f"{verb} {result.sent} event(s) to {target.id} in {result.requests} request(s); "
        f"{result.filtered} not sent"
    )
    for reason, count in result.reasons:
        typer.echo(f"  {count} × {reason}")
