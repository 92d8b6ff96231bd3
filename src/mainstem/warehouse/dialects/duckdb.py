"""The embedded warehouse: a DuckDB file in the data directory.

DuckDB lets one process at a time open a file for writing, and none may read it meanwhile. The
loader therefore opens the file only for the length of one micro-batch, and ``mainstem query``
opens it read-only, retrying for a few seconds while a batch is loading (docs/warehouse.md has the
measurements). Bulk path: each column becomes an Arrow array (pyarrow converts a Python sequence
in C), the batch is registered with the connection and inserted with one ``INSERT … SELECT`` —
about 1.5x DuckDB's row appender here, which takes the values row by row.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa

from mainstem.errors import RetryLater
from mainstem.warehouse.batch import TableLoad
from mainstem.warehouse.columnar import arrow_table
from mainstem.warehouse.dialects.common import SqlSession, qualified, quote
from mainstem.warehouse.schema import AddColumns
from mainstem.warehouse.types import LogicalType

_LOGICAL: dict[str, LogicalType] = {
    "BOOLEAN": "boolean",
    "TINYINT": "integer",
    "SMALLINT": "integer",
    "INTEGER": "integer",
    "BIGINT": "integer",
    "HUGEINT": "integer",
    "UTINYINT": "integer",
    "USMALLINT": "integer",
    "UINTEGER": "integer",
    "UBIGINT": "integer",
    "FLOAT": "float",
    "DOUBLE": "float",
    "REAL": "float",
    "DATE": "timestamp",
}


_LOAD_THREADS = max(1, (os.cpu_count() or 2) - 1)
"""DuckDB's threads for a load: one core is left to the loader's thread that splits the next
batch meanwhile (on two cores, a load took about a fifth less time this way than with DuckDB on
both). Read-only sessions (`mainstem query`) keep DuckDB's default, every core."""


def _staged(
    columns: Sequence[str], types: Sequence[LogicalType], data: Sequence[Sequence[Any]]
) -> tuple[pa.Table, str]:
    """The columns as an Arrow table, and the select list that reads them back as the named,
    typed columns. A statement reads the table through DuckDB's replacement scan of the
    caller's local variable ``_mainstem_arrow`` — registering and unregistering a view per
    table took as long as a small table's insert."""
    batch = arrow_table(types, data)
    names = batch.column_names
    picks = ", ".join(
        f"{f'CAST({name} AS TIMESTAMP)' if type_ == 'timestamp' else name} AS {quote(column)}"
        for name, type_, column in zip(names, types, columns, strict=True)
    )
    return batch, picks


class DuckDBSession(SqlSession):
    PH: ClassVar[str] = "?"
    TYPES: ClassVar[dict[str, str]] = {
        "timestamp": "TIMESTAMP",
        "integer": "BIGINT",
        "float": "DOUBLE",
        "boolean": "BOOLEAN",
        "varchar": "VARCHAR",
    }

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self._conn: duckdb.DuckDBPyConnection | None = conn
        self._in_transaction = False

    @property
    def conn(self) -> duckdb.DuckDBPyConnection:
        if self._conn is None:
            raise RuntimeError("the warehouse session is closed")
        return self._conn

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(sql, list(params))

    def _fetch(
        self, sql: str, params: Sequence[Any] = ()
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        cursor = self.conn.execute(sql, list(params))
        if cursor.description is None:
            return [], []
        return [d[0] for d in cursor.description], cursor.fetchall()

    def _bulk(
        self,
        target: str,
        columns: Sequence[str],
        types: Sequence[LogicalType],
        data: Sequence[Sequence[Any]],
    ) -> None:
        if not data or not data[0]:
            return
        cols = ", ".join(quote(c) for c in columns)
        _mainstem_arrow, picks = _staged(columns, types, data)  # read by name: see _staged
        self.conn.execute(f"INSERT INTO {target} ({cols}) SELECT {picks} FROM _mainstem_arrow")

    def upsert(self, load: TableLoad) -> None:
        """One ``MERGE`` straight from the Arrow arrays (the shared upsert stages them in a
        temporary table and runs four statements more)."""
        if not load.data or not load.data[0]:
            return
        target = qualified(load.schema, load.table)
        names = [quote(c) for c in load.columns]
        sets = ", ".join(
            f"{n} = s.{n}" for c, n in zip(load.columns, names, strict=True) if c != "id"
        )
        _mainstem_arrow, picks = _staged(load.columns, load.types, load.data)  # see _staged
        self.conn.execute(
            f"MERGE INTO {target} AS t USING (SELECT {picks} FROM _mainstem_arrow) AS s "
            f"ON t.id = s.id WHEN MATCHED THEN UPDATE SET {sets} "
            f"WHEN NOT MATCHED THEN INSERT ({', '.join(names)}) "
            f"VALUES ({', '.join(f's.{n}' for n in names)})"
        )

    def _logical(self, db_type: str) -> LogicalType:
        base = db_type.upper().split("(")[0].strip()
        if base.startswith("TIMESTAMP"):
            return "timestamp"
        if base.startswith("DECIMAL"):
            return "float"
        return _LOGICAL.get(base, "varchar")

    def _add_columns(self, step: AddColumns) -> list[str]:
        # DuckDB takes one ADD COLUMN per ALTER TABLE.
        target = qualified(step.schema, step.table)
        return [
            f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS {quote(name)} {self.TYPES[kind]}"
            for name, kind in step.columns
        ]

    def begin(self) -> None:
        self.conn.execute("BEGIN TRANSACTION")
        self._in_transaction = True

    def commit(self) -> None:
        self.conn.execute("COMMIT")
        self._in_transaction = False

    def rollback(self) -> None:
        if self._in_transaction and self._conn is not None:
            self._in_transaction = False
            self._conn.execute("ROLLBACK")

    def close(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        conn.close()  # an open transaction is rolled back


class DuckDB:
    """The dialect: a DuckDB file, created on first use."""

    name = "duckdb"
    allow_nul = True

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout

    def describe(self) -> str:
        return f"duckdb:{self.path}"

    def connect(self, *, read_only: bool = False) -> DuckDBSession:
        if read_only and not self.path.exists():
            raise RetryLater(
                f"{self.path} does not exist yet — the warehouse is created by the first load "
                "(`mainstem warehouse sync --now`)"
            )
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                config: dict[str, str | bool | int | float | list[str]] = (
                    {} if read_only else {"threads": _LOAD_THREADS}
                )
                return DuckDBSession(
                    duckdb.connect(str(self.path), read_only=read_only, config=config)
                )
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    raise RetryLater(
                        f"{self.path} is in use by another process ({exc}) — try again when "
                        "the current load has finished, or stop the process holding it"
                    ) from exc
                time.sleep(0.05)
