"""``mainstem warehouse …`` and ``mainstem query``: parse, call :mod:`.service`, format."""

from __future__ import annotations

import csv
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mainstem.api import parse_since
from mainstem.console import ConfigOption, DataDirOption, workspace_settings
from mainstem.console import err as _err
from mainstem.console import fail as _fail
from mainstem.console import out as _out
from mainstem.errors import MainstemError
from mainstem.settings import Settings
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore
from mainstem.warehouse import service
from mainstem.warehouse.dialects import Dialect
from mainstem.warehouse.loader import Loader

warehouse_app = typer.Typer(
    help="The warehouse: Segment's schema in DuckDB or PostgreSQL.", no_args_is_help=True
)


def _settings(config_path: str, data_dir: str | None) -> Settings:
    return workspace_settings(config_path, data_dir)[0]


def _dialect(settings: Settings) -> Dialect:
    dialect = service.configured(settings)
    if dialect is None:
        raise _fail("the warehouse is off (settings.warehouse: none) — set it to duckdb")
    return dialect


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)


def _print(columns: list[str], rows: list[tuple[Any, ...]], fmt: str, title: str = "") -> None:
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_cell(v) for v in row] for row in rows])
        return
    if fmt == "json":
        for row in rows:
            sys.stdout.write(
                msgspec.json.encode(
                    dict(zip(columns, row, strict=True)),
                    enc_hook=lambda v: _cell(v),
                ).decode()
                + "\n"
            )
        return
    table = Table(title=title or None)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    _out.print(table)


def _format(as_csv: bool, as_json: bool) -> str:
    if as_csv and as_json:
        raise _fail("choose one of --csv and --json")
    return "csv" if as_csv else "json" if as_json else "table"


def query_command(
    sql: Annotated[str, typer.Argument(help='The SQL to run, e.g. "SELECT * FROM web.tracks".')],
    config_path: ConfigOption = "mainstem.yaml",
    data_dir: DataDirOption = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header row.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per row.")] = False,
) -> None:
    """Run SQL against the warehouse (read-only) and print the result."""
    fmt = _format(as_csv, as_json)
    dialect = _dialect(_settings(config_path, data_dir))
    try:
        columns, rows = service.query(dialect, sql)
    except MainstemError as exc:
        raise _fail(exc) from exc
    except Exception as exc:  # the engine's own SQL error: show it as the engine says it
        raise _fail(f"{type(exc).__name__}: {exc}") from exc
    _print(columns, rows, fmt)


@warehouse_app.command("schema")
def schema_command(
    config_path: ConfigOption = "mainstem.yaml",
    data_dir: DataDirOption = None,
    source: Annotated[str | None, typer.Option(help="Only this schema (source).")] = None,
    changes: Annotated[int, typer.Option(min=0, help="How many recent schema changes.")] = 20,
) -> None:
    """Show the warehouse's tables, columns and types, and the recent schema changes."""
    dialect = _dialect(_settings(config_path, data_dir))
    try:
        found, (change_columns, change_rows) = service.schema_of(dialect, source, changes)
    except MainstemError as exc:
        raise _fail(exc) from exc
    _print(["schema", "table", "column", "type"], list(found), "table", "Columns")
    if changes:
        _print(change_columns, change_rows, "table", "Schema changes (newest first)")


@warehouse_app.command("history")
def history_command(
    config_path: ConfigOption = "mainstem.yaml",
    data_dir: DataDirOption = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="How many loads.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per load.")] = False,
) -> None:
    """Show the recent loads: events, rows, duplicates, discards, schema changes, errors."""
    dialect = _dialect(_settings(config_path, data_dir))
    try:
        columns, rows = service.history(dialect, limit)
    except MainstemError as exc:
        raise _fail(exc) from exc
    _print(columns, rows, "json" if as_json else "table", "Loads (newest first)")


def _loader(settings: Settings) -> Loader:
    path = Path(settings.data_dir) / "pipeline.db"
    if not path.exists():
        raise _fail(
            f"no events in {settings.data_dir} yet — start the server with `mainstem serve`"
        )
    store = SqlitePipelineStore(path, readonly=True)
    return Loader(store, _dialect(settings), batch_events=settings.warehouse_batch_events)


@warehouse_app.command("sync")
def sync_command(
    config_path: ConfigOption = "mainstem.yaml",
    data_dir: DataDirOption = None,
    now: Annotated[
        bool, typer.Option("--now", help="Load everything waiting once, then exit.")
    ] = False,
) -> None:
    """Load the events waiting in the event store; with --now once, else every interval."""
    settings = _settings(config_path, data_dir)
    loader = _loader(settings)
    try:
        if now:
            total = loader.sync()
            _err.print(f"Loaded {total} events into {loader.dialect.describe()}.")
            return
        import threading

        stop = threading.Event()
        try:
            loader.run(stop, interval=settings.warehouse_interval)
        except KeyboardInterrupt:
            stop.set()
    except MainstemError as exc:
        raise _fail(exc) from exc
    finally:
        loader.store.close()


@warehouse_app.command("backfill")
def backfill_command(
    config_path: ConfigOption = "mainstem.yaml",
    data_dir: DataDirOption = None,
    since: Annotated[
        str | None, typer.Option(help="Only events received since (ISO time or 7d).")
    ] = None,
) -> None:
    """Load the stored events again (all, or --since); rows already loaded are skipped."""
    settings = _settings(config_path, data_dir)
    try:
        since_us = parse_since(since)
    except MainstemError as exc:
        raise _fail(exc) from exc
    loader = _loader(settings)
    columns = (
        TextColumn("backfill"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=_err) as progress:
            task = progress.add_task("backfill", total=None)

            def report(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            total = loader.backfill(since_us, report)
    except MainstemError as exc:
        raise _fail(exc) from exc
    finally:
        loader.store.close()
    _err.print(f"Backfilled {total} events into {loader.dialect.describe()}.")
