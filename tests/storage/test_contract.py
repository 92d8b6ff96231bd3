"""The storage contract: every backend passes the same suite (SQLite and PostgreSQL; a new backend
joins by adding its factories to BACKENDS)."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from mainstem.logrecord import LogRecord
from mainstem.storage import (
    Batch,
    EventLog,
    EventQuery,
    PipelineStore,
    RejectionQuery,
    StoredEvent,
    StoredRejection,
    StoredViolation,
    ViolationCount,
    ViolationQuery,
)
from mainstem.storage.postgres.eventlog import PostgresEventLog
from mainstem.storage.postgres.pipeline import PostgresPipelineStore
from mainstem.storage.sqlite.eventlog import SqliteEventLog
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore
from mainstem.suppression import Regulation
from tests.storage.postgres import fresh_schema

Backend = tuple[Callable[[Path, str], EventLog], Callable[[Path, str], PipelineStore]]
"""Factories of (log, store) from a temporary directory and a URL to an empty PostgreSQL schema."""
BACKENDS: dict[str, Backend] = {
    "sqlite": (
        lambda root, _: SqliteEventLog(root / "log-0.db"),
        lambda root, _: SqlitePipelineStore(root / "pipeline.db"),
    ),
    "postgresql": (
        lambda _, url: PostgresEventLog(url),
        lambda _, url: PostgresPipelineStore(url),
    ),
}
HOUR = 3_600_000_000


@pytest.fixture(params=sorted(BACKENDS))
def backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[EventLog, PipelineStore]]:
    make_log, make_store = BACKENDS[request.param]
    schema = fresh_schema() if request.param == "postgresql" else contextlib.nullcontext("")
    with schema as url:
        log, store = make_log(tmp_path, url), make_store(tmp_path, url)
        yield log, store
        log.close()
        store.close()
        log.close()  # close() is idempotent
        store.close()


def record(n: int, source: str = "web", received_at: int = 1_000) -> LogRecord:
    return LogRecord(
        source_id=source,
        received_at=received_at,
        body=b'{"n":%d}' % n,
        path_type="track" if n % 2 else None,
        client=bool(n % 3),
        ip="192.0.2.1",
    )


def event(message_id: str, received_at: int = 10 * HOUR, **fields: str) -> StoredEvent:
    return StoredEvent(
        message_id=message_id,
        type=fields.get("type", "track"),
        event=fields.get("event", "E"),
        user_id=fields.get("user_id"),
        anonymous_id=fields.get("anonymous_id"),
        received_at=received_at,
        body=b'{"messageId":"%s"}' % message_id.encode(),
    )


def test_log_append_assigns_increasing_seqs_and_reads_in_order(
    backend: tuple[EventLog, PipelineStore],
) -> None:
    log, _ = backend
    assert log.last_seq() == 0 and log.read(0, 10) == []
    assert log.append([record(1), record(2)]) == 2
    assert log.append([record(3)]) == 3
    records = log.read(0, 10)
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0] == LogRecord(
        source_id="web",
        received_at=1_000,
        body=b'{"n":1}',
        path_type="track",
        client=True,
        ip="192.0.2.1",
        seq=1,
    )
    assert [r.seq for r in log.read(1, 1)] == [2]
    assert log.last_seq() == 3


def test_log_trim_keeps_unprocessed_and_never_reuses_a_seq(
    backend: tuple[EventLog, PipelineStore],
) -> None:
    log, _ = backend
    log.append([record(1, received_at=1), record(2, received_at=2), record(3, received_at=3)])
    assert log.trim(received_before=10, processed_up_to=2) == 2
    assert [r.seq for r in log.read(0, 10)] == [3]
    assert log.trim(received_before=10, processed_up_to=3) == 1
    assert log.append([record(4)]) == 4  # a reused seq would hide it from the processor


def test_commit_stores_events_and_moves_the_offset(backend: tuple[EventLog, PipelineStore]) -> None:
    _, store = backend
    assert store.offset("0") == 0
    batch = Batch(
        partition="0",
        offset=7,
        events=[("web", event("a", user_id="u1")), ("web", event("b", anonymous_id="x"))],
    )
    result = store.commit(batch)
    assert (result.stored, result.duplicates) == (2, 0)
    assert store.offset("0") == 7
    rows = store.events(EventQuery())
    assert [r.body for r in rows] == [b'{"messageId":"b"}', b'{"messageId":"a"}']
    assert store.counters()[("events_stored", "web/track")] == 2


def test_dedupe_is_per_source_and_windowed(backend: tuple[EventLog, PipelineStore]) -> None:
    _, store = backend
    window = 24 * HOUR
    first = store.commit(
        Batch(
            "0",
            1,
            events=[
                ("web", event("m", received_at=HOUR)),
                ("web", event("m", received_at=HOUR)),
                ("ios", event("m", received_at=HOUR)),
            ],
            dedupe_window=window,
        )
    )
    assert (first.stored, first.duplicates) == (2, 1)
    inside = store.commit(
        Batch("0", 2, events=[("web", event("m", received_at=20 * HOUR))], dedupe_window=window)
    )
    assert inside.duplicates == 1
    after = store.commit(
        Batch("0", 3, events=[("web", event("m", received_at=26 * HOUR))], dedupe_window=window)
    )
    assert after.stored == 1  # remembered for the window only (reference §4)
    assert store.counters()[("events_duplicate", "")] == 2


def test_expire_forgets_old_message_ids(backend: tuple[EventLog, PipelineStore]) -> None:
    _, store = backend
    store.commit(
        Batch(
            "0",
            1,
            events=[
                ("web", event("old", received_at=HOUR)),
                ("web", event("new", received_at=30 * HOUR)),
            ],
        )
    )
    assert store.expire(now=30 * HOUR, dedupe_window=24 * HOUR) == 1


def test_a_failed_commit_changes_nothing(backend: tuple[EventLog, PipelineStore]) -> None:
    _, store = backend
    store.commit(Batch("0", 1, events=[("web", event("kept"))]))
    broken = StoredEvent(
        message_id="x",
        type="track",
        event=None,
        user_id=None,
        anonymous_id=None,
        received_at=HOUR,
        body=object(),
    )  # type: ignore[arg-type]
    with pytest.raises(Exception):  # noqa: B017 - any backend error will do
        store.commit(Batch("0", 2, events=[("web", event("lost")), ("web", broken)]))
    assert store.offset("0") == 1
    assert [r.body for r in store.events(EventQuery())] == [b'{"messageId":"kept"}']
    # the id of the rolled-back event was not remembered either
    assert store.commit(Batch("0", 2, events=[("web", event("lost"))])).stored == 1


def test_event_queries_filter_and_page(backend: tuple[EventLog, PipelineStore]) -> None:
    _, store = backend
    events = [
        ("web", event("m1", user_id="u1", received_at=HOUR)),
        ("web", event("m2", type="identify", user_id="u2", received_at=2 * HOUR)),
        ("ios", event("m3", anonymous_id="a1", event="Opened", received_at=3 * HOUR)),
        ("web", event("m4", user_id="u1", event="Paid", received_at=4 * HOUR)),
    ]
    store.commit(Batch("0", 1, events=events))

    def ids(**query: object) -> list[str]:
        rows = store.events(EventQuery(**query))  # type: ignore[arg-type]
        return [row.body.decode().split('"')[3] for row in rows]

    assert ids() == ["m4", "m3", "m2", "m1"]
    assert ids(source="ios") == ["m3"]
    assert ids(type="identify") == ["m2"]
    assert ids(event="Paid") == ["m4"]
    assert ids(user_id="u1") == ["m4", "m1"]
    assert ids(anonymous_id="a1") == ["m3"]
    assert ids(message_id="m2") == ["m2"]
    assert ids(since=3 * HOUR) == ["m4", "m3"]
    first_page = store.events(EventQuery(limit=2))
    assert ids(limit=2, before=first_page[-1].seq) == ["m2", "m1"]
    assert ids(after=first_page[-1].seq) == ["m4"]
    assert ids(after=0, limit=2) == ["m1", "m2"]


def test_rejections_are_stored_and_counted(backend: tuple[EventLog, PipelineStore]) -> None:
    _, store = backend
    store.commit(
        Batch(
            "0",
            3,
            rejections=[
                (
                    "web",
                    3,
                    HOUR,
                    StoredRejection("event_not_string", "event must be a string", b'{"event":1}'),
                ),
                ("ios", 3, HOUR, StoredRejection("no_user_anon_id", "needs an id", b"{}")),
            ],
        )
    )
    rows = store.rejections(RejectionQuery())
    assert [(r.source_id, r.code, r.reason, r.payload) for r in rows] == [
        ("ios", "no_user_anon_id", "needs an id", b"{}"),
        ("web", "event_not_string", "event must be a string", b'{"event":1}'),
    ]
    assert [r.code for r in store.rejections(RejectionQuery(code="no_user_anon_id"))] == [
        "no_user_anon_id"
    ]
    assert store.counters()[("events_rejected", "web/event_not_string")] == 1
    assert store.offset("0") == 3


def violation(
    message_id: str, received_at: int, field: str = "properties.total", **fields: object
) -> StoredViolation:
    return StoredViolation(
        message_id=message_id,
        received_at=received_at,
        message_type="track",
        event=str(fields.get("event", "Order Completed")),
        event_version=2,
        plan="web",
        type=str(fields.get("type", "Invalid Type")),
        field=field,
        description="Invalid type. Expected: number, given: string",
        action=str(fields.get("action", "allowed")),
        payload=b'{"messageId":"%s"}' % message_id.encode(),
    )


def test_violations_are_committed_with_the_events(backend: tuple[EventLog, PipelineStore]) -> None:
    _, store = backend
    found = [
        ("web", violation("m1", HOUR)),
        ("web", violation("m2", HOUR + 1, "properties.sku", type="Required", action="blocked")),
        ("web", violation("m3", 3 * HOUR + 5)),
        ("ios", violation("m4", 3 * HOUR, event="Opened")),
    ]
    store.commit(Batch("0", 4, events=[("web", event("m1"))], violations=found))
    rows = store.violations(ViolationQuery(after=0))
    assert [(r.source_id, r.violation) for r in rows] == found
    assert [r.violation.message_id for r in store.violations(ViolationQuery())] == [
        "m4",
        "m3",
        "m2",
        "m1",
    ]
    assert [r.violation.message_id for r in store.violations(ViolationQuery(type="Required"))] == [
        "m2"
    ]
    assert [r.violation.message_id for r in store.violations(ViolationQuery(source="ios"))] == [
        "m4"
    ]
    assert [
        r.violation.message_id
        for r in store.violations(ViolationQuery(event="Order Completed", since=2 * HOUR))
    ] == ["m3"]
    assert store.violation_counts(ViolationQuery(), HOUR) == [
        ViolationCount("ios", "Opened", "properties.total", "Invalid Type", 3 * HOUR, 1, 3 * HOUR),
        ViolationCount(
            "web", "Order Completed", "properties.total", "Invalid Type", 3 * HOUR, 1, 3 * HOUR + 5
        ),
        ViolationCount("web", "Order Completed", "properties.sku", "Required", HOUR, 1, HOUR + 1),
        ViolationCount("web", "Order Completed", "properties.total", "Invalid Type", HOUR, 1, HOUR),
    ]
    assert store.violation_counts(ViolationQuery(source="web"), 24 * HOUR) == [
        ViolationCount(
            "web", "Order Completed", "properties.total", "Invalid Type", 0, 2, 3 * HOUR + 5
        ),
        ViolationCount("web", "Order Completed", "properties.sku", "Required", 0, 1, HOUR + 1),
    ]
    counters = store.counters()
    assert counters[("violations", "web/Invalid Type")] == 2
    assert counters[("violations", "web/Required")] == 1
    assert counters[("violations", "ios/Invalid Type")] == 1


def test_a_failed_commit_stores_no_violations(backend: tuple[EventLog, PipelineStore]) -> None:
    _, store = backend
    broken = dataclasses.replace(violation("m2", HOUR), payload=object())  # type: ignore[arg-type]
    with pytest.raises(Exception):  # noqa: B017 - any backend error will do
        store.commit(Batch("0", 2, violations=[("web", violation("m1", HOUR)), ("web", broken)]))
    assert store.violations(ViolationQuery()) == []
    assert store.offset("0") == 0


def test_violations_of_a_duplicate_message_are_not_stored_again(
    backend: tuple[EventLog, PipelineStore],
) -> None:
    _, store = backend
    first = Batch(
        "0", 1, events=[("web", event("m1", HOUR))], violations=[("web", violation("m1", HOUR))]
    )
    store.commit(first)
    retry = Batch(
        "0",
        2,
        events=[("web", event("m1", 2 * HOUR)), ("web", event("m2", 2 * HOUR))],
        violations=[
            ("web", violation("m1", 2 * HOUR)),  # an SDK retry: the event is a duplicate
            ("web", violation("m2", 2 * HOUR)),
            ("web", violation("m3", 2 * HOUR, action="blocked")),  # blocked: no event
        ],
    )
    store.commit(retry)
    rows = store.violations(ViolationQuery(after=0))
    assert [(r.violation.message_id, r.violation.received_at) for r in rows] == [
        ("m1", HOUR),
        ("m2", 2 * HOUR),
        ("m3", 2 * HOUR),
    ]


def regulation(regulate_id: str, kind: str, *ids: str, at: int = HOUR) -> Regulation:
    return Regulation(regulate_id, at, kind, "USER_ID", ids)


def test_regulations_add_up_to_the_suppressed_set(backend: tuple[EventLog, PipelineStore]) -> None:
    _, store = backend
    assert store.suppressed() == frozenset()
    start = store.suppression_version()
    store.regulate(regulation("r1", "SUPPRESS_ONLY", "u1", "u2", "u3"))
    after_first = store.suppression_version()
    assert after_first != start
    assert store.suppressed() == {"u1", "u2", "u3"}
    store.regulate(regulation("r2", "UNSUPPRESS", "u2", "never-suppressed", at=2 * HOUR))
    assert store.suppression_version() not in (start, after_first)
    assert store.suppressed() == {"u1", "u3"}
    store.regulate(regulation("r3", "SUPPRESS_ONLY", "u1", "u2", at=3 * HOUR))
    assert store.suppressed() == {"u1", "u2", "u3"}


def test_regulations_are_kept_newest_first_and_found_by_id(
    backend: tuple[EventLog, PipelineStore],
) -> None:
    _, store = backend
    first = regulation("r1", "SUPPRESS_ONLY", "u1", "ü-ñ 2")
    second = regulation("r2", "UNSUPPRESS", "u1", at=2 * HOUR)
    third = regulation("r3", "SUPPRESS_ONLY", "u9", at=3 * HOUR)
    for item in (first, second, third):
        store.regulate(item)
    assert store.regulation("r1") == first
    assert store.regulation("nope") is None
    page = store.regulations(None, 2)
    assert [r for _, r in page] == [third, second]
    assert [r for _, r in store.regulations(page[-1][0], 2)] == [first]


def test_a_failed_regulation_changes_nothing(backend: tuple[EventLog, PipelineStore]) -> None:
    _, store = backend
    store.regulate(regulation("r1", "SUPPRESS_ONLY", "u1"))
    version = store.suppression_version()
    # the same id twice: the backend's integrity error
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.UniqueViolation)):
        store.regulate(regulation("r1", "SUPPRESS_ONLY", "u2"))
    assert store.suppressed() == {"u1"}
    assert store.suppression_version() == version
    assert [r.id for _, r in store.regulations(None, 10)] == ["r1"]
