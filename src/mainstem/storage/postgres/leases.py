"""Worker leases: how workers on many machines divide the log partitions among themselves.

Each worker heartbeats a row in ``workers``; a worker whose heartbeat is older than the lease
TTL is gone. Every log partition has a row in ``leases``. On each heartbeat a worker renews its
leases, computes its fair share (``ceil(partitions / live workers)``), gives back what it holds
beyond that share, and claims expired leases up to it with ``FOR UPDATE SKIP LOCKED``, so two
workers never wait on each other and never take the same partition. A dead worker's partitions
expire after one TTL and move; a new worker makes the others give back their excess on their
next heartbeat — no restart, no coordinator.

Leases only decide who *should* process a partition; correctness comes from the fence in
:meth:`PostgresPipelineStore.commit`, which locks the lease row and checks the owner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mainstem.errors import RetryLater
from mainstem.storage.postgres.connection import Connections


class LeaseLost(RetryLater):
    """Another process holds the lease on this log partition now (ours had expired); nothing
    was committed. A gateway appends to another partition, a worker drops the partition."""


@dataclass(frozen=True, slots=True)
class Share:
    held: list[str]
    """Log partitions this worker may process now, in order."""
    workers: int
    partitions: int


class WorkerLeases:
    """The lease side of one worker (``owner`` is its token). Call :meth:`heartbeat` at least
    every ``ttl / 3`` seconds, between processing runs."""

    def __init__(self, url: str, *, owner: str, ttl: float = 5.0) -> None:
        self.owner = owner
        self.ttl = ttl
        self._conns = Connections(url)

    def heartbeat(self) -> Share:
        """Renew, rebalance and return what this worker holds after it."""
        with self._conns.transaction() as conn:
            conn.execute(
                "INSERT INTO workers (owner) VALUES (%s) "
                "ON CONFLICT (owner) DO UPDATE SET heartbeat_at = now()",
                (self.owner,),
            )
            conn.execute(
                "DELETE FROM workers WHERE heartbeat_at < now() - make_interval(secs => %s)",
                (self.ttl,),
            )
            conn.execute(
                "INSERT INTO leases (partition) SELECT partition FROM log_partitions "
                "ON CONFLICT (partition) DO NOTHING"
            )
            live = _count(conn.execute("SELECT count(*) FROM workers").fetchone())
            total = _count(conn.execute("SELECT count(*) FROM leases").fetchone())
            target = math.ceil(total / max(live, 1))
            held = sorted(
                str(row[0])
                for row in conn.execute(
                    "UPDATE leases SET expires_at = now() + make_interval(secs => %s) "
                    "WHERE owner = %s RETURNING partition",
                    (self.ttl, self.owner),
                ).fetchall()
            )
            if len(held) > target:
                extra = held[target:]
                conn.execute(
                    "UPDATE leases SET owner = NULL, expires_at = '-infinity' "
                    "WHERE partition = ANY(%s) AND owner = %s",
                    (extra, self.owner),
                )
                held = held[:target]
            elif len(held) < target:
                claimed = conn.execute(
                    "UPDATE leases SET owner = %s, expires_at = now() + make_interval(secs => %s) "
                    "WHERE partition IN (SELECT partition FROM leases WHERE expires_at < now() "
                    "ORDER BY length(partition), partition LIMIT %s FOR UPDATE SKIP LOCKED) "
                    "RETURNING partition",
                    (self.owner, self.ttl, target - len(held)),
                ).fetchall()
                held = sorted({*held, *(str(row[0]) for row in claimed)})
        return Share(held=sorted(held, key=lambda p: (len(p), p)), workers=live, partitions=total)

    def release(self) -> None:
        """Give every lease back (a graceful stop) so the partitions move at once."""
        with self._conns.transaction() as conn:
            conn.execute(
                "UPDATE leases SET owner = NULL, expires_at = '-infinity' WHERE owner = %s",
                (self.owner,),
            )
            conn.execute("DELETE FROM workers WHERE owner = %s", (self.owner,))

    def close(self) -> None:
        """Idempotent."""
        self._conns.close()


def _count(row: tuple[object, ...] | None) -> int:
    return int(str(row[0])) if row else 0
