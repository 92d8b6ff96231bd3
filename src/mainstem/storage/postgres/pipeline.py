"""The processor's outputs on PostgreSQL: event store, rejections, dedupe memory, counters,
offsets — and the worker leases that say which worker may commit for which log partition.

Everything one processor run produces is committed in one transaction with the new log offset
(DESIGN §2, "exactly-once inside"). With several workers, a store opened with ``owner=`` also
checks, in that transaction, that the worker still holds the lease on the partition (the
``leases`` row is locked ``FOR UPDATE``): a worker that was paused or cut off while its lease
moved to another worker cannot commit the same records a second time.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any, LiteralString

from mainstem.errors import LeaseLost
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
from mainstem.storage.postgres.connection import Connections, connect, migrate
from mainstem.suppression import Regulation

MIGRATIONS = (
    (
        "pipeline/0001_pipeline",
        """
        CREATE TABLE offsets (
            partition TEXT PRIMARY KEY,
            seq BIGINT NOT NULL
        );
        CREATE TABLE dedupe (
            source_id TEXT NOT NULL,
            message_id TEXT NOT NULL,
            seen_at BIGINT NOT NULL,
            PRIMARY KEY (source_id, message_id)
        );
        CREATE INDEX dedupe_seen_at ON dedupe (seen_at);
        CREATE TABLE events (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source_id TEXT NOT NULL,
            message_id TEXT NOT NULL,
            type TEXT NOT NULL,
            event TEXT,
            user_id TEXT,
            anonymous_id TEXT,
            received_at BIGINT NOT NULL,
            body BYTEA NOT NULL
        );
        CREATE INDEX events_message_id ON events (message_id);
        CREATE INDEX events_user_id ON events (user_id) WHERE user_id IS NOT NULL;
        CREATE INDEX events_anonymous_id ON events (anonymous_id) WHERE anonymous_id IS NOT NULL;
        CREATE INDEX events_received_at ON events (received_at);
        CREATE TABLE rejections (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source_id TEXT NOT NULL,
            log_seq BIGINT NOT NULL,
            received_at BIGINT NOT NULL,
            code TEXT NOT NULL,
            reason TEXT NOT NULL,
            payload BYTEA NOT NULL
        );
        CREATE INDEX rejections_received_at ON rejections (received_at);
        CREATE TABLE counters (
            name TEXT NOT NULL,
            label TEXT NOT NULL,
            value BIGINT NOT NULL,
            PRIMARY KEY (name, label)
        );
        CREATE TABLE leases (
            partition TEXT PRIMARY KEY,
            owner TEXT,
            expires_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity'
        );
        CREATE TABLE workers (
            owner TEXT PRIMARY KEY,
            started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )
    """,
    ),
    (
        "pipeline/0002_violations",
        """
        CREATE TABLE violations (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source_id TEXT NOT NULL,
            received_at BIGINT NOT NULL,
            message_id TEXT NOT NULL,
            message_type TEXT NOT NULL,
            event TEXT NOT NULL,
            event_version BIGINT,
            plan TEXT NOT NULL,
            type TEXT NOT NULL,
            field TEXT NOT NULL,
            description TEXT NOT NULL,
            action TEXT NOT NULL,
            payload BYTEA NOT NULL
        );
        CREATE INDEX violations_received_at ON violations (received_at);
        CREATE INDEX violations_event ON violations (source_id, event, received_at)
    """,
    ),
    (
        # the delivery state (destinations/state.py), and the leases that give each singleton
        # task of the workers (a destination's courier, the warehouse loader) to one at a time
        "pipeline/0003_delivery",
        """
        CREATE TABLE cursors (
            destination TEXT PRIMARY KEY,
            seq BIGINT NOT NULL DEFAULT 0,
            delivered BIGINT NOT NULL DEFAULT 0,
            filtered BIGINT NOT NULL DEFAULT 0,
            dead BIGINT NOT NULL DEFAULT 0,
            retries BIGINT NOT NULL DEFAULT 0,
            updated_at DOUBLE PRECISION NOT NULL DEFAULT 0,
            failing_since DOUBLE PRECISION
        );
        CREATE TABLE attempts (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            destination TEXT NOT NULL,
            first_seq BIGINT NOT NULL,
            last_seq BIGINT NOT NULL,
            events BIGINT NOT NULL,
            attempt BIGINT NOT NULL,
            outcome TEXT NOT NULL,
            status BIGINT,
            error TEXT NOT NULL DEFAULT '',
            at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX attempts_by_destination ON attempts (destination, id);
        CREATE TABLE dead_letters (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            destination TEXT NOT NULL,
            seq BIGINT NOT NULL,
            source_id TEXT NOT NULL,
            received_at BIGINT NOT NULL,
            body BYTEA NOT NULL,
            reason TEXT NOT NULL,
            at DOUBLE PRECISION NOT NULL,
            replayed_at DOUBLE PRECISION
        );
        CREATE INDEX dead_letters_by_destination ON dead_letters (destination, id);
        CREATE TABLE task_leases (
            task TEXT PRIMARY KEY,
            owner TEXT,
            expires_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity'
        )
    """,
    ),
    (
        # Bounded bloat without operators: the few rows updated on every commit or heartbeat
        # leave room on their page for HOT updates (no index churn, pruned without VACUUM), and
        # the dedupe table, trimmed by DELETE as ids leave the window, is vacuumed after 2% of
        # it is dead rather than PostgreSQL's default 20%.
        "pipeline/0004_housekeeping",
        """
        ALTER TABLE offsets SET (fillfactor = 50);
        ALTER TABLE counters SET (fillfactor = 50);
        ALTER TABLE leases SET (fillfactor = 50);
        ALTER TABLE workers SET (fillfactor = 50);
        ALTER TABLE task_leases SET (fillfactor = 50);
        ALTER TABLE cursors SET (fillfactor = 50);
        ALTER TABLE dedupe SET (
            autovacuum_vacuum_scale_factor = 0.02,
            autovacuum_vacuum_threshold = 10000
        )
    """,
    ),
    (
        # filtered events by routing step, and the last delivered batch's latency (metrics)
        "pipeline/0005_delivery_metrics",
        """
        CREATE TABLE dropped (
            destination TEXT NOT NULL,
            step TEXT NOT NULL,
            events BIGINT NOT NULL,
            PRIMARY KEY (destination, step)
        ) WITH (fillfactor = 50);
        ALTER TABLE cursors ADD COLUMN latency DOUBLE PRECISION
    """,
    ),
    (
        # user suppression (suppression.py): the regulations as received, and the set they
        # add up to, which each processor reloads when max(seq) moved
        "pipeline/0006_suppression",
        """
        CREATE TABLE regulations (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            created_at BIGINT NOT NULL,
            regulation_type TEXT NOT NULL,
            subject_type TEXT NOT NULL,
            subject_ids TEXT NOT NULL
        );
        CREATE TABLE suppressed (
            user_id TEXT PRIMARY KEY,
            regulation_id TEXT NOT NULL
        )
    """,
    ),
)
_VIOLATION_COLUMNS: LiteralString = (
    "source_id, received_at, message_id, message_type, event, event_version, plan, type, "
    "field, description, action, payload"
)

# The insert that is also the dedupe check (as on SQLite): a new id, or one last seen before the
# window, is (re)stored; a duplicate inside the window changes nothing and returns no row. Keys
# arrive sorted so two workers locking the same ids cannot deadlock.
_DEDUPE_MANY = (
    "INSERT INTO dedupe (source_id, message_id, seen_at) "
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[]) "
    "ON CONFLICT (source_id, message_id) DO UPDATE SET seen_at = excluded.seen_at "
    "WHERE dedupe.seen_at < excluded.seen_at - %s "
    "RETURNING source_id, message_id"
)
_DEDUPE_ONE = (
    "INSERT INTO dedupe (source_id, message_id, seen_at) VALUES (%s, %s, %s) "
    "ON CONFLICT (source_id, message_id) DO UPDATE SET seen_at = excluded.seen_at "
    "WHERE dedupe.seen_at < excluded.seen_at - %s"
)
_COUNT = (
    "INSERT INTO counters (name, label, value) "
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[]) "
    "ON CONFLICT (name, label) DO UPDATE SET value = counters.value + excluded.value"
)
# Event-store seqs are taken under one lock per commit, so a reader tailing ``seq > after``
# never sees a later seq before an earlier one commits (workers commit concurrently).
_STORE_LOCK = "SELECT pg_advisory_xact_lock(hashtext('mainstem.events:' || current_schema()))"

_REGULATION_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtext('mainstem.regulations:' || current_schema()))"
)

_EVENT_COLUMNS: LiteralString = (
    "source_id, message_id, type, event, user_id, anonymous_id, received_at, body"
)
_REJECTION_COLUMNS: LiteralString = "source_id, log_seq, received_at, code, reason, payload"
# This session's staging tables (emptied at every commit), created on first use.
_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS staged_events (n INT, source_id TEXT, message_id TEXT, "
    "type TEXT, event TEXT, user_id TEXT, anonymous_id TEXT, received_at BIGINT, body BYTEA) "
    "ON COMMIT DELETE ROWS; "
    "CREATE TEMP TABLE IF NOT EXISTS staged_rejections (n INT, source_id TEXT, log_seq BIGINT, "
    "received_at BIGINT, code TEXT, reason TEXT, payload BYTEA) ON COMMIT DELETE ROWS; "
    "CREATE TEMP TABLE IF NOT EXISTS staged_violations (n INT, source_id TEXT, "
    "received_at BIGINT, message_id TEXT, message_type TEXT, event TEXT, event_version BIGINT, "
    "plan TEXT, type TEXT, field TEXT, description TEXT, action TEXT, payload BYTEA) "
    "ON COMMIT DELETE ROWS"
)


def _stage(conn: Any, batch: Batch) -> None:
    """``COPY`` the batch's rows into this session's staging tables, numbered in batch order."""
    _copy(
        conn,
        f"COPY staged_events (n, {_EVENT_COLUMNS}) FROM STDIN (FORMAT BINARY)",
        ["int4", "text", "text", "text", "text", "text", "text", "int8", "bytea"],
        [
            (
                n,
                source_id,
                e.message_id,
                e.type,
                e.event,
                e.user_id,
                e.anonymous_id,
                e.received_at,
                e.body,
            )
            for n, (source_id, e) in enumerate(batch.events)
        ],
    )
    _copy(
        conn,
        f"COPY staged_rejections (n, {_REJECTION_COLUMNS}) FROM STDIN (FORMAT BINARY)",
        ["int4", "text", "int8", "int8", "text", "text", "bytea"],
        [
            (n, source_id, log_seq, received_at, r.code, r.reason, r.payload)
            for n, (source_id, log_seq, received_at, r) in enumerate(batch.rejections)
        ],
    )
    _copy(
        conn,
        f"COPY staged_violations (n, {_VIOLATION_COLUMNS}) FROM STDIN (FORMAT BINARY)",
        ["int4", "text", "int8", "text", "text", "text", "int8"] + ["text"] * 5 + ["bytea"],
        [(n, source_id, *v.row()) for n, (source_id, v) in enumerate(batch.violations)],
    )


def _copy(
    conn: Any, statement: LiteralString, types: list[str], rows: list[tuple[Any, ...]]
) -> None:
    if not rows:
        return
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


class PostgresPipelineStore:
    """Writes come from one processor thread per worker; reads from any thread (own
    connections). ``owner`` is the worker's lease token; without it commits are not fenced
    (one processor, as in the tests of the storage contract)."""

    def __init__(
        self,
        url: str,
        *,
        fsync: bool = True,
        readonly: bool = False,
        owner: str | None = None,
    ) -> None:
        self.url = url
        self.owner = owner
        self._fsync = fsync
        self._readonly = readonly
        if not readonly:
            with connect(url) as conn:
                migrate(conn, MIGRATIONS)
        self._conns = Connections(url)
        self._staged: weakref.WeakSet[object] = weakref.WeakSet()
        """Sessions whose staging tables exist."""
        self._closed = False

    def offset(self, partition: str) -> int:
        row = next(
            iter(self._conns.fetch("SELECT seq FROM offsets WHERE partition = %s", (partition,))),
            None,
        )
        return int(str(row[0])) if row else 0

    def commit(self, batch: Batch) -> CommitResult:
        """One transaction. The rows travel first, by ``COPY`` into this session's staging
        tables, before any lock is taken: a worker frozen mid-``COPY`` is an *active* session
        that neither the idle timeout nor a statement timeout can end (the server waits for
        data), so it must hold nothing another worker waits for. Then, under the lease fence
        and the event store's seq lock, everything is server-side statements."""
        assert not self._readonly, "opened read-only"
        counts = dict(batch.counts)
        with self._conns.transaction() as conn:
            if not self._fsync:
                conn.execute("SET LOCAL synchronous_commit = off")
            if conn not in self._staged:
                conn.execute(_STAGING)
                self._staged.add(conn)
            _stage(conn, batch)
            if self.owner is not None:
                held = conn.execute(
                    "SELECT 1 FROM leases WHERE partition = %s AND owner = %s FOR UPDATE",
                    (batch.partition, self.owner),
                ).fetchone()
                if held is None:
                    raise LeaseLost(
                        f"log partition {batch.partition} is leased to another worker; "
                        "its records are theirs now"
                    )
            stored_flags = _dedupe(conn, batch)
            conn.execute(_STORE_LOCK)
            kept = [n for n, keep in enumerate(stored_flags) if keep]
            for n in kept:
                source_id, event = batch.events[n]
                key = ("events_stored", f"{source_id}/{event.type}")
                counts[key] = counts.get(key, 0) + 1
            stored, duplicates = len(kept), len(batch.events) - len(kept)
            if kept:
                conn.execute(
                    f"INSERT INTO events ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS} "
                    "FROM staged_events WHERE n = ANY(%s) ORDER BY n",
                    (kept,),
                )
            if batch.rejections:
                conn.execute(
                    f"INSERT INTO rejections ({_REJECTION_COLUMNS}) SELECT {_REJECTION_COLUMNS} "
                    "FROM staged_rejections ORDER BY n"
                )
                for source_id, _, _, rejection in batch.rejections:
                    key = ("events_rejected", f"{source_id}/{rejection.code}")
                    counts[key] = counts.get(key, 0) + 1
            violations = {id(v) for _, v in batch.kept_violations(stored_flags)}
            kept_violations = [
                n for n, (_, v) in enumerate(batch.violations) if id(v) in violations
            ]
            if kept_violations:
                conn.execute(
                    f"INSERT INTO violations ({_VIOLATION_COLUMNS}) SELECT {_VIOLATION_COLUMNS} "
                    "FROM staged_violations WHERE n = ANY(%s) ORDER BY n",
                    (kept_violations,),
                )
                for n in kept_violations:
                    source_id, v = batch.violations[n]
                    key = ("violations", f"{source_id}/{v.type}")
                    counts[key] = counts.get(key, 0) + 1
            if duplicates:
                counts[("events_duplicate", "")] = duplicates
            if counts:
                keys = sorted(counts)
                conn.execute(
                    _COUNT,
                    (
                        [name for name, _ in keys],
                        [label for _, label in keys],
                        [counts[key] for key in keys],
                    ),
                )
            conn.execute(
                "INSERT INTO offsets (partition, seq) VALUES (%s, %s) "
                "ON CONFLICT (partition) DO UPDATE SET seq = excluded.seq",
                (batch.partition, batch.offset),
            )
        return CommitResult(stored=stored, duplicates=duplicates)

    def events(self, query: EventQuery) -> list[EventRow]:
        where, params = conditions(query, "%s")
        order = "ASC" if query.after is not None else "DESC"
        rows = self._conns.fetch(
            f"SELECT seq, source_id, received_at, body FROM events {where} "
            f"ORDER BY seq {order} LIMIT %s",
            [*params, query.limit],
        )
        return [
            EventRow(int(str(seq)), str(source_id), int(str(received_at)), bytes(body))  # type: ignore[call-overload]
            for seq, source_id, received_at, body in rows
        ]

    def rejections(self, query: RejectionQuery) -> list[RejectionRow]:
        where, params = conditions(query, "%s")
        order = "ASC" if query.after is not None else "DESC"
        rows = self._conns.fetch(
            "SELECT seq, source_id, received_at, code, reason, payload FROM rejections "
            f"{where} ORDER BY seq {order} LIMIT %s",
            [*params, query.limit],
        )
        return [
            RejectionRow(
                int(str(seq)),
                str(source_id),
                int(str(received_at)),
                str(code),
                str(reason),
                bytes(payload),  # type: ignore[call-overload]
            )
            for seq, source_id, received_at, code, reason, payload in rows
        ]

    def violations(self, query: ViolationQuery) -> list[ViolationRow]:
        where, params = conditions(query, "%s")
        order = "ASC" if query.after is not None else "DESC"
        rows = self._conns.fetch(
            f"SELECT seq, {_VIOLATION_COLUMNS} FROM violations {where} "
            f"ORDER BY seq {order} LIMIT %s",
            [*params, query.limit],
        )
        result = []
        for row in rows:
            seq, source_id, received_at, message_id, message_type, event, version = row[:7]
            plan, kind, field, description, action, payload = row[7:]
            violation = StoredViolation(
                str(message_id),
                int(str(received_at)),
                str(message_type),
                str(event),
                None if version is None else int(str(version)),
                str(plan),
                str(kind),
                str(field),
                str(description),
                str(action),
                bytes(payload),  # type: ignore[call-overload]
            )
            result.append(ViolationRow(int(str(seq)), str(source_id), violation))
        return result

    def violation_counts(self, query: ViolationQuery, bucket: int) -> list[ViolationCount]:
        where, params = conditions(dataclasses.replace(query, before=None, after=None), "%s")
        rows = self._conns.fetch(
            "SELECT source_id, event, field, type, (received_at / %s) * %s AS bucket, "
            f"count(*), max(received_at) FROM violations {where} "
            "GROUP BY source_id, event, field, type, bucket "
            "ORDER BY bucket DESC, count(*) DESC, source_id, event, field, type",
            [bucket, bucket, *params],
        )
        return [
            ViolationCount(
                str(source_id),
                str(event),
                str(field),
                str(kind),
                int(str(start)),
                int(str(count)),
                int(str(last)),
            )
            for source_id, event, field, kind, start, count, last in rows
        ]

    def counters(self) -> dict[tuple[str, str], int]:
        rows = self._conns.fetch("SELECT name, label, value FROM counters")
        return {(str(name), str(label)): int(str(value)) for name, label, value in rows}

    def expire(self, now: int, dedupe_window: int, *, chunk: int = 20_000) -> int:
        """Forget ids older than the window, ``chunk`` rows per transaction, so a worker that
        was down for a day neither holds one huge transaction nor leaves the table half
        vacuumable."""
        assert not self._readonly, "opened read-only"
        total = 0
        while True:
            with self._conns.transaction() as conn:
                deleted = conn.execute(
                    "DELETE FROM dedupe WHERE ctid = ANY(ARRAY(SELECT ctid FROM dedupe "
                    "WHERE seen_at < %s LIMIT %s))",
                    (now - dedupe_window, chunk),
                ).rowcount
            total += deleted
            if deleted < chunk:
                return total

    def regulate(self, regulation: Regulation) -> None:
        assert not self._readonly, "opened read-only"
        ids = sorted(regulation.subject_ids)  # sorted: two writers never deadlock on rows
        with self._conns.transaction() as conn:
            # one regulation at a time, so seqs commit in order and max(seq), the processors'
            # change marker, never skips one that commits late
            conn.execute(_REGULATION_LOCK)
            conn.execute(regulation_insert("%s"), regulation_row(regulation))
            if regulation.regulation_type == "UNSUPPRESS":
                conn.execute("DELETE FROM suppressed WHERE user_id = ANY(%s)", (ids,))
            else:
                conn.execute(
                    "INSERT INTO suppressed (user_id, regulation_id) "
                    "SELECT unnest(%s::text[]), %s "
                    "ON CONFLICT (user_id) DO UPDATE SET regulation_id = excluded.regulation_id",
                    (ids, regulation.id),
                )

    def regulation(self, regulate_id: str) -> Regulation | None:
        rows = self._conns.fetch(
            f"SELECT {REGULATION_COLUMNS} FROM regulations WHERE id = %s", (regulate_id,)
        )
        return regulation_of(rows[0][1:]) if rows else None

    def regulations(self, before: int | None, limit: int) -> list[tuple[int, Regulation]]:
        rows = self._conns.fetch(
            f"SELECT {REGULATION_COLUMNS} FROM regulations WHERE seq < %s "
            "ORDER BY seq DESC LIMIT %s",
            (before if before is not None else 2**63 - 1, limit),
        )
        return [(int(str(row[0])), regulation_of(row[1:])) for row in rows]

    def suppressed(self) -> frozenset[str]:
        return frozenset(str(row[0]) for row in self._conns.fetch("SELECT user_id FROM suppressed"))

    def suppression_version(self) -> int:
        rows = self._conns.fetch("SELECT coalesce(max(seq), 0) FROM regulations")
        return int(str(rows[0][0]))

    def lag(self) -> int:
        """Log records not yet processed, over every log partition."""
        row = next(
            iter(
                self._conns.fetch(
                    "SELECT coalesce(sum(greatest(p.last_seq - coalesce(o.seq, 0), 0)), 0) "
                    "FROM log_partitions p LEFT JOIN offsets o USING (partition)"
                )
            ),
            None,
        )
        return int(str(row[0])) if row else 0

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._conns.close()


def _dedupe(conn: Any, batch: Batch) -> list[bool]:
    """Which events of ``batch`` are new (to store), in batch order, recording their ids."""
    first: dict[tuple[str, str], int] = {}
    later: list[int] = []
    for index, (source_id, event) in enumerate(batch.events):
        key = (source_id, event.message_id)
        if key in first:
            later.append(index)
        else:
            first[key] = index
    flags = [False] * len(batch.events)
    if first:
        keys = sorted(first)
        seen = [batch.events[first[key]][1].received_at for key in keys]
        new = {
            (str(source_id), str(message_id))
            for source_id, message_id in conn.execute(
                _DEDUPE_MANY,
                (
                    [source_id for source_id, _ in keys],
                    [message_id for _, message_id in keys],
                    seen,
                    batch.dedupe_window,
                ),
            ).fetchall()
        }
        for key, index in first.items():
            flags[index] = key in new
    for index in later:  # the same id twice in one batch: decided in order, one at a time
        source_id, event = batch.events[index]
        cursor = conn.execute(
            _DEDUPE_ONE, (source_id, event.message_id, event.received_at, batch.dedupe_window)
        )
        flags[index] = cursor.rowcount == 1
    return flags
