"""Opening SQLite the way Mainstem uses it: WAL, explicit transactions, named migrations."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mainstem.errors import ConfigError


def connect(path: Path, *, fsync: bool = True, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode: callers open transactions with :func:`transaction`."""
    if readonly:
        uri = f"file:{path}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL fsyncs the WAL at every commit: a 200 survives power loss, not only a crash.
        conn.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrate(conn: sqlite3.Connection, migrations: Sequence[tuple[str, str]]) -> None:
    """Apply the named migrations not yet recorded, each in its own transaction, in order.

    A migration that has shipped is never edited; a change is a new migration.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    applied = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
    known = {name for name, _ in migrations}
    unknown = applied - known
    if unknown:
        raise ConfigError(
            f"the database has migrations this version does not know "
            f"({', '.join(sorted(unknown))}) — it was written by a newer Mainstem"
        )
    for name, sql in migrations:
        if name in applied:
            continue
        with transaction(conn):
            for statement in sql.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (name) VALUES (?)", (name,))


class Readers:
    """Read-only connections to one database, one per thread (a connection is not shared
    between threads), all closed together by :meth:`close`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, readonly=True)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        """Idempotent."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
