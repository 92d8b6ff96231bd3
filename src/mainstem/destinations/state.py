"""Delivery state: each destination's cursor over the event store, its attempts and dead letters.

:class:`DeliveryState` is the port. :class:`SqlDeliveryState` holds the statements, written once
in the SQL that SQLite and PostgreSQL share; :class:`SqliteDeliveryState` keeps the state in
``<data_dir>/delivery.db``, apart from the pipeline database so delivery never contends with the
processor's commits, and :class:`~mainstem.storage.postgres.delivery.PostgresDeliveryState` in
the shared PostgreSQL, fenced by the worker's delivery lease.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

Row = tuple[object, ...]
Run = Callable[[str, Sequence[object]], list[Row]]
"""Runs one statement (``?`` placeholders) inside a transaction and returns its rows."""

FILE_NAME = "delivery.db"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request to a destination (or a batch that was only filtered: ``outcome="filtered"``)."""

    destination: str
    first_seq: int
    last_seq: int
    events: int
    attempt: int
    outcome: str
    """``delivered``, ``retry``, ``dead``, ``filtered`` or ``replayed``."""
    status: int | None = None
    error: str = ""
    at: float = 0.0
    """Epoch seconds."""
    id: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    destination: str
    seq: int
    source_id: str
    received_at: int
    body: bytes
    """The message as it was to be sent (after filters)."""
    reason: str
    at: float = 0.0
    id: int = 0
    replayed_at: float | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """A destination's position and running totals."""

    destination: str
    cursor: int = 0
    delivered: int = 0
    filtered: int = 0
    dead: int = 0
    retries: int = 0
    updated_at: float = 0.0
    latency: float | None = None
    """Seconds from receipt to acceptance of the oldest event of the last delivered batch."""


class DeliveryState(Protocol):
    def cursor(self, destination: str) -> int:
        """The last event-store seq fully handled for ``destination`` (0 when none)."""
        ...

    def begin(self, destination: str, seq: int) -> bool:
        """Give a destination seen for the first time its cursor at ``seq``; ``False`` (and no
        change) when it already has one."""
        ...

    def advance(
        self,
        destination: str,
        seq: int,
        *,
        attempts: Sequence[Attempt] = (),
        delivered: int = 0,
        dropped: Mapping[str, int] | None = None,
        dead: Sequence[DeadLetter] = (),
        latency: float | None = None,
    ) -> None:
        """Atomically move the cursor to ``seq``, add the totals (``dropped``: the events not
        sent, by the routing step that stopped them), record the ``attempts`` (one per lane of
        a round), the dead letters and the round's ``latency``. On failure nothing changed and
        the batch is sent again (at-least-once)."""
        ...

    def dropped(self) -> dict[str, dict[str, int]]:
        """Filtered events by destination, then by routing step."""
        ...

    def record(self, attempt: Attempt) -> None:
        """Record a failed attempt that will be retried; the cursor stays. The first one after
        the cursor last moved starts the retry clock (:meth:`failing_since`)."""
        ...

    def failing_since(self, destination: str) -> float | None:
        """When the batch at the cursor first failed (epoch seconds), or ``None``; cleared when
        the cursor moves."""
        ...

    def progress(self) -> list[Progress]:
        """Every destination that has state, by id."""
        ...

    def attempts(
        self, destination: str | None = None, *, failed: bool = False, limit: int = 100
    ) -> list[Attempt]:
        """Newest first; ``failed`` keeps retries and dead batches."""
        ...

    def dead_letters(
        self, destination: str, *, pending: bool = True, limit: int = 1000, after: int = 0
    ) -> list[DeadLetter]:
        """Oldest first after id ``after``; ``pending`` leaves out the replayed ones."""
        ...

    def mark_replayed(self, ids: Sequence[int]) -> None: ...

    def close(self) -> None:
        """Idempotent."""
        ...


_MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_initial",
        """
        CREATE TABLE cursors (
            destination TEXT PRIMARY KEY,
            seq INTEGER NOT NULL DEFAULT 0,
            delivered INTEGER NOT NULL DEFAULT 0,
            filtered INTEGER NOT NULL DEFAULT 0,
            dead INTEGER NOT NULL DEFAULT 0,
            retries INTEGER NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL DEFAULT 0
        );
        CREATE TABLE attempts (
            id INTEGER PRIMARY KEY,
            destination TEXT NOT NULL,
            first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            events INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            status INTEGER,
            error TEXT NOT NULL DEFAULT '',
            at REAL NOT NULL
        );
        CREATE INDEX attempts_by_destination ON attempts (destination, id);
        CREATE TABLE dead_letters (
            id INTEGER PRIMARY KEY,
            destination TEXT NOT NULL,
            seq INTEGER NOT NULL,
            source_id TEXT NOT NULL,
            received_at INTEGER NOT NULL,
            body BLOB NOT NULL,
            reason TEXT NOT NULL,
            at REAL NOT NULL,
            replayed_at REAL
        );
        CREATE INDEX dead_letters_by_destination ON dead_letters (destination, id);
        """,
    ),
    (
        "0002_failing_since",
        # when the batch at the cursor first failed, so the retry window survives restarts
        "ALTER TABLE cursors ADD COLUMN failing_since REAL",
    ),
    (
        "0003_dropped_and_latency",
        # filtered events by routing step, and the last delivered batch's latency (metrics)
        """
        CREATE TABLE dropped (
            destination TEXT NOT NULL,
            step TEXT NOT NULL,
            events INTEGER NOT NULL,
            PRIMARY KEY (destination, step)
        );
        ALTER TABLE cursors ADD COLUMN latency REAL
        """,
    ),
]

