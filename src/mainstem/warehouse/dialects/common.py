"""SQL shared by the dialects: bookkeeping tables, idempotent DDL, dedupe and upsert statements.

A dialect subclasses :class:`SqlSession` and supplies a placeholder, its type names, the catalog
type mapping, how to run a statement and its bulk path. Identifiers are always double-quoted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from mainstem.warehouse.batch import Discard, TableLoad
from mainstem.warehouse.dialects import LoadRecord
from mainstem.warehouse.schema import AddColumns, Catalog, CreateSchema, CreateTable, Step
from mainstem.warehouse.types import LogicalType

META = "_mainstem"


def _clean(text: str | None) -> str | None:
    """Text every engine can store: U+0000 (which PostgreSQL refuses) written as ``\\u0000``."""
    return text.replace("\x00", "\\u0000") if text is not None and "\x00" in text else text


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote(schema)}.{quote(table)}"


_META_TABLES: tuple[tuple[str, tuple[tuple[str, LogicalType], ...]], ...] = (
    ("positions", (("stream", "varchar"), ("seq", "integer"), ("updated_at", "timestamp"))),
    (
        "loads",
        (
            ("load_id", "varchar"),
            ("stream", "varchar"),
            ("started_at", "timestamp"),
            ("finished_at", "timestamp"),
            ("first_seq", "integer"),
            ("last_seq", "integer"),
            ("events", "integer"),
            ("row_count", "integer"),
            ("duplicates", "integer"),
            ("discards", "integer"),
            ("schema_changes", "integer"),
            ("status", "varchar"),
            ("error", "varchar"),
        ),
    ),
    (
        "schema_changes",
        (
            ("changed_at", "timestamp"),
            ("load_id", "varchar"),
            ("schema_name", "varchar"),
            ("table_name", "varchar"),
            ("change", "varchar"),
            ("detail", "varchar"),
        ),
    ),
    (
        "discards",
        (
            ("loaded_at", "timestamp"),
            ("load_id", "varchar"),
            ("schema_name", "varchar"),
            ("table_name", "varchar"),
            ("column_name", "varchar"),
            ("id", "varchar"),
            ("received_at", "timestamp"),
            ("reason", "varchar"),
            ("value", "varchar"),
            ("path", "varchar"),
        ),
    ),
)
_DISCARD_COLUMNS = [name for name, _ in _META_TABLES[3][1]]
_DISCARD_TYPES = [kind for _, kind in _META_TABLES[3][1]]


class SqlSession:
    """The shared half of a :class:`mainstem.warehouse.dialects.Session`."""

    PH: ClassVar[str] = "?"
    SCHEMAS_SQL: ClassVar[str] = "SELECT schema_name FROM information_schema.schemata"
    TYPES: ClassVar[Mapping[str, str]]
    """Logical type → the engine's column type."""

    # --- what a dialect provides ------------------------------------------------------------

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        raise NotImplementedError

    def _fetch(
        self, sql: str, params: Sequence[Any] = ()
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        raise NotImplementedError

    def _bulk(
        self,
        target: str,
        columns: Sequence[str],
        types: Sequence[LogicalType],
        data: Sequence[Sequence[Any]],
    ) -> None:
        """Append the values of ``data`` (one sequence per column, of the column's logical type;
        timestamps as text) to the already quoted ``target`` with the engine's bulk path."""
        raise NotImplementedError

    def _logical(self, db_type: str) -> LogicalType:
        raise NotImplementedError

    def _add_columns(self, step: AddColumns) -> list[str]:
        target = qualified(step.schema, step.table)
        return [
            f"ALTER TABLE {target} "
            + ", ".join(
                f"ADD COLUMN IF NOT EXISTS {quote(name)} {self.TYPES[kind]}"
                for name, kind in step.columns
            )
        ]

    def begin(self) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------------

    def query(
        self, sql: str, params: Sequence[Any] = ()
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        return self._fetch(sql, params)

    def bootstrap(self) -> None:
        statements = [f"CREATE SCHEMA IF NOT EXISTS {quote(META)}"]
        for table, columns in _META_TABLES:
            cols = ", ".join(f"{quote(name)} {self.TYPES[kind]}" for name, kind in columns)
            key = ", PRIMARY KEY (stream)" if table == "positions" else ""
            statements.append(f"CREATE TABLE IF NOT EXISTS {qualified(META, table)} ({cols}{key})")
        self.begin()
        try:
            for statement in statements:
                self._execute(statement)
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def position(self, stream: str) -> int:
        _, rows = self._fetch(
            f"SELECT seq FROM {qualified(META, 'positions')} WHERE stream = {self.PH}", (stream,)
        )
        return int(rows[0][0]) if rows else 0

    def catalog(self, schemas: Sequence[str]) -> tuple[set[str], Catalog]:
        _, found = self._fetch(self.SCHEMAS_SQL)
        existing = {str(row[0]) for row in found}
        catalog: Catalog = {}
        wanted = [schema for schema in schemas if schema in existing]
        if not wanted:
            return existing, catalog
        _, rows = self._fetch(*self._columns_query(wanted))
        for schema, table, column, db_type in rows:
            catalog.setdefault((schema, table), {})[column] = self._logical(str(db_type))
        return existing, catalog

    def _columns_query(self, schemas: Sequence[str]) -> tuple[str, Sequence[Any]]:
        """SQL and parameters for (schema, table, column, type) of every column of
        ``schemas``, in each table's column order."""
        marks = ", ".join(self.PH for _ in schemas)
        return (
            "SELECT table_schema, table_name, column_name, data_type "
            f"FROM information_schema.columns WHERE table_schema IN ({marks}) "
            "ORDER BY table_schema, table_name, ordinal_position",
            schemas,
        )

    def _ddl(self, step: Step) -> list[str]:
        if isinstance(step, CreateSchema):
            return [f"CREATE SCHEMA IF NOT EXISTS {quote(step.schema)}"]
        if isinstance(step, CreateTable):
            cols = ", ".join(f"{quote(name)} {self.TYPES[kind]}" for name, kind in step.columns)
            return [f"CREATE TABLE IF NOT EXISTS {qualified(step.schema, step.table)} ({cols})"]
        return self._add_columns(step)

    def apply(self, step: Step, load_id: str, at: str) -> None:
        change = {CreateSchema: "create_schema", CreateTable: "create_table"}.get(
            type(step), "add_columns"
        )
        table = "" if isinstance(step, CreateSchema) else step.table
        self.begin()
        try:
            for statement in self._ddl(step):
                self._execute(statement)
            marks = ", ".join([self.PH] * 6)
            self._execute(
                f"INSERT INTO {qualified(META, 'schema_changes')} VALUES ({marks})",
                (at, load_id, step.schema, table, change, step.describe()),
            )
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def existing_ids(self, schema: str, table: str, lowest: str, highest: str) -> set[str]:
        _, rows = self._fetch(
            f"SELECT id FROM {qualified(schema, table)} "
            f"WHERE received_at BETWEEN {self.PH} AND {self.PH}",
            (lowest, highest),
        )
        return {str(row[0]) for row in rows}

    def insert(self, load: TableLoad) -> None:
        self._bulk(qualified(load.schema, load.table), load.columns, load.types, load.data)

    def upsert(self, load: TableLoad) -> None:
        target = qualified(load.schema, load.table)
        stage = quote("_mainstem_stage")
        cols = ", ".join(quote(c) for c in load.columns)
        self._execute(f"DROP TABLE IF EXISTS {stage}")
        self._execute(f"CREATE TEMP TABLE {stage} AS SELECT {cols} FROM {target} LIMIT 0")
        self._bulk(stage, load.columns, load.types, load.data)
        sets = ", ".join(f"{quote(c)} = s.{quote(c)}" for c in load.columns if c != "id")
        if sets:
            self._execute(f"UPDATE {target} AS t SET {sets} FROM {stage} AS s WHERE t.id = s.id")
        self._execute(
            f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} AS s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE t.id = s.id)"
        )
        self._execute(f"DROP TABLE {stage}")

    def insert_discards(self, load_id: str, at: str, discards: Sequence[Discard]) -> None:
        if not discards:
            return
        rows = [
            (
                at,
                load_id,
                d.schema,
                d.table,
                d.column,
                _clean(d.message_id),
                d.received_at,
                d.reason,
                d.value,
                _clean(d.path),
            )
            for d in discards
        ]
        self._bulk(
            qualified(META, "discards"),
            _DISCARD_COLUMNS,
            _DISCARD_TYPES,
            list(zip(*rows, strict=True)),
        )

    def finish(self, stream: str, seq: int | None, record: LoadRecord) -> None:
        marks = ", ".join([self.PH] * 13)
        self._execute(
            f"INSERT INTO {qualified(META, 'loads')} VALUES ({marks})",
            (
                record.load_id,
                record.stream,
                record.started_at,
                record.finished_at,
                record.first_seq,
                record.last_seq,
                record.events,
                record.rows,
                record.duplicates,
                record.discards,
                record.schema_changes,
                record.status,
                record.error,
            ),
        )
        if seq is not None:
            self._execute(
                f"INSERT INTO {qualified(META, 'positions')} (stream, seq, updated_at) "
                f"VALUES ({self.PH}, {self.PH}, {self.PH}) ON CONFLICT (stream) DO UPDATE "
                "SET seq = excluded.seq, updated_at = excluded.updated_at",
                (stream, seq, record.finished_at),
            )
