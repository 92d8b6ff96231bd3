"""The processor stage: reads the event log in order and commits what it produces with its new
offset in one transaction (DESIGN §2), so a crash replays and never doubles.

Today's stages: unpack + normalize (:mod:`mainstem.intake`), messageId dedupe (inside the
commit), event store, rejections. Later stages (tracking plans, identity, routing) slot in
between unpack and commit.
"""

from __future__ import annotations

import logging
import threading
import time

from mainstem.intake import Accepted, Limits, unpack
from mainstem.storage import Batch, EventLog, PipelineStore, StoredEvent, StoredRejection
from mainstem.timestamps import now_us

log = logging.getLogger(__name__)


class Processor:
    def __init__(self, eventlog: EventLog, store: PipelineStore, *, limits: Limits,
                 dedupe_window: float, batch_records: int = 256) -> None:
        self.eventlog = eventlog
        self.store = store
        self.limits = limits
        self.dedupe_window = int(dedupe_window * 1_000_000)
        self.batch_records = batch_records

    def run_once(self) -> int:
        """Process the next run of log records; returns how many records (0 when caught up)."""
        partition = self.eventlog.partition
        offset = self.store.offset(partition)
        records = self.eventlog.read(offset, self.batch_records)
        if not records:
            return 0
        batch = Batch(partition=partition, offset=records[-1].seq,
                      dedupe_window=self.dedupe_window)
        for record in records:
            for outcome in unpack(record, partition, self.limits):
                if isinstance(outcome, Accepted):
                    msg = outcome.message
                    batch.events.append((record.source_id, StoredEvent(
                        message_id=msg["messageId"], type=msg["type"],
                        event=msg.get("event") if msg["type"] == "track" else None,
                        user_id=msg.get("userId"), anonymous_id=msg.get("anonymousId"),
                        received_at=record.received_at, body=outcome.body)))
                else:
                    batch.rejections.append((record.source_id, record.seq, record.received_at,
                                             StoredRejection(outcome.code, outcome.reason,
                                                             outcome.payload, outcome.index)))
        result = self.store.commit(batch)
        log.debug("processed %d records: %d stored, %d duplicates, %d rejected", len(records),
                  result.stored, result.duplicates, len(batch.rejections))
        return len(records)

    def drain(self) -> int:
        """Process until caught up with the log; returns how many records."""
        total = 0
        while count := self.run_once():
            total += count
        return total

    def run(self, stop: threading.Event, *, idle: float = 0.01,
            expire_every: float = 60.0) -> None:
        """Loop until ``stop`` is set; a failed run is retried (nothing of it was committed)."""
        next_expiry = 0.0
        while not stop.is_set():
            try:
                processed = self.run_once()
                if time.monotonic() >= next_expiry:
                    next_expiry = time.monotonic() + expire_every
                    self.store.expire(now_us(), self.dedupe_window)
            except Exception:
                log.exception("processor run failed; retrying from the committed offset")
                processed = 0
                stop.wait(1.0)
            if not processed:
                stop.wait(idle)
