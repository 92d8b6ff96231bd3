"""The ``mainstem`` command. Each command parses its input, calls one library function and
formats the answer; library errors are printed here, once, with exit status 1."""

from __future__ import annotations

import inspect
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.table import Table

from mainstem import __version__, config, listing, timestamps
from mainstem.api import parse_since
from mainstem.console import ConfigOption, DatabaseOption, DataDirOption
from mainstem.console import err as _err
from mainstem.console import fail as _fail
from mainstem.console import out as _out
from mainstem.errors import MainstemError
from mainstem.settings import SETTINGS
from mainstem.storage import EventQuery, RejectionQuery
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore

DEFAULT_CONFIG = "mainstem.yaml"

app = typer.Typer(
    help="Mainstem: a self-hostable CDP that speaks Segment's Tracking API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check the workspace file.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@app.command()
def version() -> None:
    """Print the Mainstem version."""
    typer.echo(__version__)


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the workspace file.")] = Path(
        DEFAULT_CONFIG
    ),
    source: Annotated[str, typer.Option(help="Id of the first source.")] = "web",
    name: Annotated[str, typer.Option(help="Display name of the first source.")] = "Website",
    data_dir: Annotated[str, typer.Option(help="data_dir setting to write.")] = ".mainstem",
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a starter workspace with a random write key and admin token."""
    if path.exists() and not force:
        raise _fail(f"{path} already exists — pass --force to overwrite it")
    path.write_text(
        config.starter(source_id=source, source_name=name, data_dir=data_dir), encoding="utf-8"
    )
    workspace = config.load(path)
    _err.print(f"Wrote {path}. Start the server with: mainstem serve --config {path}")
    _err.print(f"Write key ({source}): {workspace.sources[0].write_key.reveal()}")


@config_app.command("check")
def config_check(config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Validate the workspace file and list its sources."""
    try:
        workspace = config.load(config_path)
    except MainstemError as exc:
        raise _fail(exc) from exc
    table = Table(title=f"{config_path}: OK")
    for column in ("source", "name", "enabled", "write key"):
        table.add_column(column)
    for item in workspace.sources:
        key = item.write_key.reveal()
        table.add_row(item.id, item.name, "yes" if item.enabled else "no", key[:4] + "…")
    _out.print(table)


def _store(config_path: str, data_dir: str | None) -> SqlitePipelineStore:
    if data_dir is None:
        try:
            data_dir = config.load(config_path).settings.data_dir
        except MainstemError as exc:
            if os.environ.get("MAINSTEM_DATA_DIR"):
                data_dir = os.environ["MAINSTEM_DATA_DIR"]
            else:
                raise _fail(f"{exc} (or pass --data-dir)") from exc
    path = Path(data_dir) / "pipeline.db"
    if not path.exists():
        raise _fail(f"no events in {data_dir} yet — start the server with `mainstem serve`")
    return SqlitePipelineStore(path, readonly=True)


def _follow(
    fetch: Callable[[int | None], list[Any]],
    follow: bool,
    limit: int,
    emit: Callable[[list[Any]], None],
) -> None:
    rows = fetch(None)
    rows.reverse()  # newest-first page, shown oldest first
    emit(rows)
    last = rows[-1].seq if rows else 0
    while follow:
        try:
            time.sleep(0.5)
            fresh = fetch(last)
        except KeyboardInterrupt:
            return
        if fresh:
            emit(fresh)
            last = fresh[-1].seq


