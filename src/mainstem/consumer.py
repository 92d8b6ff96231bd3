"""The processor on PostgreSQL: one worker consumes the log partitions it holds leases on.

Workers on any number of machines divide the log partitions among themselves through
:class:`~mainstem.storage.postgres.leases.WorkerLeases` (heartbeats, fair share, ``FOR UPDATE
SKIP LOCKED``). A partition is processed by one worker at a time, in seq order, so per-user order
within a partition is kept; each commit is fenced by the lease, so a worker that was paused or
cut off while its partition moved cannot commit the same records twice.

Singleton tasks are divided the same way (:mod:`mainstem.tasks`): each enabled destination's
courier, the warehouse loader and the identity resolver run on the one worker holding the task's
lease. A courier
tails the event store (whose seqs commit in order, so a cursor never skips an event) and moves
a cursor fenced by that lease. A dead or paused worker's tasks move with its partitions; the
batch a courier had in flight is sent again by the new holder — at-least-once, as on one
machine. The warehouse loader's commits check its position under a lock in the warehouse, and the
resolver's check its position under a row lock in the profiles tables, so a stale one cannot
apply a batch twice.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import partial
from typing import Any

from mainstem.destinations.courier import Running
from mainstem.destinations.spec import Destination
from mainstem.errors import LeaseLost
from mainstem.identity.spec import IdentitySpec
from mainstem.intake import Limits
from mainstem.plans.governance import SourcePlan
from mainstem.processor import Processor
from mainstem.storage.postgres.delivery import PostgresDeliveryState, task
from mainstem.storage.postgres.eventlog import PostgresEventLog, owner_token
from mainstem.storage.postgres.leases import WorkerLeases
from mainstem.storage.postgres.pipeline import PostgresPipelineStore
from mainstem.tasks import Handle, Start, Tasks
from mainstem.timestamps import now_us
from mainstem.warehouse.dialects import Dialect
from mainstem.warehouse.service import start_loader

log = logging.getLogger(__name__)


class Consumer:
    def __init__(
        self,
        url: str,
        *,
        limits: Limits,
        dedupe_window: float,
        lease_ttl: float = 5.0,
        fsync: bool = True,
        plans: tuple[SourcePlan, ...] = (),
        destinations: tuple[Destination, ...] = (),
        warehouse: tuple[Dialect, float, int] | None = None,
        identity: tuple[IdentitySpec, int] | None = None,
    ) -> None:
        """``warehouse``: the engine, load interval and batch size of the warehouse loader;
        ``identity``: the rules and batch size of the identity resolver (``None``: off)."""
        self.url = url
        self.plans = plans
        destinations = tuple(d for d in destinations if d.enabled)
        self.owner = owner_token()
        self.limits = limits
        self.dedupe_window = dedupe_window
        self.lease_ttl = lease_ttl
        self.leases = WorkerLeases(url, owner=self.owner, ttl=lease_ttl)
        self.store = PostgresPipelineStore(url, fsync=fsync, owner=self.owner)
        self.processors: dict[str, Processor] = {}
        self.delivery = PostgresDeliveryState(url, owner=self.owner)
        starts: dict[str, Start] = {
            task(d.id): partial(Running, d, self.store, self.delivery) for d in destinations
        }
        if warehouse is not None:
            dialect, interval, batch_events = warehouse
            starts["warehouse"] = partial(
                _start_loader, dialect, self.store, interval=interval, batch_events=batch_events
            )
        if identity is not None:
            spec, identity_batch = identity
            starts["identity"] = partial(
                _start_resolver, url, self.store, spec=spec, batch_events=identity_batch
            )
        self.tasks = Tasks(starts)

    def _rebalance(self) -> None:
        share = self.leases.heartbeat(self.tasks.names)
        self.tasks.hold(share.tasks)
        for partition in set(self.processors) - set(share.held):
            log.info("log partition %s moved to another worker", partition)
            self.processors.pop(partition).eventlog.close()
        for partition in share.held:
            if partition not in self.processors:
                log.info("processing log partition %s", partition)
                self.processors[partition] = Processor(
                    PostgresEventLog(self.url, partition=partition, migrate_schema=False),
                    self.store,
                    limits=self.limits,
                    dedupe_window=self.dedupe_window,
                    plans=self.plans,
                )

    def run(self, stop: threading.Event, *, idle: float = 0.01, expire_every: float = 60.0) -> None:
        """Loop until ``stop`` is set: heartbeat every ``lease_ttl / 4``, then one run over each
        held partition. A failed run is retried (nothing of it was committed)."""
        next_beat = 0.0
        next_expiry = time.monotonic() + expire_every
        try:
            while not stop.is_set():
                if time.monotonic() >= next_beat:
                    try:
                        self._rebalance()
                        next_beat = time.monotonic() + self.lease_ttl / 4
                    except Exception as exc:
                        log.warning("worker heartbeat failed (%s); retrying", exc)
                        stop.wait(min(1.0, self.lease_ttl / 4))
                        continue
                processed = 0
                for partition, processor in list(self.processors.items()):
                    try:
                        processed += processor.run_once()
                    except LeaseLost:
                        log.info("lost log partition %s to another worker", partition)
                        self.processors.pop(partition).eventlog.close()
                    except Exception:
                        log.exception("processing log partition %s failed; retrying", partition)
                        next_beat = 0.0  # reconnect and re-check the leases first
                        stop.wait(0.5)
                if time.monotonic() >= next_expiry:
                    next_expiry = time.monotonic() + expire_every
                    try:
                        self.store.expire(now_us(), int(self.dedupe_window * 1_000_000))
                    except Exception:
                        log.exception("dedupe expiry failed; will try again")
                if not processed:
                    stop.wait(idle)
        finally:
            self.close()

    def close(self) -> None:
        """Give the leases back so the partitions move at once; idempotent."""
        self.tasks.close()
        for processor in self.processors.values():
            processor.eventlog.close()
        self.processors.clear()
        try:
            self.leases.release()
        except Exception as exc:
            log.warning("could not release the worker leases: %s", exc)
        self.leases.close()
        self.delivery.close()
        self.store.close()


def _start_loader(
    dialect: Dialect, store: PostgresPipelineStore, stop: threading.Event, **options: Any
) -> Handle:
    thread = start_loader(dialect, store, stop, **options)
    assert thread is not None
    return thread


def _start_resolver(
    url: str,
    store: PostgresPipelineStore,
    stop: threading.Event,
    *,
    spec: IdentitySpec,
    batch_events: int,
) -> Handle:
    from mainstem.identity.postgres import PostgresProfileStore
    from mainstem.identity.resolver import start_with

    return start_with(PostgresProfileStore(url), store, stop, spec=spec, batch_events=batch_events)
