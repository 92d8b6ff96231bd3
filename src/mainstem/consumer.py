"""The processor on PostgreSQL: one worker consumes the log partitions it holds leases on.

Workers on any number of machines divide the log partitions among themselves through
:class:`~mainstem.storage.postgres.leases.WorkerLeases` (heartbeats, fair share, ``FOR UPDATE
SKIP LOCKED``). A partition is processed by one worker at a time, in seq order, so per-user order
within a partition is kept; each commit is fenced by the lease, so a worker that was paused or
cut off while its partition moved cannot commit the same records twice.

Destinations are divided the same way: each enabled destination's courier runs on the one worker
holding its delivery lease, tailing the event store (whose seqs commit in order, so a cursor
never skips an event) and moving a cursor fenced by that lease. A dead or paused worker's
destinations move with its partitions; the batch it had in flight is sent again by the new
holder — at-least-once, as on one machine.
"""

from __future__ import annotations

import logging
import threading
import time

from mainstem.destinations.courier import Running
from mainstem.destinations.spec import Destination
from mainstem.errors import LeaseLost
from mainstem.intake import Limits
from mainstem.plans.governance import SourcePlan
from mainstem.processor import Processor
from mainstem.storage.postgres.delivery import PostgresDeliveryState
from mainstem.storage.postgres.eventlog import PostgresEventLog, owner_token
from mainstem.storage.postgres.leases import WorkerLeases
from mainstem.storage.postgres.pipeline import PostgresPipelineStore
from mainstem.timestamps import now_us

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
    ) -> None:
        self.url = url
        self.plans = plans
        self.destinations = {d.id: d for d in destinations if d.enabled}
        self.owner = owner_token()
        self.limits = limits
        self.dedupe_window = dedupe_window
        self.lease_ttl = lease_ttl
        self.leases = WorkerLeases(url, owner=self.owner, ttl=lease_ttl)
        self.store = PostgresPipelineStore(url, fsync=fsync, owner=self.owner)
        self.processors: dict[str, Processor] = {}
        self.delivery = PostgresDeliveryState(url, owner=self.owner)
        self.couriers: dict[str, tuple[Running, threading.Event]] = {}
        self._stopped: list[Running] = []

    def _rebalance(self) -> None:
        share = self.leases.heartbeat(list(self.destinations))
        self._deliver(share.destinations)
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

    def _deliver(self, held: list[str]) -> None:
        """Run a courier for each destination this worker holds, and only for those."""
        for destination_id in set(self.couriers) - set(held):
            log.info("destination %s moved to another worker", destination_id)
            running, stop = self.couriers.pop(destination_id)
            stop.set()
            self._stopped.append(running)
        for destination_id in held:
            running_now = self.couriers.get(destination_id)
            if running_now is not None and not running_now[0].thread.is_alive():
                self._stopped.append(self.couriers.pop(destination_id)[0])  # it lost the lease
            if destination_id not in self.couriers:
                stop = threading.Event()
                destination = self.destinations[destination_id]
                running = Running(destination, self.store, self.delivery, stop)
                self.couriers[destination_id] = (running, stop)

    def close(self) -> None:
        """Give the leases back so the partitions move at once; idempotent."""
        for running, stop in self.couriers.values():
            stop.set()
            self._stopped.append(running)
        self.couriers.clear()
        for running in self._stopped:
            running.join()
        self._stopped.clear()
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
