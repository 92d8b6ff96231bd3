"""The configured warehouse: which engine the settings choose, the loader thread the server runs,
and the read-side functions behind ``mainstem warehouse …`` and ``mainstem query``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mainstem.errors import ConfigError, RetryLater
from mainstem.settings import Settings
from mainstem.storage import PipelineStore
from mainstem.warehouse.dialects import Dialect, Session
from mainstem.warehouse.dialects.common import META
from mainstem.warehouse.loader import Loader

log = logging.getLogger(__name__)

FILE_NAME = "warehouse.duckdb"


def dialect_for(setting: str, data_dir: Path) -> Dialect | None:
    """The engine of the ``warehouse`` setting; ``None`` when it is ``none``."""
    if setting == "none":
        return None
    if setting == "duckdb":
        from mainstem.warehouse.dialects.duckdb import DuckDB

        return DuckDB(data_dir / FILE_NAME)
    if setting.startswith(("postgresql://", "postgres://")):
        from mainstem.warehouse.dialects.postgres import Postgres

        return Postgres(setting)
    raise ConfigError(
        "settings.warehouse: expected duckdb, none or a postgresql:// URL — fix the setting"
    )


def configured(settings: Settings) -> Dialect | None:
    return dialect_for(settings.warehouse.reveal(), Path(settings.data_dir))


def loader_for(settings: Settings, store: PipelineStore) -> Loader | None:
    dialect = configured(settings)
    if dialect is None:
        return None
    return Loader(store, dialect, batch_events=settings.warehouse_batch_events)


def start(
    settings: Settings, store: PipelineStore, stop: threading.Event
) -> threading.Thread | None:
    """Run the loader on a daemon thread until ``stop`` is set (``None``: no warehouse)."""
    return start_loader(
        configured(settings),
        store,
        stop,
        interval=settings.warehouse_interval,
        batch_events=settings.warehouse_batch_events,
    )


def start_loader(
    dialect: Dialect | None,
    store: PipelineStore,
    stop: threading.Event,
    *,
    interval: float,
    batch_events: int,
) -> threading.Thread | None:
    """:func:`start` from plain values (the processor process gets no :class:`Settings`)."""
    if dialect is None:
        return None
    loader = Loader(store, dialect, batch_events=batch_events)

    def run() -> None:
        log.info("warehouse loader started: %s", dialect.describe())
        loader.run(stop, interval=interval)
        log.info("warehouse loader stopped")

    thread = threading.Thread(target=run, name="warehouse-loader", daemon=True)
    thread.start()
    return thread


@contextmanager
def reading(dialect: Dialect, *, wait: float = 10.0) -> Iterator[Session]:
    """A read-only session, waiting up to ``wait`` seconds for a running load to release the
    (DuckDB) file.

    Raises:
        RetryLater: the warehouse stayed busy or is unreachable.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            session = dialect.connect(read_only=True)
            break
        except RetryLater:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
    try:
        yield session
    finally:
        session.close()


def query(
    dialect: Dialect, sql: str, *, wait: float = 10.0
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``sql`` on a :func:`reading` session."""
    with reading(dialect, wait=wait) as session:
        return session.query(sql)


def history(dialect: Dialect, limit: int = 20) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The newest loads first."""
    return query(
        dialect,
        "SELECT load_id, stream, started_at, finished_at, first_seq, last_seq, events, "
        "row_count, duplicates, discards, schema_changes, status, error "
        f"FROM {META}.loads ORDER BY started_at DESC LIMIT {int(limit)}",
    )


def _columns_sql(schema: str | None) -> str:
    """The catalog query behind :func:`columns` (one engine's own tables only)."""
    where = f"table_schema NOT IN ('{META}', 'information_schema', 'pg_catalog', 'pg_toast')"
    if schema is not None:
        where += " AND table_schema = '" + schema.replace("'", "''") + "'"
    return (
        "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
        f"WHERE {where} AND table_catalog = current_database() "
        "ORDER BY table_schema, table_name, ordinal_position"
    )


Columns = list[tuple[str, str, str, str]]
Changes = tuple[list[str], list[tuple[Any, ...]]]


def columns(dialect: Dialect, schema: str | None = None) -> Columns:
    """(schema, table, column, type) of every loaded table, in column order."""
    return schema_of(dialect, schema, 0)[0]


def schema_of(
    dialect: Dialect, schema: str | None = None, limit: int = 20
) -> tuple[Columns, Changes]:
    """:func:`columns` and the ``limit`` newest schema changes, on one session (one wait for
    a running load to release the file, not one per query)."""
    with reading(dialect) as session:
        _, rows = session.query(_columns_sql(schema))
        changes = (
            session.query(
                "SELECT changed_at, load_id, schema_name, table_name, change, detail "
                f"FROM {META}.schema_changes ORDER BY changed_at DESC LIMIT {int(limit)}"
            )
            if limit
            else ([], [])
        )
    return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows], changes


def loads_json(dialect: Dialect, limit: int = 20) -> list[dict[str, Any]]:
    """:func:`history` as one object per load, for ``/api/v1/warehouse/loads``."""
    names, rows = history(dialect, limit)
    return [dict(zip(names, row, strict=True)) for row in rows]


def schema_json(dialect: Dialect, limit: int = 20) -> dict[str, Any]:
    """Every loaded table with its columns, and the newest schema changes, for
    ``/api/v1/warehouse/schema``."""
    found, (names, rows) = schema_of(dialect, None, limit)
    tables: dict[tuple[str, str], list[dict[str, str]]] = {}
    for schema, table, column, kind in found:
        tables.setdefault((schema, table), []).append({"name": column, "type": kind})
    return {
        "tables": [
            {"schema": schema, "table": table, "columns": listed}
            for (schema, table), listed in tables.items()
        ],
        "changes": [dict(zip(names, row, strict=True)) for row in rows],
    }
