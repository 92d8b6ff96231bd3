"""PostgreSQL as a server warehouse (psycopg 3). Bulk path: ``COPY ... FROM STDIN``.

Every table gets an index on ``received_at`` (Segment's sort key, and the window of the loader's
duplicate check); ``users`` and ``accounts`` one on ``id`` for the upsert. A transaction-level
advisory lock keeps two loaders from committing the same batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv

from mainstem.errors import RetryLater
from mainstem.warehouse.columnar import arrow_table
from mainstem.warehouse.dialects.common import SqlSession, qualified, quote
from mainstem.warehouse.naming import fit_length
from mainstem.warehouse.schema import CreateTable, Step
from mainstem.warehouse.types import LogicalType

_LOCK = 0x6D61696E  # "main": one loader transaction at a time per warehouse database

_LOGICAL: dict[str, LogicalType] = {
    "boolean": "boolean",
    "smallint": "integer",
    "integer": "integer",
    "bigint": "integer",
    "real": "float",
    "double precision": "float",
    "numeric": "float",
    "date": "timestamp",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamp",
}


def _csv(types: Sequence[LogicalType], data: Sequence[Sequence[Any]]) -> bytes:
    """Columns (Arrow arrays, from the columnar path, or Python sequences) as the CSV ``COPY``
    reads, written by Arrow in C++: text always quoted, so an empty string stays one and an
    empty field is NULL."""
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(arrow_table(types, data), sink, pa_csv.WriteOptions(include_header=False))
    return bytes(sink.getvalue())


class PostgresSession(SqlSession):
    PH: ClassVar[str] = "%s"
    SCHEMAS_SQL: ClassVar[str] = "SELECT nspname FROM pg_catalog.pg_namespace"
    TYPES: ClassVar[dict[str, str]] = {
        "timestamp": "timestamp",
        "integer": "bigint",
        "float": "double precision",
        "boolean": "boolean",
        "varchar": "text",
    }

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn: psycopg.Connection[Any] | None = conn
        self._in_transaction = False

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise RuntimeError("the warehouse session is closed")
        return self._conn

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(sql.encode(), list(params) or None)

    def _fetch(
        self, sql: str, params: Sequence[Any] = ()
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        cursor = self.conn.execute(sql.encode(), list(params) or None)
        if cursor.description is None:
            return [], []
        return [d.name for d in cursor.description], cursor.fetchall()

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
        if any(isinstance(values, pa.Array) for values in data):
            text = _csv(types, data)
            with (
                self.conn.cursor() as cursor,
                cursor.copy(f"COPY {target} ({cols}) FROM STDIN (FORMAT csv)".encode()) as copy,
            ):
                copy.write(text)
            return
        with (
            self.conn.cursor() as cursor,
            cursor.copy(f"COPY {target} ({cols}) FROM STDIN".encode()) as copy,
        ):
            for row in zip(*data, strict=True):
                copy.write_row(row)

    def _logical(self, db_type: str) -> LogicalType:
        return _LOGICAL.get(db_type.lower(), "varchar")

    def _columns_query(self, schemas: Sequence[str]) -> tuple[str, Sequence[Any]]:
        """From ``pg_catalog``: the same answer as ``information_schema``, whose views cost
        several milliseconds a load here."""
        return (
            "SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, NULL) "
            "FROM pg_catalog.pg_attribute a "
            "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
            "AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY n.nspname, c.relname, a.attnum",
            (list(schemas),),
        )

    def _ddl(self, step: Step) -> list[str]:
        statements = super()._ddl(step)
        if isinstance(step, CreateTable):
            target = qualified(step.schema, step.table)
            index = quote(fit_length(f"{step.table}_received_at"))
            statements.append(f"CREATE INDEX IF NOT EXISTS {index} ON {target} (received_at)")
            if step.table in ("users", "accounts"):
                index = quote(fit_length(f"{step.table}_id"))
                statements.append(f"CREATE INDEX IF NOT EXISTS {index} ON {target} (id)")
        return statements

    def begin(self) -> None:
        self.conn.execute(b"BEGIN")
        self._in_transaction = True
        self.conn.execute(b"SELECT pg_advisory_xact_lock(%s)", [_LOCK])

    def commit(self) -> None:
        self.conn.execute(b"COMMIT")
        self._in_transaction = False

    def rollback(self) -> None:
        if self._in_transaction and self._conn is not None:
            self._in_transaction = False
            if not self._conn.closed:
                self._conn.execute(b"ROLLBACK")

    def close(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        conn.close()  # the server rolls back an open transaction


class Postgres:
    """The dialect: a database on a PostgreSQL server, from a ``postgresql://`` URL."""

    name = "postgres"
    allow_nul = False

    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        self.url = url
        self.connect_timeout = connect_timeout

    def describe(self) -> str:
        info = psycopg.conninfo.conninfo_to_dict(self.url)
        host = info.get("host", "localhost")
        port = info.get("port", 5432)
        return f"postgresql://{host}:{port}/{info.get('dbname', '')}"

    def connect(self, *, read_only: bool = False) -> PostgresSession:
        try:
            conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout))
            )
        except psycopg.OperationalError as exc:
            raise RetryLater(
                f"cannot connect to the warehouse at {self.describe()}: {exc} — check that the "
                "server is running and the `warehouse` setting's URL"
            ) from exc
        if read_only:
            conn.execute(b"SET default_transaction_read_only = on")
        return PostgresSession(conn)
