"""What ``mainstem status`` shows for a PostgreSQL deployment: log partitions with their
appending gateway, worker and lag; destinations with their delivering worker and queue depth;
live workers; the daily log tables; table sizes."""

from __future__ import annotations

from dataclasses import dataclass

from mainstem.storage.postgres.connection import connect


@dataclass(frozen=True, slots=True)
class PartitionStatus:
    partition: str
    last_seq: int
    offset: int
    gateway: str | None
    """The appending gateway's host:port, when its lease is current."""
    worker: str | None
    """The lease owner processing it, when its lease is current."""

    @property
    def lag(self) -> int:
        return max(0, self.last_seq - self.offset)


@dataclass(frozen=True, slots=True)
class DestinationStatus:
    destination: str
    cursor: int
    """The last event-store seq the destination handled."""
    queued: int
    """Stored events after the cursor: the destination's queue depth."""
    dead_letters: int
    worker: str | None
    """The worker delivering to it, when its lease is current."""


@dataclass(frozen=True, slots=True)
class Status:
    partitions: list[PartitionStatus]
    destinations: list[DestinationStatus]
    workers: list[tuple[str, float]]
    """(owner, seconds since its last heartbeat)."""
    log_tables: list[tuple[str, int]]
    """(daily log table, approximate rows)."""
    sizes: dict[str, int]
    """Table → bytes on disk, indexes and TOAST included."""
    dedupe_ids: int


def status(url: str) -> Status:
    with connect(url) as conn:
        partitions = [
            PartitionStatus(
                str(partition),
                int(str(last_seq)),
                int(str(offset)),
                None if holder is None else str(holder),
                None if worker is None else str(worker),
            )
            for partition, last_seq, offset, holder, worker in conn.execute(
                "SELECT p.partition, p.last_seq, coalesce(o.seq, 0), "
                "CASE WHEN p.lease_until > now() THEN coalesce(p.holder, p.owner) END, "
                "CASE WHEN l.expires_at > now() THEN l.owner END "
                "FROM log_partitions p LEFT JOIN offsets o USING (partition) "
                "LEFT JOIN leases l USING (partition) "
                "ORDER BY length(p.partition), p.partition"
            ).fetchall()
        ]
        destinations = [
            DestinationStatus(
                str(name),
                int(str(cursor)),
                int(str(queued)),
                int(str(dead)),
                None if worker is None else str(worker),
            )
            for name, cursor, queued, dead, worker in conn.execute(
                "SELECT c.destination, c.seq, "
                "(SELECT count(*) FROM events e WHERE e.seq > c.seq), c.dead, "
                "CASE WHEN l.expires_at > now() THEN l.owner END "
                "FROM cursors c "
                "LEFT JOIN task_leases l ON l.task = 'destination:' || c.destination "
                "ORDER BY c.destination"
            ).fetchall()
        ]
        workers = [
            (str(owner), float(str(age)))
            for owner, age in conn.execute(
                "SELECT owner, extract(epoch FROM now() - heartbeat_at) FROM workers ORDER BY owner"
            ).fetchall()
        ]
        log_tables = [
            (str(name), max(0, int(str(rows))))
            for name, rows in conn.execute(
                "SELECT c.relname, c.reltuples::bigint FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'log'::regclass ORDER BY c.relname"
            ).fetchall()
        ]
        sizes = {
            str(name): int(str(size))
            for name, size in conn.execute(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' "
                "ORDER BY c.relname"
            ).fetchall()
        }
        row = conn.execute("SELECT count(*) FROM dedupe").fetchone()
    return Status(
        partitions, destinations, workers, log_tables, sizes, int(str(row[0])) if row else 0
    )
