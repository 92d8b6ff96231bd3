"""The storage port: what the pipeline needs from a database, and nothing more.

Two ports, each a tiny Protocol that a backend implements file for file
(``storage/sqlite/eventlog.py`` ↔ a future ``storage/postgres/eventlog.py``):

* :class:`EventLog` — the durable, ordered log of accepted requests, written by the gateway.
* :class:`PipelineStore` — what the processor produces (event store, rejections, violations,
  dedupe memory, counters) committed atomically with its position in the log, and the user
  suppressions it enforces (:mod:`mainstem.suppression`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, LiteralString, Protocol

import msgspec

from mainstem.logrecord import LogRecord
from mainstem.suppression import Regulation


class EventLog(Protocol):
    partition: str

    def append(self, records: Sequence[LogRecord]) -> int:
        """Commit ``records`` in one transaction, durably, and return the last assigned seq.

        Called from one writer thread only. On failure nothing was committed and the exception
        propagates to every request in the group, which answers 503 so the client retries.
        """
        ...

    def read(self, after: int, limit: int) -> list[LogRecord]:
        """Records with ``seq > after`` in order, at most ``limit`` of them."""
        ...

    def last_seq(self) -> int:
        """The seq of the newest record (0 for an empty log)."""
        ...

    def trim(self, received_before: int, processed_up_to: int) -> int:
        """Delete records older than ``received_before`` that the processor has passed."""
        ...

    def close(self) -> None:
        """Idempotent."""
        ...


@dataclass(frozen=True, slots=True)
class StoredEvent:
    message_id: str
    type: str
    event: str | None
    user_id: str | None
    anonymous_id: str | None
    received_at: int
    body: bytes

    @classmethod
    def of(cls, msg: Mapping[str, Any], received_at: int, body: bytes) -> StoredEvent:
        """The stored form of the normalized message ``msg`` whose JSON is ``body``."""
        return cls(
            message_id=msg["messageId"],
            type=msg["type"],
            event=msg.get("event") if msg["type"] == "track" else None,
            user_id=msg.get("userId"),
            anonymous_id=msg.get("anonymousId"),
            received_at=received_at,
            body=body,
        )


@dataclass(frozen=True, slots=True)
class StoredRejection:
    code: str
    reason: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class StoredViolation:
    """One tracking-plan violation of one message (reference §1.4)."""

    message_id: str
    received_at: int
    message_type: str
    event: str
    """What violations aggregate on: the track event, the page/screen name, or the type."""
    event_version: int | None
    plan: str
    type: str
    field: str
    description: str
    action: str
    """``allowed``, ``omitted`` or ``blocked``."""
    payload: bytes
    """The offending message as it arrived (before anything was omitted)."""

    def row(self) -> tuple[Any, ...]:
        """The values in the order of the ``violations`` table's columns after ``source_id``
        (both backends)."""
        return (
            self.received_at,
            self.message_id,
            self.message_type,
            self.event,
            self.event_version,
            self.plan,
            self.type,
            self.field,
            self.description,
            self.action,
            self.payload,
        )


@dataclass(slots=True)
class Batch:
    """Everything the processor produced for a run of log records, committed together."""

    partition: str
    offset: int
    events: list[tuple[str, StoredEvent]] = field(default_factory=list)
    """(source_id, event) pairs, in log order; duplicates are removed inside ``commit``."""
    rejections: list[tuple[str, int, int, StoredRejection]] = field(default_factory=list)
    """(source_id, log seq, received_at, rejection)."""
    dedupe_window: int = 86_400_000_000
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    """Further exactly-once counters to add, (name, label) → increment."""
    violations: list[tuple[str, StoredViolation]] = field(default_factory=list)
    """(source_id, violation), in log order."""

    def kept_violations(self, stored: Sequence[bool]) -> list[tuple[str, StoredViolation]]:
        """The violations to store, given which of ``events`` were stored: not those of a
        message whose only copies here were duplicates (an SDK retry is not a new violation).
        Violations of blocked messages have no event and are always kept."""
        copies: dict[tuple[str, str, int], bool] = {}
        for (source_id, event), kept in zip(self.events, stored, strict=True):
            key = (source_id, event.message_id, event.received_at)
            copies[key] = copies.get(key, False) or kept
        return [
            (source_id, v)
            for source_id, v in self.violations
            if copies.get((source_id, v.message_id, v.received_at), True)
        ]


@dataclass(frozen=True, slots=True)
class EventQuery:
    source: str | None = None
    type: str | None = None
    event: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    message_id: str | None = None
    since: int | None = None
    """Only events received at or after this time (µs since the epoch)."""
    before: int | None = None
    """Cursor: only rows with a smaller seq (newest-first paging)."""
    after: int | None = None
    """Tail: only rows with a larger seq, oldest first."""
    limit: int = 100


class EventRow(msgspec.Struct, frozen=True, gc=False):
    """One stored event as readers get it (a msgspec struct: thousands are built per read)."""

    seq: int
    source_id: str
    received_at: int
    body: bytes


@dataclass(frozen=True, slots=True)
class RejectionQuery:
    source: str | None = None
    code: str | None = None
    since: int | None = None
    before: int | None = None
    after: int | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class RejectionRow:
    seq: int
    source_id: str
    received_at: int
    code: str
    reason: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class ViolationQuery:
    source: str | None = None
    event: str | None = None
    type: str | None = None
    field: str | None = None
    since: int | None = None
    before: int | None = None
    after: int | None = None
    limit: int = 100


def conditions(
    query: EventQuery | RejectionQuery | ViolationQuery, mark: LiteralString
) -> tuple[LiteralString, list[Any]]:
    """The ``WHERE`` clause of ``query`` for either backend (``mark``: its placeholder, ``?`` or
    ``%s``) and the parameters, in order; empty when nothing is filtered."""
    tests: list[tuple[LiteralString, object]] = [
        ("source_id =", query.source),
        ("received_at >=", query.since),
        ("seq <", query.before),
        ("seq >", query.after),
    ]
    if isinstance(query, EventQuery):
        tests += [
            ("type =", query.type),
            ("event =", query.event),
            ("user_id =", query.user_id),
            ("anonymous_id =", query.anonymous_id),
            ("message_id =", query.message_id),
        ]
    elif isinstance(query, RejectionQuery):
        tests.append(("code =", query.code))
    else:
        tests += [("event =", query.event), ("type =", query.type), ("field =", query.field)]
    used = [(test, value) for test, value in tests if value is not None]
    if not used:
        return "", []
    clause: LiteralString = "WHERE " + " AND ".join(f"{test} {mark}" for test, _ in used)
    return clause, [value for _, value in used]


REGULATION_COLUMNS: LiteralString = (
    "seq, id, created_at, regulation_type, subject_type, subject_ids"
)
"""The ``regulations`` table's columns (both backends); ``subject_ids`` is a JSON array."""