@app.command()
def events(
    config_path: ConfigOption = DEFAULT_CONFIG,
    data_dir: DataDirOption = None,
    source: Annotated[str | None, typer.Option(help="Only this source id.")] = None,
    type: Annotated[str | None, typer.Option(help="track, identify, page, …")] = None,
    event: Annotated[str | None, typer.Option(help="Track event name.")] = None,
    user_id: Annotated[str | None, typer.Option(help="Only events with this userId.")] = None,
    anonymous_id: Annotated[
        str | None, typer.Option(help="Only events with this anonymousId.")
    ] = None,
    message_id: Annotated[
        str | None, typer.Option(help="Only the event with this messageId.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="ISO time or look-back (15m, 7d).")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=1000, help="How many rows to show (1-1000).")
    ] = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events (live tail).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show stored events (newest last), or tail them with --follow."""
    store = _store(config_path, data_dir)
    try:
        since_us = parse_since(since)
    except MainstemError as exc:
        raise _fail(exc) from exc

    def fetch(after: int | None) -> list[Any]:
        return store.events(
            EventQuery(
                source=source,
                type=type,
                event=event,
                user_id=user_id,
                anonymous_id=anonymous_id,
                message_id=message_id,
                since=since_us,
                after=after,
                limit=limit,
            )
        )

    def emit(rows: list[Any]) -> None:
        if as_json:
            for row in rows:
                sys.stdout.write(_json_line(listing.event_json(row)))
            sys.stdout.flush()
            return
        table = Table(show_header=not follow or not emitted, box=None)
        for column in (
            "seq",
            "received",
            "source",
            "type",
            "event / name",
            "userId",
            "anonymousId",
            "messageId",
        ):
            table.add_column(column, overflow="fold")
        for row in rows:
            msg = msgspec.json.decode(row.body)
            table.add_row(
                str(row.seq),
                timestamps.format_us(row.received_at),
                row.source_id,
                msg["type"],
                str(msg.get("event") or msg.get("name") or ""),
                str(msg.get("userId", "")),
                str(msg.get("anonymousId", "")),
                msg["messageId"],
            )
        if rows or not follow:
            _out.print(table)
        emitted.append(len(rows))

    emitted: list[int] = []
    try:
        _follow(fetch, follow, limit, emit)
    finally:
        store.close()


@app.command()
def rejections(
    config_path: ConfigOption = DEFAULT_CONFIG,
    data_dir: DataDirOption = None,
    source: Annotated[str | None, typer.Option(help="Only this source id.")] = None,
    code: Annotated[str | None, typer.Option(help="Discard code, e.g. no_user_anon_id.")] = None,
    since: Annotated[str | None, typer.Option(help="ISO time or look-back.")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=1000, help="How many rows to show (1-1000).")
    ] = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new rejections.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show messages that were rejected, with Segment's discard code and the reason."""
    store = _store(config_path, data_dir)
    try:
        since_us = parse_since(since)
    except MainstemError as exc:
        raise _fail(exc) from exc

    def fetch(after: int | None) -> list[Any]:
        return store.rejections(
            RejectionQuery(source=source, code=code, since=since_us, after=after, limit=limit)
        )

    def emit(rows: list[Any]) -> None:
        if as_json:
            for row in rows:
                sys.stdout.write(_json_line(listing.rejection_json(row)))
            sys.stdout.flush()
            return
        table = Table(box=None)
        for column in ("seq", "received", "source", "code", "reason"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(
                str(row.seq),
                timestamps.format_us(row.received_at),
                row.source_id,
                row.code,
                row.reason,
            )
        if rows or not follow:
            _out.print(table)

    try:
        _follow(fetch, follow, limit, emit)
    finally:
        store.close()


def _json_line(value: Any) -> str:
    return msgspec.json.encode(value).decode() + "\n"


def _serve(config_path: str, **flags: Any) -> None:
    from mainstem.server import serve

    try:
        workspace = config.load(config_path, flags=flags)
    except MainstemError as exc:
        raise _fail(exc) from exc
    serve(workspace)


def _serve_signature() -> inspect.Signature:
    """``serve``'s flags come from the settings table, so a new setting is a new flag."""
    params = [
        inspect.Parameter(
            "config_path",
            inspect.Parameter.KEYWORD_ONLY,
            default=DEFAULT_CONFIG,
            annotation=ConfigOption,
        )
    ]
    for setting in SETTINGS:
        option = typer.Option(
            setting.flag,
            *setting.aliases,
            metavar=setting.metavar,
            show_default=False,
            help=f"{setting.help} (env {setting.env}, default {setting.default_text})",
        )
        params.append(
            inspect.Parameter(
                setting.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[str | None, option],
            )
        )
    return inspect.Signature(params)


def serve_command(**kwargs: Any) -> None:
    """Run the gateway, the processor and the admin API on one machine."""
    _serve(**kwargs)


serve_command.__signature__ = _serve_signature()  # type: ignore[attr-defined]
serve_command.__annotations__ = {
    p.name: p.annotation for p in _serve_signature().parameters.values()
}
app.command("serve")(serve_command)


@app.command()
def status(
    config_path: ConfigOption = DEFAULT_CONFIG,
    database_url: DatabaseOption = None,
) -> None:
    """Show a PostgreSQL deployment: log partitions, leases, lag, destination queues, workers,
    retention, sizes."""
    from mainstem.storage.postgres.status import status as read_status

    if not database_url:
        try:
            database_url = config.load(config_path).settings.database_url.reveal()
        except MainstemError as exc:
            raise _fail(f"{exc} (or pass --database-url)") from exc
    if not database_url:
        raise _fail(
            "status reads a PostgreSQL deployment — set database_url or pass --database-url "
            "(with SQLite, /health shows the lag)"
        )
    try:
        report = read_status(database_url)
    except MainstemError as exc:
        raise _fail(exc) from exc
    except Exception as exc:  # psycopg's errors, at the edge
        raise _fail(f"cannot read the status from PostgreSQL: {exc}") from exc
    table = Table(title="Log partitions")
    for column in ("partition", "last seq", "processed", "lag", "gateway", "worker"):
        table.add_column(column)
    for item in report.partitions:
        table.add_row(
            item.partition,
            str(item.last_seq),
            str(item.offset),
            str(item.lag),
            item.gateway or "-",
            item.worker or "-",
        )
    _out.print(table)
    if report.destinations:
        queues = Table(title="Destinations")
        for column in ("destination", "cursor", "queued", "dead letters", "worker"):
            queues.add_column(column)
        for queue in report.destinations:
            queues.add_row(
                queue.destination,
                str(queue.cursor),
                str(queue.queued),
                str(queue.dead_letters),
                queue.worker or "-",
            )
        _out.print(queues)
    workers = Table(title="Workers")
    workers.add_column("owner")
    workers.add_column("last heartbeat")
    for owner, age in report.workers:
        workers.add_row(owner, f"{age:.1f}s ago")
    _out.print(workers)
    retention = Table(title="Log tables (retention drops whole days)")
    retention.add_column("table")
    retention.add_column("rows (estimate)")
    for name, rows in report.log_tables:
        retention.add_row(name, str(rows))
    _out.print(retention)
    total_lag = sum(item.lag for item in report.partitions)
    size = sum(report.sizes.values())
    _out.print(
        f"lag {total_lag} requests · dedupe memory {report.dedupe_ids} ids · "
        f"{size / 1e6:.1f} MB on disk"
    )


def main() -> None:
    app(prog_name="mainstem")


from mainstem.warehouse.cli import query_command, warehouse_app  # noqa: E402

app.add_typer(warehouse_app, name="warehouse")
app.command("query")(query_command)

from mainstem.plans.cli import lint_command, plan_app, violations_command  # noqa: E402

app.add_typer(plan_app, name="plan")
app.command("violations")(violations_command)
app.command("lint")(lint_command)

from mainstem.identity.cli import profile_app  # noqa: E402

app.add_typer(profile_app, name="profile")

from mainstem.destinations.cli import (  # noqa: E402
    deliveries_command,
    destinations_command,
    replay_command,
)

app.command("destinations")(destinations_command)
app.command("deliveries")(deliveries_command)
app.command("replay")(replay_command)

from mainstem.suppression_cli import (  # noqa: E402
    suppress_command,
    suppressions_command,
    unsuppress_command,
)

app.command("suppress")(suppress_command)
app.command("unsuppress")(unsuppress_command)
app.command("suppressions")(suppressions_command)
