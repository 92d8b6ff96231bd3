"""The processor's outputs on SQLite: event store, rejections, dedupe memory, counters, offsets.

Everything one processor run produces is committed in one transaction with the new log offset
(DESIGN §2, "exactly-once inside"): after a crash the processor rereads from the committed offset
and the same outputs are written once.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from mainstem.storage import (
    Batch,
    CommitResult,
    EventQuery,
    EventRow,
    RejectionQuery,
    RejectionRow,
)
from mainstem.storage.sqlite.connection import connect, migrate, transaction

MIGRATIONS = (
    (
        "0001_pipeline",
        """
        CREATE TABLE offsets (
            partition TEXT PRIMARY KEY,
            seq INTEGER NOT NULL
        );
        CREATE TABLE dedupe (
            source_id TEXT NOT NULL,
            message_id TEXT NOT NULL,
            seen_at INTEGER NOT NULL,
            PRIMARY KEY (source_id, message_id)
        ) WITHOUT ROWID;
        CREATE INDEX dedupe_seen_at ON dedupe (seen_at);
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            source_id TEXT NOT NULL,
            message_id TEXT NOT NULL,
            type TEXT NOT NULL,
            event TEXT,
            user_id TEXT,
            anonymous_id TEXT,
            received_at INTEGER NOT NULL,
            body BLOB NOT NULL
        );
        CREATE INDEX events_message_id ON events (message_id);
        CREATE INDEX events_user_id ON events (user_id) WHERE user_id IS NOT NULL;
        CREATE INDEX events_anonymous_id ON events (anonymous_id) WHERE anonymous_id IS NOT NULL;
        CREATE INDEX events_received_at ON events (received_at);
        CREATE TABLE rejections (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            source_id TEXT NOT NULL,
            log_seq INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            code TEXT NOT NULL,
            reason TEXT NOT NULL,
            payload BLOB NOT NULL
        );
        CREATE INDEX rejections_received_at ON rejections (received_at);
        CREATE TABLE counters (
            name TEXT NOT NULL,
            label TEXT NOT NULL,
            value INTEGER NOT NULL,
            PRIMARY KEY (name, label)
        ) WITHOUT ROWID
    """,
    ),
)

# An insert that is also the dedupe check: it succeeds for a new id, or for an id last seen
# before the window; it changes nothing for a duplicate inside the window.
_DEDUPE = (
    "INSERT INTO dedupe (source_id, message_id, seen_at) VALUES (?, ?, ?) "
    "ON CONFLICT (source_id, message_id) DO UPDATE SET seen_at = excluded.seen_at "
    "WHERE dedupe.seen_at < ?"
)
_COUNT = (
    "INSERT INTO counters (name, label, value) VALUES (?, ?, ?) "
    "ON CONFLICT (name, label) DO UPDATE SET value = value + excluded.value"
)


class SqlitePipelineStore:
    """Writes come from the one processor thread; reads from any thread (own connections)."""

    def __init__(self, path: Path, *, fsync: bool = True, readonly: bool = False) -> None:
        self.path = path
        self._readonly = readonly
        self._writer: sqlite3.Connection | None = None
        if not readonly:
            self._writer = connect(path, fsync=fsync)
            migrate(self._writer, MIGRATIONS)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, readonly=True)
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    def offset(self, partition: str) -> int:
        row = (
            self._reader()
            .execute("SELECT seq FROM offsets WHERE partition = ?", (partition,))
            .fetchone()
        )
        return int(row[0]) if row else 0

    def commit(self, batch: Batch) -> CommitResult:
        assert self._writer is not None, "opened read-only"
        stored = duplicates = 0
        counts = dict(batch.counts)
        with transaction(self._writer) as conn:
            for source_id, event in batch.events:
                cutoff = event.received_at - batch.dedupe_window
                if (
                    conn.execute(
                        _DEDUPE, (source_id, event.message_id, event.received_at, cutoff)
                    ).rowcount
                    == 0
                ):
                    duplicates += 1
                    continue
                conn.execute(
                    "INSERT INTO events (source_id, message_id, type, event, user_id, "
                    "anonymous_id, received_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        source_id,
                        event.message_id,
                        event.type,
                        event.event,
                        event.user_id,
                        event.anonymous_id,
                        event.received_at,
                        event.body,
                    ),
                )
                stored += 1
                key = ("events_stored", f"{source_id}/{event.type}")
                counts[key] = counts.get(key, 0) + 1
            for source_id, log_seq, received_at, rejection in batch.rejections:
                conn.execute(
                    "INSERT INTO rejections (source_id, log_seq, received_at, code, reason, "
                    "payload) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        source_id,
                        log_seq,
                        received_at,
                        rejection.code,
                        rejection.reason,
                        rejection.payload,
                    ),
                )
                key = ("events_rejected", f"{source_id}/{rejection.code}")
                counts[key] = counts.get(key, 0) + 1
            if duplicates:
                counts[("events_duplicate", "")] = duplicates
            conn.executemany(
                _COUNT, [(name, label, value) for (name, label), value in counts.items()]
            )
            conn.execute(
                "INSERT INTO offsets (partition, seq) VALUES (?, ?) "
                "ON CONFLICT (partition) DO UPDATE SET seq = excluded.seq",
                (batch.partition, batch.offset),
            )
        return CommitResult(stored=stored, duplicates=duplicates)

    def events(self, query: EventQuery) -> list[EventRow]:
        where, params = _filters(query.source, query.since, query.before, query.after)
        for column, value in (
            ("type", query.type),
            ("event", query.event),
            ("user_id", query.user_id),
            ("anonymous_id", query.anonymous_id),
            ("message_id", query.message_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        order = "ASC" if query.after is not None else "DESC"
        sql = (
            f"SELECT seq, source_id, received_at, body FROM events {_where(where)} "
            f"ORDER BY seq {order} LIMIT ?"
        )
        rows = self._reader().execute(sql, [*params, query.limit])
        return [
            EventRow(seq, source_id, received_at, bytes(body))
            for seq, source_id, received_at, body in rows
        ]

    def rejections(self, query: RejectionQuery) -> list[RejectionRow]:
        where, params = _filters(query.source, query.since, query.before, query.after)
        if query.code is not None:
            where.append("code = ?")
            params.append(query.code)
        order = "ASC" if query.after is not None else "DESC"
        sql = (
            f"SELECT seq, source_id, received_at, code, reason, payload FROM rejections "
            f"{_where(where)} ORDER BY seq {order} LIMIT ?"
        )
        rows = self._reader().execute(sql, [*params, query.limit])
        return [
            RejectionRow(seq, source_id, received_at, code, reason, bytes(payload))
            for seq, source_id, received_at, code, reason, payload in rows
        ]

    def counters(self) -> dict[tuple[str, str], int]:
        rows = self._reader().execute("SELECT name, label, value FROM counters")
        return {(name, label): int(value) for name, label, value in rows}

    def expire(self, now: int, dedupe_window: int) -> int:
        assert self._writer is not None, "opened read-only"
        with transaction(self._writer) as conn:
            cursor = conn.execute("DELETE FROM dedupe WHERE seen_at < ?", (now - dedupe_window,))
        return cursor.rowcount

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        if self._writer is not None:
            self._writer.close()


def _filters(
    source: str | None, since: int | None, before: int | None, after: int | None
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("source_id = ?", source),
        ("received_at >= ?", since),
        ("seq < ?", before),
        ("seq > ?", after),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    return where, params


def _where(clauses: list[str]) -> str:
    return "WHERE " + " AND ".join(clauses) if clauses else ""