_ATTEMPT_COLUMNS = "destination, first_seq, last_seq, events, attempt, outcome, status, error, at"
_KEEP_ATTEMPTS = 10_000  # per destination; older rows are trimmed as new ones arrive


class SqlDeliveryState:
    """The statements of :class:`DeliveryState`, with ``?`` placeholders; a backend supplies
    reads (:meth:`_read`), transactions (:meth:`_transaction`) and, optionally, a fence checked
    before the cursor moves (:meth:`_fence`)."""

    def _read(self, query: str, params: Sequence[object] = ()) -> list[Row]:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[Run]:
        raise NotImplementedError

    def _fence(self, run: Run, destination: str) -> None:
        """Raise if this process may no longer move ``destination``'s cursor."""

    def cursor(self, destination: str) -> int:
        rows = self._read("SELECT seq FROM cursors WHERE destination = ?", (destination,))
        return int(str(rows[0][0])) if rows else 0

    def begin(self, destination: str, seq: int) -> bool:
        with self._transaction() as run:
            inserted = run(
                "INSERT INTO cursors (destination, seq, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (destination) DO NOTHING RETURNING destination",
                (destination, seq, time.time()),
            )
        return bool(inserted)

    def advance(
        self,
        destination: str,
        seq: int,
        *,
        attempts: Sequence[Attempt] = (),
        delivered: int = 0,
        dropped: Mapping[str, int] | None = None,
        dead: Sequence[DeadLetter] = (),
        latency: float | None = None,
    ) -> None:
        now = time.time()
        filtered = sum((dropped or {}).values())
        with self._transaction() as run:
            self._fence(run, destination)
            # never backwards: a courier that was paused with an old batch may finish it late
            run(
                "INSERT INTO cursors (destination, seq, delivered, filtered, dead, updated_at, "
                "latency) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (destination) DO UPDATE SET "
                "seq = CASE WHEN excluded.seq > cursors.seq "
                "THEN excluded.seq ELSE cursors.seq END, "
                "delivered = cursors.delivered + excluded.delivered, "
                "filtered = cursors.filtered + excluded.filtered, "
                "dead = cursors.dead + excluded.dead, "
                "updated_at = excluded.updated_at, failing_since = NULL, "
                "latency = COALESCE(excluded.latency, cursors.latency)",
                (destination, seq, delivered, filtered, len(dead), now, latency),
            )
            for step, count in sorted((dropped or {}).items()):
                run(
                    "INSERT INTO dropped (destination, step, events) VALUES (?, ?, ?) "
                    "ON CONFLICT (destination, step) DO UPDATE SET "
                    "events = dropped.events + excluded.events",
                    (destination, step, count),
                )
            for attempt in attempts:
                _insert_attempt(run, attempt, now)
            for d in dead:
                run(
                    "INSERT INTO dead_letters (destination, seq, source_id, received_at, body, "
                    "reason, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (d.destination, d.seq, d.source_id, d.received_at, d.body, d.reason, now),
                )

    def record(self, attempt: Attempt) -> None:
        now = time.time()
        with self._transaction() as run:
            _insert_attempt(run, attempt, now)
            run(
                "INSERT INTO cursors (destination, retries, updated_at, failing_since) "
                "VALUES (?, 1, ?, ?) ON CONFLICT (destination) DO UPDATE SET "
                "retries = cursors.retries + 1, updated_at = excluded.updated_at, "
                "failing_since = COALESCE(cursors.failing_since, excluded.failing_since)",
                (attempt.destination, now, attempt.at or now),
            )

    def failing_since(self, destination: str) -> float | None:
        rows = self._read("SELECT failing_since FROM cursors WHERE destination = ?", (destination,))
        return float(str(rows[0][0])) if rows and rows[0][0] is not None else None

    def progress(self) -> list[Progress]:
        rows = self._read(
            "SELECT destination, seq, delivered, filtered, dead, retries, updated_at, latency "
            "FROM cursors ORDER BY destination"
        )
        return [
            Progress(
                str(d),
                _int(seq),
                _int(dl),
                _int(f),
                _int(dd),
                _int(r),
                _float(at),
                None if latency is None else _float(latency),
            )
            for d, seq, dl, f, dd, r, at, latency in rows
        ]

    def dropped(self) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for destination, step, events in self._read(
            "SELECT destination, step, events FROM dropped ORDER BY destination, step"
        ):
            found.setdefault(str(destination), {})[str(step)] = _int(events)
        return found

    def attempts(
        self, destination: str | None = None, *, failed: bool = False, limit: int = 100
    ) -> list[Attempt]:
        clauses: list[str] = []
        params: list[object] = []
        if destination is not None:
            clauses.append("destination = ?")
            params.append(destination)
        if failed:
            clauses.append("outcome IN ('retry', 'dead')")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(
            f"SELECT {_ATTEMPT_COLUMNS}, id FROM attempts {where} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        return [
            Attempt(
                str(d),
                _int(first),
                _int(last),
                _int(n),
                _int(a),
                str(outcome),
                None if status is None else _int(status),
                str(error),
                _float(at),
                _int(id_),
            )
            for d, first, last, n, a, outcome, status, error, at, id_ in rows
        ]

    def dead_letters(
        self, destination: str, *, pending: bool = True, limit: int = 1000, after: int = 0
    ) -> list[DeadLetter]:
        extra = " AND replayed_at IS NULL" if pending else ""
        rows = self._read(
            "SELECT destination, seq, source_id, received_at, body, reason, at, id, "
            f"replayed_at FROM dead_letters WHERE destination = ? AND id > ?{extra} "
            "ORDER BY id LIMIT ?",
            (destination, after, limit),
        )
        return [
            DeadLetter(
                str(d),
                _int(seq),
                str(source),
                _int(received),
                _bytes(body),
                str(reason),
                _float(at),
                _int(id_),
                None if replayed is None else _float(replayed),
            )
            for d, seq, source, received, body, reason, at, id_, replayed in rows
        ]

    def mark_replayed(self, ids: Sequence[int]) -> None:
        now = time.time()
        with self._transaction() as run:
            for id_ in ids:
                run("UPDATE dead_letters SET replayed_at = ? WHERE id = ?", (now, id_))


