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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import LiteralString

import psycopg
from psycopg import sql

from mainstem.storage.postgres.connection import Connections

Connection = psycopg.Connection[tuple[object, ...]]


@dataclass(frozen=True, slots=True)
class Share:
    held: list[str]
    """Log partitions this worker may process now, in order."""
    workers: int
    partitions: int
    tasks: list[str] = field(default_factory=list)
    """Singleton tasks this worker runs now, nowhere else (``destination:ID``, ``warehouse``)."""


@dataclass(frozen=True, slots=True)
class _Kind:
    table: str
    key: str


_PARTITIONS = _Kind("leases", "partition")
_TASKS = _Kind("task_leases", "task")


class WorkerLeases:
    """The lease side of one worker (``owner`` is its token). Call :meth:`heartbeat` at least
    every ``ttl / 3`` seconds, between processing runs."""

    def __init__(self, url: str, *, owner: str, ttl: float = 5.0) -> None:
        self.owner = owner
        self.ttl = ttl
        self._conns = Connections(url)

    def heartbeat(self, tasks: Sequence[str] = ()) -> Share:
        """Renew, rebalance and return what this worker holds after it: log partitions and,
        the same way, the singleton ``tasks`` it can run (each on one worker at a time)."""
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
            conn.execute(
                "INSERT INTO task_leases (task) SELECT unnest(%s::text[]) "
                "ON CONFLICT (task) DO NOTHING",
                (list(tasks),),
            )
            live = _count(conn.execute("SELECT count(*) FROM workers").fetchone())
            total = _count(conn.execute("SELECT count(*) FROM leases").fetchone())
            held = self._balance(conn, _PARTITIONS, live, None)
            running = self._balance(conn, _TASKS, live, list(tasks))
        return Share(held=held, workers=live, partitions=total, tasks=running)

    def _balance(
        self, conn: Connection, kind: _Kind, live: int, scope: list[str] | None
    ) -> list[str]:
        """Renew what this worker holds of ``kind`` (within ``scope``, when given), give back
        what exceeds its fair share and claim expired leases up to it."""
        params: dict[str, object] = {"owner": self.owner, "ttl": self.ttl, "scope": scope}
        names = {"table": sql.Identifier(kind.table), "key": sql.Identifier(kind.key)}
        within = (
            sql.SQL("TRUE") if scope is None else sql.SQL("{key} = ANY(%(scope)s)").format(**names)
        )

        def run(query: LiteralString) -> list[str]:
            statement = sql.SQL(query).format(within=within, **names)
            return [str(row[0]) for row in conn.execute(statement, params).fetchall()]

        total = len(run("SELECT {key} FROM {table} WHERE {within}"))
        target = math.ceil(total / max(live, 1))
        held = sorted(
            run(
                "UPDATE {table} SET expires_at = now() + make_interval(secs => %(ttl)s) "
                "WHERE owner = %(owner)s AND {within} RETURNING {key}"
            ),
            key=_order,
        )
        if len(held) > target:
            params["extra"] = held[target:]
            run(
                "UPDATE {table} SET owner = NULL, expires_at = '-infinity' "
                "WHERE {key} = ANY(%(extra)s) AND owner = %(owner)s RETURNING {key}"
            )
            held = held[:target]
        elif len(held) < target:
            params["wanted"] = target - len(held)
            claimed = run(
                "UPDATE {table} SET owner = %(owner)s, "
                "expires_at = now() + make_interval(secs => %(ttl)s) "
                "WHERE {key} IN (SELECT {key} FROM {table} WHERE expires_at < now() AND {within} "
                "ORDER BY length({key}), {key} LIMIT %(wanted)s FOR UPDATE SKIP LOCKED) "
                "RETURNING {key}"
            )
            held = sorted({*held, *claimed}, key=_order)
        return held

    def release(self) -> None:
        """Give every lease back (a graceful stop) so the partitions move at once."""
        with self._conns.transaction() as conn:
            for table in ("leases", "task_leases"):
                conn.execute(
                    sql.SQL(
                        "UPDATE {} SET owner = NULL, expires_at = '-infinity' WHERE owner = %s"
                    ).format(sql.Identifier(table)),
                    (self.owner,),
                )
            conn.execute("DELETE FROM workers WHERE owner = %s", (self.owner,))

    def close(self) -> None:
        """Idempotent."""
        self._conns.close()


def _order(name: str) -> tuple[int, str]:
    """Numeric partition names in numeric order (``2`` before ``10``)."""
    return (len(name), name)


def _count(row: tuple[object, ...] | None) -> int:
    return int(str(row[0])) if row else 0
