"""The warehouse port: what the loader needs from an engine, as one small Protocol.

An engine is a dialect module (``duckdb.py``, ``postgres.py``) with a :class:`Dialect` that opens
:class:`Session` objects. Everything shared — the bookkeeping tables in ``_mainstem``, the
catalog as logical types, idempotent DDL text — lives in :mod:`.common`; a dialect adds its type
names, its catalog query and its bulk path. Adding ClickHouse or Snowflake is one more module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mainstem.warehouse.batch import Discard, TableLoad
from mainstem.warehouse.schema import Catalog, Step


@dataclass(frozen=True, slots=True)
class LoadRecord:
    """One row of the load history (``mainstem warehouse history``)."""

    load_id: str
    stream: str
    started_at: str
    finished_at: str
    first_seq: int
    last_seq: int
    events: int
    rows: int
    duplicates: int
    discards: int
    schema_changes: int
    status: str
    """``ok`` or ``failed``."""
    error: str = ""


class Session(Protocol):
    """One connection to the warehouse. Not thread-safe; closed by its user."""

    def bootstrap(self) -> None:
        """Create the ``_mainstem`` bookkeeping schema and tables if missing (idempotent)."""
        ...

    def position(self, stream: str) -> int:
        """The last event-store seq whose rows are committed for ``stream`` (0 when none)."""
        ...

    def catalog(self, schemas: Sequence[str]) -> tuple[set[str], Catalog]:
        """The schemas that exist, and the tables and columns of ``schemas`` as logical types.

        Columns of types the loader does not create are mapped to the nearest logical type,
        so a column an operator retyped (integer → float) is respected."""
        ...

    def apply(self, step: Step, load_id: str, at: str) -> None:
        """Run one DDL step and record it in ``_mainstem.schema_changes``, atomically where the
        engine has transactional DDL. Idempotent: a re-run after a crash changes nothing."""
        ...

    def existing_ids(self, schema: str, table: str, lowest: str, highest: str) -> set[str]:
        """Ids the table holds with ``received_at`` between ``lowest`` and ``highest``."""
        ...

    def begin(self) -> None: ...

    def insert(self, load: TableLoad) -> None:
        """Append ``load.rows`` with the engine's bulk path, inside the open transaction."""
        ...

    def upsert(self, load: TableLoad) -> None:
        """Update the rows whose ``id`` exists (only ``load.columns``), insert the others."""
        ...

    def insert_discards(self, load_id: str, at: str, discards: Sequence[Discard]) -> None: ...

    def finish(self, stream: str, seq: int | None, record: LoadRecord) -> None:
        """Record the load and, when ``seq`` is given, move the stream's position to it."""
        ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def query(
        self, sql: str, params: Sequence[Any] = ()
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run any SQL; the column names and rows of its result (empty for statements)."""
        ...

    def close(self) -> None:
        """Idempotent; an open transaction is rolled back."""
        ...


class Dialect(Protocol):
    name: str
    allow_nul: bool
    """Whether text columns can hold U+0000 (PostgreSQL's cannot: such values are discarded)."""

    def connect(self, *, read_only: bool = False) -> Session:
        """Open a session. Raises :class:`mainstem.errors.RetryLater` when the warehouse is busy
        or unreachable, with a message that names it and says what to do."""
        ...

    def describe(self) -> str:
        """Where the warehouse is, without credentials."""
        ...