def _insert_attempt(run: Run, a: Attempt, now: float) -> None:
    [(newest,)] = run(
        f"INSERT INTO attempts ({_ATTEMPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "RETURNING id",
        (
            a.destination,
            a.first_seq,
            a.last_seq,
            a.events,
            a.attempt,
            a.outcome,
            a.status,
            a.error,
            a.at or now,
        ),
    )
    if _int(newest) % 1000 == 0:
        run(
            "DELETE FROM attempts WHERE destination = ? AND id <= (SELECT id FROM attempts "
            "WHERE destination = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (a.destination, a.destination, _KEEP_ATTEMPTS),
        )


def _int(value: object) -> int:
    return int(str(value))


def _float(value: object) -> float:
    return float(str(value))


def _bytes(value: object) -> bytes:
    assert isinstance(value, bytes | memoryview), type(value)
    return bytes(value)


class SqliteDeliveryState(SqlDeliveryState):
    """Thread-safe: destination threads share one connection behind a lock (writes are tiny
    and rare next to the HTTP calls they record)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            self._conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
        else:
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # No fsync per commit: a power loss can only take back the newest cursor moves
            # (with their totals and dead letters, atomically), and those batches are sent
            # again — at-least-once holds. An fsync per batch capped unbatched delivery at
            # a few hundred events/s (bench/delivery.py).
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._lock = threading.Lock()
        self._closed = False
        if not readonly:
            self._migrate()

    def _migrate(self) -> None:
        with self._transaction() as run:
            run(
                "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, "
                "applied_at REAL NOT NULL)",
                (),
            )
            done = {row[0] for row in run("SELECT name FROM schema_migrations", ())}
            for name, script in _MIGRATIONS:
                if name in done:
                    continue
                for statement in script.split(";"):
                    if statement.strip():
                        run(statement, ())
                run("INSERT INTO schema_migrations VALUES (?, ?)", (name, time.time()))

    def migrated(self) -> bool:
        """Whether every migration has committed: a reader that opens the file while the
        processor is still creating it must not see a half-made schema."""
        try:
            done = {row[0] for row in self._read("SELECT name FROM schema_migrations")}
        except sqlite3.OperationalError:
            return False
        return all(name in done for name, _ in _MIGRATIONS)

    def _read(self, query: str, params: Sequence[object] = ()) -> list[Row]:
        with self._lock:
            return self._conn.execute(query, params).fetchall()

    @contextmanager
    def _transaction(self) -> Iterator[Run]:
        def run(query: str, params: Sequence[object]) -> list[Row]:
            return self._conn.execute(query, params).fetchall()

        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield run
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
