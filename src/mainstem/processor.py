"""The processor stage: reads the event log in order and commits what it produces with its new
offset in one transaction (DESIGN §2), so a crash replays and never doubles.

Today's stages: unpack + normalize (:mod:`mainstem.intake`), user suppression
(:mod:`mainstem.suppression`: a suppressed userId's messages are dropped, counted), tracking plans
(:mod:`mainstem.plans.governance`: violations, omissions, blocking, forwarding), messageId dedupe
(inside the commit), event store, rejections. Later stages (identity, routing) slot in between
unpack and commit.
"""

from __future__ import annotations

import logging
import threading
import time

import msgspec

from mainstem.intake import Accepted, Limits, Outcome, Rejected, unpack
from mainstem.logrecord import LogRecord
from mainstem.plans.governance import Governance, SourcePlan, forwarded, violation_event
from mainstem.storage import (
    Batch,
    EventLog,
    PipelineStore,
    StoredEvent,
    StoredRejection,
    StoredViolation,
)
from mainstem.suppression import RELOAD_INTERVAL, SuppressedUsers, is_suppressed
from mainstem.timestamps import now_us

log = logging.getLogger(__name__)


class Processor:
    def __init__(
        self,
        eventlog: EventLog,
        store: PipelineStore,
        *,
        limits: Limits,
        dedupe_window: float,
        batch_records: int = 256,
        plans: tuple[SourcePlan, ...] = (),
        suppression_interval: float = RELOAD_INTERVAL,
    ) -> None:
        self.eventlog = eventlog
        self.governance = Governance(plans) if plans else None
        self.store = store
        self.limits = limits
        self.dedupe_window = int(dedupe_window * 1_000_000)
        self.batch_records = batch_records
        self.suppression = SuppressedUsers(
            store.suppression_version, store.suppressed, interval=suppression_interval
        )

    def run_once(self) -> int:
        """Process the next run of log records; returns how many records (0 when caught up)."""
        partition = self.eventlog.partition
        offset = self.store.offset(partition)
        records = self.eventlog.read(offset, self.batch_records)
        if not records:
            return 0
        batch = Batch(partition=partition, offset=records[-1].seq, dedupe_window=self.dedupe_window)
        suppressed = self.suppression.current()
        for record in records:
            outcomes = self._unpack(record, partition)
            if record.path_type is None:
                _count_batch_outcome(batch, record.source_id, outcomes)
            for outcome in outcomes:
                if isinstance(outcome, Accepted):
                    # reference §6.4: before dedupe and storage, so no later stage sees it
                    if suppressed and is_suppressed(outcome.message, suppressed):
                        key = ("events_suppressed", record.source_id)
                        batch.counts[key] = batch.counts.get(key, 0) + 1
                    elif self.governance is None:
                        batch.events.append(
                            (
                                record.source_id,
                                StoredEvent.of(outcome.message, record.received_at, outcome.body),
                            )
                        )
                    else:
                        self._govern(batch, record, outcome, self.governance)
                else:
                    batch.rejections.append(
                        (
                            record.source_id,
                            record.seq,
                            record.received_at,
                            StoredRejection(outcome.code, outcome.reason, outcome.payload),
                        )
                    )
        result = self.store.commit(batch)
        log.debug(
            "processed %d records: %d stored, %d duplicates, %d rejected",
            len(records),
            result.stored,
            result.duplicates,
            len(batch.rejections),
        )
        return len(records)

    def _govern(
        self, batch: Batch, record: LogRecord, outcome: Accepted, governance: Governance
    ) -> None:
        """Tracking plan enforcement (reference §1.5): the violations go into the same commit as
        the event, so a replay records them once."""
        source_id, message = record.source_id, outcome.message
        decision = governance.decide(source_id, message)
        if decision is None:
            batch.events.append(
                (source_id, StoredEvent.of(message, record.received_at, outcome.body))
            )
            return
        spec = governance.sources[source_id]
        for finding in decision.findings:
            violation = finding.violation
            batch.violations.append(
                (
                    source_id,
                    StoredViolation(
                        message_id=message["messageId"],
                        received_at=record.received_at,
                        message_type=message["type"],
                        event=decision.name,
                        event_version=decision.version,
                        plan=spec.plan.name,
                        type=violation.type,
                        field=violation.field,
                        description=violation.description,
                        action=finding.action,
                        payload=outcome.body,
                    ),
                )
            )
        target = spec.enforcement.forward_violations_to
        if target is not None:
            for index, finding in enumerate(decision.findings):
                event = violation_event(spec, message, finding, index)
                batch.events.append(
                    (target, StoredEvent.of(event, record.received_at, _encode(event)))
                )
        if decision.message is None:
            key = ("events_blocked", f"{source_id}/{message['type']}")
            batch.counts[key] = batch.counts.get(key, 0) + 1
            target = spec.enforcement.forward_blocked_to
            if target is not None:
                moved = forwarded(message, source_id)
                batch.events.append(
                    (target, StoredEvent.of(moved, record.received_at, _encode(moved)))
                )
            return
        body = outcome.body if decision.message is message else _encode(decision.message)
        batch.events.append((source_id, StoredEvent.of(decision.message, record.received_at, body)))

    def _unpack(self, record: LogRecord, partition: str) -> list[Outcome]:
        """Never let one record stop the pipeline: what cannot be processed is rejected whole,
        with its body kept, and the processor moves on."""
        try:
            return unpack(record, partition, self.limits)
        except Exception as exc:
            log.exception("could not process log record %s:%d", partition, record.seq)
            return [
                Rejected(
                    "unprocessable", f"this request could not be processed: {exc!r}", record.body
                )
            ]

    def drain(self) -> int:
        """Process until caught up with the log; returns how many records."""
        total = 0
        while count := self.run_once():
            total += count
        return total

    def run(self, stop: threading.Event, *, idle: float = 0.01, expire_every: float = 60.0) -> None:
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


_encode = msgspec.json.Encoder().encode


def _count_batch_outcome(batch: Batch, source_id: str, outcomes: list[Outcome]) -> None:
    """Segment's batch-level discard reasons (reference §1.7): nothing left of the batch, or
    some of its messages failed while the rest were published."""
    failed = sum(1 for outcome in outcomes if not isinstance(outcome, Accepted))
    if not failed or (len(outcomes) == 1 and getattr(outcomes[0], "code", "") == "empty_batch"):
        return
    code = "empty_batch_result" if failed == len(outcomes) else "multi_user_error"
    key = ("batches_with_rejections", f"{source_id}/{code}")
    batch.counts[key] = batch.counts.get(key, 0) + 1