def regulation_insert(mark: LiteralString) -> LiteralString:
    """The ``INSERT`` of one regulation, ``mark`` being the backend's placeholder; its
    parameters are :func:`regulation_row`."""
    marks: LiteralString = ", ".join([mark] * 5)
    return (
        "INSERT INTO regulations (id, created_at, regulation_type, subject_type, subject_ids) "
        f"VALUES ({marks})"
    )


def regulation_row(regulation: Regulation) -> tuple[str, int, str, str, str]:
    """A regulation as the parameters of :func:`regulation_insert`."""
    return (
        regulation.id,
        regulation.created_at,
        regulation.regulation_type,
        regulation.subject_type,
        json.dumps(regulation.subject_ids),
    )


def regulation_of(row: Sequence[object]) -> Regulation:
    """A regulation from its ``REGULATION_COLUMNS`` after ``seq``."""
    regulate_id, created_at, kind, subject_type, subject_ids = row
    return Regulation(
        str(regulate_id),
        int(str(created_at)),
        str(kind),
        str(subject_type),
        tuple(json.loads(str(subject_ids))),
    )


@dataclass(frozen=True, slots=True)
class ViolationRow:
    seq: int
    source_id: str
    violation: StoredViolation


@dataclass(frozen=True, slots=True)
class ViolationCount:
    source_id: str
    event: str
    field: str
    type: str
    bucket: int
    """Start of the time bucket (µs since the epoch)."""
    count: int
    last_seen: int


@dataclass(frozen=True, slots=True)
class CommitResult:
    stored: int
    duplicates: int


class PipelineStore(Protocol):
    def offset(self, partition: str) -> int:
        """The last log seq of ``partition`` whose outputs are committed (0 when none)."""
        ...

    def commit(self, batch: Batch) -> CommitResult:
        """Atomically: drop duplicate messageIds (per source, within the dedupe window), store
        the rest, store the rejections and violations, bump the counters and move the
        partition's offset.

        Called by the one processor that holds the partition. On failure nothing is committed
        and the processor retries the same records, so a crash never loses or doubles a row.
        """
        ...

    def events(self, query: EventQuery) -> list[EventRow]:
        """Stored events matching ``query``: newest first, or oldest first with ``after``."""
        ...

    def rejections(self, query: RejectionQuery) -> list[RejectionRow]:
        """Rejections matching ``query``, ordered as :meth:`events`."""
        ...

    def counters(self) -> dict[tuple[str, str], int]:
        """Exactly-once counters kept with the outputs: (name, label) → value."""
        ...

    def violations(self, query: ViolationQuery) -> list[ViolationRow]:
        """Tracking-plan violations matching ``query``, ordered as :meth:`events`."""
        ...

    def violation_counts(self, query: ViolationQuery, bucket: int) -> list[ViolationCount]:
        """Violations matching ``query`` counted per (source, event, field, type) and time
        bucket of ``bucket`` µs, newest bucket first, then most frequent first (``limit`` and
        the cursors do not apply)."""
        ...

    def expire(self, now: int, dedupe_window: int) -> int:
        """Forget messageIds first seen before ``now - dedupe_window``; returns how many."""
        ...

    def regulate(self, regulation: Regulation) -> None:
        """Atomically: record ``regulation`` and apply it to the suppressed user ids.

        Called by the admin API and the CLI on a writable store (not by the processor); the
        processor sees it at its next reload. On failure nothing is stored and the caller
        reports the error. A regulation id is stored once.
        """
        ...

    def regulation(self, regulate_id: str) -> Regulation | None:
        """The regulation with this id, or None."""
        ...

    def regulations(self, before: int | None, limit: int) -> list[tuple[int, Regulation]]:
        """(seq, regulation) pairs, newest first; ``before`` is a seq cursor."""
        ...

    def suppressed(self) -> frozenset[str]:
        """The user ids whose messages the processor drops."""
        ...

    def suppression_version(self) -> int:
        """A cheap marker that changes whenever :meth:`suppressed` may have changed."""
        ...

    def close(self) -> None:
        """Idempotent."""
        ...
