"""Opening PostgreSQL the way Mainstem uses it: explicit transactions, named migrations applied
under an advisory lock, and connections that come back after the server restarts."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import LiteralString

import psycopg
from psycopg import sql
from psycopg.abc import Params

from mainstem.errors import ConfigError

Query = LiteralString | bytes | sql.SQL | sql.Composed

_LOST = (psycopg.OperationalError, psycopg.errors.IdleInTransactionSessionTimeout)
"""What a dropped session raises: the server restarted or went away, or it ended a transaction
left idle too long (an ``InternalError`` in psycopg's classes, but the session is just as gone)."""

# Every process may start at the same moment; the first one migrates while the others wait on
# this lock (per schema, so tests in fresh schemas do not queue behind each other).
_MIGRATION_LOCK = "SELECT pg_advisory_lock(hashtext('mainstem.migrate:' || current_schema()))"
_MIGRATION_UNLOCK = "SELECT pg_advisory_unlock(hashtext('mainstem.migrate:' || current_schema()))"

IDLE_IN_TRANSACTION_TIMEOUT = 5.0
"""Seconds a transaction may sit idle before the server ends the session. No Mainstem
transaction waits on its client that long; one that does belongs to a process that was paused
(SIGSTOP, a VM freeze, a partition) while holding row locks — a worker mid-commit holds its lease
row ``FOR UPDATE``, and ``SKIP LOCKED`` claims would pass that partition over for as long as the
pause lasts. Ending the session releases the locks; the paused process reconnects when it wakes."""


def connect(
    url: str, *, idle_timeout: float = IDLE_IN_TRANSACTION_TIMEOUT
) -> psycopg.Connection[tuple[object, ...]]:
    """A connection in autocommit mode: callers open transactions with :func:`transaction`.
    A transaction left idle for ``idle_timeout`` seconds ends the session (see
    :data:`IDLE_IN_TRANSACTION_TIMEOUT`).

    Raises:
        ConfigError: the URL is malformed (a connection refused propagates as
            :class:`psycopg.OperationalError`, which callers retry).
    """
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"database_url: {exc} — expected postgresql://user@host/db") from exc
    conn.execute(
        "SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
        (f"{round(idle_timeout * 1000)}ms",),
    )
    return conn


@contextmanager
def transaction(
    conn: psycopg.Connection[tuple[object, ...]],
) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """``BEGIN`` … ``COMMIT``, rolled back on any exception."""
    with conn.transaction():
        yield conn


class Connections:
    """One connection per thread, reopened after a failure (a PostgreSQL restart breaks every
    connection; the next call gets a fresh one instead of failing forever)."""

    def __init__(self, url: str, *, idle_timeout: float = IDLE_IN_TRANSACTION_TIMEOUT) -> None:
        self.url = url
        self.idle_timeout = idle_timeout
        self._local = threading.local()
        self._all: list[psycopg.Connection[tuple[object, ...]]] = []
        self._lock = threading.Lock()
        self._closed = False

    def get(self) -> psycopg.Connection[tuple[object, ...]]:
        conn: psycopg.Connection[tuple[object, ...]] | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if self._closed:
            raise RuntimeError("storage is closed")
        conn = connect(self.url, idle_timeout=self.idle_timeout)
        self._local.conn = conn
        with self._lock:
            self._all = [c for c in self._all if not c.closed]
            self._all.append(conn)
        return conn

    def fetch(self, query: Query, params: Params | None = None) -> list[tuple[object, ...]]:
        """Run a read on this thread's connection. A read is idempotent, so one that finds its
        connection dropped (the server restarted) is retried once on a fresh one."""
        for attempt in (1, 2):
            conn = self.get()
            try:
                return conn.execute(query, params).fetchall()
            except _LOST:
                self._discard(conn)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """A transaction on this thread's connection; a broken connection is dropped so the
        next call reconnects."""
        conn = self.get()
        try:
            with conn.transaction():
                yield conn
        except _LOST:
            self._discard(conn)
            raise

    def _discard(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        conn.close()

    def close(self) -> None:
        """Idempotent."""
        self._closed = True
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


def migrate(
    conn: psycopg.Connection[tuple[object, ...]], migrations: Sequence[tuple[str, str]]
) -> None:
    """Apply the named migrations not yet recorded, each in its own transaction, in order,
    holding an advisory lock so processes starting together migrate once.

    A migration that has shipped is never edited; a change is a new migration.

    Raises:
        ConfigError: the database holds migrations this version does not know.
    """
    conn.execute(_MIGRATION_LOCK)
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        applied = {str(row[0]) for row in conn.execute("SELECT name FROM schema_migrations")}
        known = {name for name, _ in migrations}
        # The log's and the pipeline's migrations share the table (``log/0001_…``,
        # ``pipeline/0001_…``): only names of the same component are checked.
        components = {name.split("/", 1)[0] + "/" for name in known}
        unknown = {name for name in applied - known if any(name.startswith(c) for c in components)}
        if unknown:
            raise ConfigError(
                f"the database has migrations this version does not know "
                f"({', '.join(sorted(unknown))}) — it was written by a newer Mainstem"
            )
        for name, sql in migrations:
            if name in applied:
                continue
            with transaction(conn):
                conn.execute(sql.encode())
                conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
    finally:
        conn.execute(_MIGRATION_UNLOCK)
