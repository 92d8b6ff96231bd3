"""The processor on PostgreSQL: one worker consumes the log partitions it holds leases on.

Workers on any number of machines divide the log partitions among themselves through
:class:`~mainstem.storage.postgres.leases.WorkerLeases` (heartbeats, fair share, ``FOR UPDATE
SKIP LOCKED``). A partition is processed by one worker at a time, in seq order, so per-user order
within a partition is kept; each commit is fenced by the lease, so a worker that was paused or
cut off while its partition moved cannot commit the same records twice.
"""

from __future__ import annotations

import logging
import threading
import time

from mainstem.intake import Limits
from mainstem.plans.governance import SourcePlan
from mainstem.processor import Processor
from mainstem.storage.postgres.eventlog import PostgresEventLog, owner_token
from mainstem.storage.postgres.leases import LeaseLost, WorkerLeases
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
    ) -> None:
        self.url = url
        self.plans = plans
        self.owner = owner_token()
        self.limits = limits
        self.dedupe_window = dedupe_window
        self.lease_ttl = lease_ttl
        self.leases = WorkerLeases(url, owner=self.owner, ttl=lease_ttl)
        self.store = PostgresPipelineStore(url, fsync=fsync, owner=self.owner)
        self.processors: dict[str, Processor] = {}

    def _rebalance(self) -> None:
        share = self.leases.heartbeat()
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
        for processor in self.processors.values():
            processor.eventlog.close()
        self.processors.clear()
        try:
            self.leases.release()
        except Exception as exc:
            log.warning("could not release the worker leases: %s", exc)
        self.leases.close()
        self.store.close()
