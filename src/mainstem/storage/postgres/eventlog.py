"""The event log on PostgreSQL: one table partitioned by time, divided into log partitions that
each have exactly one appending process.

Why one appender per log partition: a reader that follows ``seq > offset`` must never see seq
``n + 1`` committed before seq ``n``. With several gateways appending to one sequence, a
transaction that took seq ``n`` may commit after one that took ``n + 1`` and the reader would skip
it for ever. So a gateway claims a log partition (a row of ``log_partitions``) with a lease and
allocates seqs from that row: ``UPDATE … SET last_seq = last_seq + n`` locks the row until the
append commits, so seqs of one partition become visible strictly in order. The same ``UPDATE``
checks the owner token (fencing): a gateway whose lease was taken over (it was paused, or
partitioned away) cannot append any more; it claims another partition and carries on.

The table is range-partitioned by ``received_at`` (one child per day), so retention drops a
child table instead of deleting rows; a ``DEFAULT`` child catches timestamps outside the
prepared days (and is trimmed row by row).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from mainstem.errors import LeaseLost
from mainstem.logrecord import LogRecord
from mainstem.storage.postgres.connection import Connections, connect, migrate
from mainstem.timestamps import now_us

log = logging.getLogger(__name__)

MIGRATIONS = (
    (
        "log/0001_log",
        """
        CREATE TABLE log_partitions (
            partition TEXT PRIMARY KEY,
            last_seq BIGINT NOT NULL DEFAULT 0,  -- never reused after trim
            owner TEXT,                           -- token of the appending process
            holder TEXT,                          -- stable name (host:port) of that gateway
            lease_until TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE TABLE log (
            partition TEXT NOT NULL,
            seq BIGINT NOT NULL,
            source_id TEXT NOT NULL,
            received_at BIGINT NOT NULL,
            path_type TEXT,
            client BOOLEAN NOT NULL,
            ip TEXT,
            body BYTEA NOT NULL
        ) PARTITION BY RANGE (received_at);
        CREATE TABLE log_default PARTITION OF log DEFAULT;
        CREATE INDEX log_partition_seq ON log (partition, seq);
    """,
    ),
)

_COLUMNS = "seq, source_id, received_at, path_type, client, ip, body"
_DAY_US = 86_400_000_000
_DAYS_AHEAD = 2
_HOUSEKEEPING_LOCK = (
    "SELECT pg_try_advisory_xact_lock(hashtext('mainstem.log:' || current_schema()))"
)
_CLAIM_LOCK = "SELECT pg_advisory_xact_lock(hashtext('mainstem.claim:' || current_schema()))"


def owner_token() -> str:
    """Unique per process: host, pid and a random part (pids are reused across restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def day_partitions(now: int, days_before: int = 1) -> list[tuple[str, int, int]]:
    """(name, from, to) of the daily children to prepare around ``now`` (µs, UTC)."""
    today = now // _DAY_US
    result = []
    for day in range(today - days_before, today + _DAYS_AHEAD + 1):
        date = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)
        result.append((f"log_d{date:%Y%m%d}", day * _DAY_US, (day + 1) * _DAY_US))
    return result


class PostgresEventLog:
    """One log partition. As an appender (the default) it claims a partition with a lease and
    keeps the lease alive from a heartbeat thread; with ``partition=`` it is a reader of that
    partition (a worker). ``append`` is for the single writer thread; ``read`` may be called
    from any thread (each thread gets its own connection)."""

    def __init__(
        self,
        url: str,
        *,
        partition: str | None = None,
        holder: str | None = None,
        lease_ttl: float = 10.0,
        fsync: bool = True,
        migrate_schema: bool = True,
    ) -> None:
        self.url = url
        self.owner = owner_token()
        self.holder = holder
        self.lease_ttl = lease_ttl
        self._fsync = fsync
        if migrate_schema:
            with connect(url) as conn:
                migrate(conn, MIGRATIONS)
        self._conns = Connections(url)
        self._closed = False
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self.appender = partition is None
        if partition is not None:
            self.partition = partition
            return
        try:
            self.prepare_partitions(now_us())
            self.partition = self._claim()
        except BaseException:
            self._conns.close()
            raise
        self._heartbeat = threading.Thread(target=self._beat, name="log-lease", daemon=True)
        self._heartbeat.start()

    # -- the lease ------------------------------------------------------------------------

    def _claim(self, *, own: bool = True) -> str:
        """Take the partition this gateway (same ``holder``) held before a restart, or one whose
        lease expired, or a new one. ``own=False`` after losing a lease: the process that took
        it over is the newer one, taking it back would make the two take turns."""
        with self._conns.transaction() as conn:
            conn.execute(_CLAIM_LOCK)
            row = conn.execute(
                "SELECT partition FROM log_partitions "
                "WHERE lease_until < now() OR owner IS NULL OR holder = %(holder)s "
                "ORDER BY holder = %(holder)s DESC NULLS LAST, length(partition), partition "
                "LIMIT 1",
                {"holder": self.holder if own else None},
            ).fetchone()
            if row is None:
                row = conn.execute(
                    "INSERT INTO log_partitions (partition) "
                    "SELECT (coalesce(max(partition::bigint), -1) + 1)::text FROM log_partitions "
                    "RETURNING partition"
                ).fetchone()
            assert row is not None
            partition = str(row[0])
            conn.execute(
                "UPDATE log_partitions SET owner = %s, holder = %s, "
                "lease_until = now() + make_interval(secs => %s) WHERE partition = %s",
                (self.owner, self.holder, self.lease_ttl, partition),
            )
        log.info("appending to log partition %s (owner %s)", partition, self.owner)
        return partition

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_ttl / 4):
            try:
                with self._conns.transaction() as conn:
                    renewed = conn.execute(
                        "UPDATE log_partitions SET lease_until = now() + make_interval(secs => %s)"
                        " WHERE partition = %s AND owner = %s",
                        (self.lease_ttl, self.partition, self.owner),
                    ).rowcount
                if not renewed:
                    log.warning("lost the lease on log partition %s", self.partition)
            except psycopg.Error as exc:
                log.warning("could not renew the log lease: %s", exc)

    def release(self) -> None:
        """Give the partition back so another gateway may take it at once."""
        if not self.appender:
            return
        try:
            with self._conns.transaction() as conn:
                conn.execute(
                    "UPDATE log_partitions SET owner = NULL, lease_until = '-infinity' "
                    "WHERE partition = %s AND owner = %s",
                    (self.partition, self.owner),
                )
        except psycopg.Error as exc:
            log.warning("could not release log partition %s: %s", self.partition, exc)

    # -- the port -------------------------------------------------------------------------

    def append(self, records: Sequence[LogRecord]) -> int:
        try:
            return self._append(records)
        except LeaseLost:
            log.warning("log partition %s was taken over; claiming another", self.partition)
            self.partition = self._claim(own=False)
            return self._append(records)

    def _append(self, records: Sequence[LogRecord]) -> int:
        with self._conns.transaction() as conn:
            if not self._fsync:
                conn.execute("SET LOCAL synchronous_commit = off")
            row = conn.execute(
                "UPDATE log_partitions SET last_seq = last_seq + %s, "
                "lease_until = now() + make_interval(secs => %s) "
                "WHERE partition = %s AND owner = %s RETURNING last_seq",
                (len(records), self.lease_ttl, self.partition, self.owner),
            ).fetchone()
            if row is None:
                raise LeaseLost(f"log partition {self.partition} belongs to another process")
            last = int(str(row[0]))
            first = last - len(records) + 1
            with (
                conn.cursor() as cursor,
                cursor.copy(
                    "COPY log (partition, seq, source_id, received_at, path_type, client, ip, "
                    "body) FROM STDIN (FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(["text", "int8", "text", "int8", "text", "bool", "text", "bytea"])
                for offset, r in enumerate(records):
                    copy.write_row(
                        (
                            self.partition,
                            first + offset,
                            r.source_id,
                            r.received_at,
                            r.path_type,
                            r.client,
                            r.ip,
                            r.body,
                        )
                    )
        return last

    def read(self, after: int, limit: int) -> list[LogRecord]:
        rows = self._conns.fetch(
            f"SELECT {_COLUMNS} FROM log WHERE partition = %s AND seq > %s ORDER BY seq LIMIT %s",
            (self.partition, after, limit),
        )
        return [
            LogRecord(
                seq=int(str(seq)),
                source_id=str(source_id),
                received_at=int(str(received_at)),
                path_type=None if path_type is None else str(path_type),
                client=bool(client),
                ip=None if ip is None else str(ip),
                body=bytes(body),  # type: ignore[call-overload]
            )
            for seq, source_id, received_at, path_type, client, ip, body in rows
        ]

    def last_seq(self) -> int:
        row = next(
            iter(
                self._conns.fetch(
                    "SELECT last_seq FROM log_partitions WHERE partition = %s", (self.partition,)
                )
            ),
            None,
        )
        return int(str(row[0])) if row else 0

    def trim(self, received_before: int, processed_up_to: int) -> int:
        """Drop whole days that every log partition has processed; delete row by row only in
        the ``DEFAULT`` child (timestamps outside the prepared days)."""
        removed = 0
        with self._conns.transaction() as conn:
            if not _scalar(conn, _HOUSEKEEPING_LOCK):
                return 0  # another gateway is doing it
            removed += conn.execute(
                "DELETE FROM log_default WHERE partition = %s AND received_at < %s AND seq <= %s",
                (self.partition, received_before, processed_up_to),
            ).rowcount
            for name, _, upper in self._children(conn):
                if upper > received_before:
                    continue
                table = sql.Identifier(name)
                unprocessed = conn.execute(
                    sql.SQL(
                        "SELECT EXISTS (SELECT 1 FROM {} l LEFT JOIN offsets o USING (partition)"
                        " WHERE l.seq > coalesce(o.seq, 0))"
                    ).format(table)
                ).fetchone()
                if unprocessed is None or unprocessed[0]:
                    continue
                count = _scalar(conn, sql.SQL("SELECT count(*) FROM {}").format(table))
                conn.execute(sql.SQL("DROP TABLE {}").format(table))
                log.info("log retention dropped %s (%s requests)", name, count)
                removed += int(str(count))
        self.prepare_partitions(now_us(), days_before=0)
        return removed

    def prepare_partitions(self, now: int, days_before: int = 1) -> None:
        """Create the daily children from ``days_before`` to ``_DAYS_AHEAD`` days ahead."""
        with self._conns.transaction() as conn:
            if not _scalar(conn, _HOUSEKEEPING_LOCK):
                return
            existing = {name for name, _, _ in self._children(conn)}
            for name, lower, upper in day_partitions(now, days_before):
                if name in existing:
                    continue
                try:
                    with conn.transaction():
                        conn.execute(
                            sql.SQL(
                                "CREATE TABLE {} PARTITION OF log FOR VALUES FROM ({}) TO ({})"
                            ).format(sql.Identifier(name), sql.Literal(lower), sql.Literal(upper))
                        )
                except psycopg.errors.CheckViolation:
                    # rows for that day already sit in the DEFAULT child; they stay there and
                    # are trimmed row by row
                    log.warning("cannot create %s: its rows are in log_default", name)

    def _children(self, conn: psycopg.Connection[tuple[object, ...]]) -> list[tuple[str, int, int]]:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'log'::regclass AND c.relname ~ '^log_d[0-9]{8}$'"
        ).fetchall()
        children = []
        for (name,) in rows:
            date = datetime.strptime(str(name)[5:], "%Y%m%d").replace(tzinfo=UTC)
            lower = int(date.timestamp()) * 1_000_000
            children.append((str(name), lower, lower + _DAY_US))
        return sorted(children, key=lambda child: child[1])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
            self.release()
        self._conns.close()


def _scalar(conn: psycopg.Connection[tuple[object, ...]], query: sql.Composable | str) -> object:
    row = conn.execute(query).fetchone()  # type: ignore[arg-type]
    return row[0] if row else None
