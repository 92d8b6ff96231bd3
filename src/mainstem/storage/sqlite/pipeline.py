"""The processor's outputs on SQLite: event store, rejections, dedupe memory, counters, offsets.

Everything one processor run produces is committed in one transaction with the new log offset
(DESIGN §2, "exactly-once inside"): after a crash the processor rereads from the committed offset
and the same outputs are written once.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

from mainstem.storage import (
    REGULATION_COLUMNS,
    Batch,
    CommitResult,
    EventQuery,
    EventRow,
    RejectionQuery,
    RejectionRow,
    StoredViolation,
    ViolationCount,
    ViolationQuery,
    ViolationRow,
    conditions,
    regulation_insert,
    regulation_of,
    regulation_row,
)
from mainstem.storage.sqlite.connection import Readers, connect, migrate, transaction
from mainstem.suppression import Regulation

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
    (
        "0002_violations",
        """
        CREATE TABLE violations (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            source_id TEXT NOT NULL,
            received_at INTEGER NOT NULL,
            message_id TEXT NOT NULL,
            message_type TEXT NOT NULL,
            event TEXT NOT NULL,
            event_version INTEGER,
            plan TEXT NOT NULL,
            type TEXT NOT NULL,
            field TEXT NOT NULL,
            description TEXT NOT NULL,
            action TEXT NOT NULL,
            payload BLOB NOT NULL
        );
        CREATE INDEX violations_received_at ON violations (received_at);
        CREATE INDEX violations_event ON violations (source_id, event, received_at)
    """,
    ),
    (
        # user suppression (suppression.py): the regulations as received, and the set they
        # add up to, which the processor reloads when max(seq) moved
        "0003_suppression",
        """
        CREATE TABLE regulations (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            created_at INTEGER NOT NULL,
            regulation_type TEXT NOT NULL,
            subject_type TEXT NOT NULL,
            subject_ids TEXT NOT NULL
        );
        CREATE TABLE suppressed (
            user_id TEXT PRIMARY KEY,
            regulation_id TEXT NOT NULL
        ) WITHOUT ROWID
    """,
    ),
)
_VIOLATION_COLUMNS = (
    "source_id, received_at, message_id, message_type, event, event_version, plan, type, "
    "field, description, action, payload"
)

# Remember (or refresh) a messageId; the duplicate check itself is one query per chunk.
_REMEMBER = (
    "INSERT INTO dedupe (source_id, message_id, seen_at) VALUES (?, ?, ?) "
    "ON CONFLICT (source_id, message_id) DO UPDATE SET seen_at = excluded.seen_at"
)
_LOOKUP_CHUNK = 400  # pairs per query: 800 parameters, under every SQLite's variable limit
_SEEN = (
    "WITH wanted (source_id, message_id) AS (VALUES {values}) "
    "SELECT d.source_id, d.message_id, d.seen_at FROM wanted "
    "JOIN dedupe AS d ON d.source_id = wanted.source_id AND d.message_id = wanted.message_id"
)
"""When ids were last seen. A join, so each id is one primary-key search: SQLite plans
``(source_id, message_id) IN (VALUES …)`` as a scan of the whole table, which made every commit
slower the more ids the window held."""
_COUNT = (
    "INSERT INTO counters (name, label, value) VALUES (?, ?, ?) "
    "ON CONFLICT (name, label) DO UPDATE SET value = value + excluded.value"
)


class SqlitePipelineStore:
    """Writes come from the one processor thread; reads from any thread (own connections)."""

    def __init__(self, path: Path, *, fsync: bool = False, readonly: bool = False) -> None:
        """Open (and create or migrate) the pipeline database.

        Args:
            fsync: off by default, on purpose. Everything here is derived from the event log,
                which is durable before any 200. A power loss can roll back the last commits of
                this WAL database (never tear one: outputs and offset stay together), and the
                processor then redoes them from the log, deterministically, with the same seqs
                and messageIds. Skipping the fsync makes small commits several times cheaper.
            readonly: open for reading only (API, CLI).
        """
        self.path = path
        self._readonly = readonly
        self._writer: sqlite3.Connection | None = None
        if not readonly:
            self._writer = connect(path, fsync=fsync)
            migrate(self._writer, MIGRATIONS)
        self._readers = Readers(path)
        self._closed = False

    def _reader(self) -> sqlite3.Connection:
        return self._readers.get()

    def offset(self, partition: str) -> int:
        row = (
            self._reader()
            .execute("SELECT seq FROM offsets WHERE partition = ?", (partition,))
            .fetchone()
        )
        return int(row[0]) if row else 0

    def commit(self, batch: Batch) -> CommitResult:
        assert self._writer is not None, "opened read-only"
        counts = dict(batch.counts)
        with transaction(self._writer) as conn:
            stored = _stored_flags(conn, batch)
            fresh = [pair for pair, keep in zip(batch.events, stored, strict=True) if keep]
            duplicates = len(batch.events) - len(fresh)
            conn.executemany(
                _REMEMBER, [(source_id, e.message_id, e.received_at) for source_id, e in fresh]
            )
            conn.executemany(
                "INSERT INTO events (source_id, message_id, type, event, user_id, "
                "anonymous_id, received_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        source_id,
                        e.message_id,
                        e.type,
                        e.event,
                        e.user_id,
                        e.anonymous_id,
                        e.received_at,
                        e.body,
                    )
                    for source_id, e in fresh
                ],
            )
            for source_id, event in fresh:
                key = ("events_stored", f"{source_id}/{event.type}")
                counts[key] = counts.get(key, 0) + 1
            conn.executemany(
                "INSERT INTO rejections (source_id, log_seq, received_at, code, reason, "
                "payload) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (source_id, log_seq, received_at, r.code, r.reason, r.payload)
                    for source_id, log_seq, received_at, r in batch.rejections
                ],
            )
            for source_id, _, _, rejection in batch.rejections:
                key = ("events_rejected", f"{source_id}/{rejection.code}")
                counts[key] = counts.get(key, 0) + 1
            violations = batch.kept_violations(stored)
            conn.executemany(
                f"INSERT INTO violations ({_VIOLATION_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(source_id, *v.row()) for source_id, v in violations],
            )
            for source_id, violation in violations:
                key = ("violations", f"{source_id}/{violation.type}")
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
        return CommitResult(stored=len(fresh), duplicates=duplicates)

    def events(self, query: EventQuery) -> list[EventRow]:
        where, params = conditions(query, "?")
        order = "ASC" if query.after is not None else "DESC"
        sql = (
            f"SELECT seq, source_id, received_at, body FROM events {where} "
            f"ORDER BY seq {order} LIMIT ?"
        )
        rows = self._reader().execute(sql, [*params, query.limit])
        return [
            EventRow(seq, source_id, received_at, bytes(body))
            for seq, source_id, received_at, body in rows
        ]

    def rejections(self, query: RejectionQuery) -> list[RejectionRow]:
        where, params = conditions(query, "?")
        order = "ASC" if query.after is not None else "DESC"
        sql = (
            f"SELECT seq, source_id, received_at, code, reason, payload FROM rejections "
            f"{where} ORDER BY seq {order} LIMIT ?"
        )
        rows = self._reader().execute(sql, [*params, query.limit])
        return [
            RejectionRow(seq, source_id, received_at, code, reason, bytes(payload))
            for seq, source_id, received_at, code, reason, payload in rows
        ]

    def violations(self, query: ViolationQuery) -> list[ViolationRow]:
        where, params = conditions(query, "?")
        order = "ASC" if query.after is not None else "DESC"
        sql = (
            f"SELECT seq, {_VIOLATION_COLUMNS} FROM violations {where} ORDER BY seq {order} LIMIT ?"
        )
        rows = self._reader().execute(sql, [*params, query.limit])
        return [
            ViolationRow(
                seq,
                source_id,
                StoredViolation(
                    message_id, received_at, message_type, event, version, plan, kind, field,
                    description, action, bytes(payload),
                ),
            )
            for (
                seq, source_id, received_at, message_id, message_type, event, version, plan,
                kind, field, description, action, payload,
            ) in rows
        ]  # fmt: skip

    def violation_counts(self, query: ViolationQuery, bucket: int) -> list[ViolationCount]:
        where, params = conditions(dataclasses.replace(query, before=None, after=None), "?")
        sql = (
            "SELECT source_id, event, field, type, (received_at / ?) * ? AS bucket, count(*), "
            f"max(received_at) FROM violations {where} "
            "GROUP BY source_id, event, field, type, bucket "
            "ORDER BY bucket DESC, count(*) DESC, source_id, event, field, type"
        )
        rows = self._reader().execute(sql, [bucket, bucket, *params])
        return [ViolationCount(*row) for row in rows]

    def counters(self) -> dict[tuple[str, str], int]:
        rows = self._reader().execute("SELECT name, label, value FROM counters")
        return {(name, label): int(value) for name, label, value in rows}

    def expire(self, now: int, dedupe_window: int) -> int:
        assert self._writer is not None, "opened read-only"
        with transaction(self._writer) as conn:
            cursor = conn.execute("DELETE FROM dedupe WHERE seen_at < ?", (now - dedupe_window,))
        return cursor.rowcount

    def regulate(self, regulation: Regulation) -> None:
        assert self._writer is not None, "opened read-only"
        ids = [(user_id, regulation.id) for user_id in regulation.subject_ids]
        with transaction(self._writer) as conn:
            conn.execute(regulation_insert("?"), regulation_row(regulation))
            if regulation.regulation_type == "UNSUPPRESS":
                conn.executemany("DELETE FROM suppressed WHERE user_id = ?", [(u,) for u, _ in ids])
            else:
                conn.executemany(
                    "INSERT INTO suppressed (user_id, regulation_id) VALUES (?, ?) "
                    "ON CONFLICT (user_id) DO UPDATE SET regulation_id = excluded.regulation_id",
                    ids,
                )

    def regulation(self, regulate_id: str) -> Regulation | None:
        row = (
            self._reader()
            .execute(f"SELECT {REGULATION_COLUMNS} FROM regulations WHERE id = ?", (regulate_id,))
            .fetchone()
        )
        return regulation_of(row[1:]) if row else None

    def regulations(self, before: int | None, limit: int) -> list[tuple[int, Regulation]]:
        rows = self._reader().execute(
            f"SELECT {REGULATION_COLUMNS} FROM regulations WHERE seq < ? ORDER BY seq DESC LIMIT ?",
            (before if before is not None else 2**63 - 1, limit),
        )
        return [(int(row[0]), regulation_of(row[1:])) for row in rows]

    def suppressed(self) -> frozenset[str]:
        return frozenset(row[0] for row in self._reader().execute("SELECT user_id FROM suppressed"))

    def suppression_version(self) -> int:
        row = self._reader().execute("SELECT coalesce(max(seq), 0) FROM regulations").fetchone()
        return int(row[0])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._readers.close()
        if self._writer is not None:
            self._writer.close()


def _stored_flags(conn: sqlite3.Connection, batch: Batch) -> list[bool]:
    """Which events of ``batch`` to store: those whose (source, messageId) was not seen within
    the window, first occurrence wins. Safe as select-then-insert: one processor writes a store
    at a time."""
    seen: dict[tuple[str, str], int] = {}
    keys = list({(source_id, e.message_id) for source_id, e in batch.events})
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[start : start + _LOOKUP_CHUNK]
        rows = conn.execute(
            _SEEN.format(values=", ".join("(?, ?)" for _ in chunk)),
            [part for key in chunk for part in key],
        )
        seen.update(((source_id, message_id), seen_at) for source_id, message_id, seen_at in rows)
    flags: list[bool] = []
    for source_id, event in batch.events:
        key = (source_id, event.message_id)
        last = seen.get(key)
        if last is not None and last >= event.received_at - batch.dedupe_window:
            flags.append(False)
            continue
        seen[key] = event.received_at
        flags.append(True)
    return flags
