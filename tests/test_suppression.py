"""User suppression: the pure decisions, and the processor dropping a suppressed user's messages
through the real event log and event store."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from mainstem.errors import Unprocessable
from mainstem.intake import Limits
from mainstem.logrecord import LogRecord
from mainstem.processor import Processor
from mainstem.storage import EventLog, EventQuery, PipelineStore
from mainstem.storage.postgres.eventlog import PostgresEventLog
from mainstem.storage.postgres.pipeline import PostgresPipelineStore
from mainstem.storage.sqlite.eventlog import SqliteEventLog
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore
from mainstem.suppression import Regulation, SuppressedUsers, applied, parse
from tests.storage.postgres import fresh_schema

HOUR = 3_600_000_000


def body(
    kind: str = "SUPPRESS_ONLY", ids: Iterable[object] = ("u1",), subject: str = "USER_ID"
) -> object:
    return {"regulationType": kind, "subjectType": subject, "subjectIds": list(ids)}


def test_parse_keeps_ids_in_order_without_repeats() -> None:
    regulation = parse(body(ids=["b", "a", "b"]), now=5, regulate_id="r")
    assert regulation == Regulation("r", 5, "SUPPRESS_ONLY", "USER_ID", ("b", "a"))
    assert len(parse(body(), now=5).id) == 24


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            body("DELETE_ONLY"),
            "regulationType DELETE_ONLY is not supported: this version of Mainstem supports only "
            "SUPPRESS_ONLY and UNSUPPRESS (it deletes no data; `mainstem profile delete` deletes "
            "a profile)",
        ),
        (
            body("SUPPRESS"),
            'regulationType must be SUPPRESS_ONLY or UNSUPPRESS, got "SUPPRESS"',
        ),
        (
            body(subject="ANONYMOUS_ID"),
            'subjectType must be USER_ID, got "ANONYMOUS_ID" — suppression matches messages by '
            "userId only (ANONYMOUS_ID and OBJECT_ID are not supported)",
        ),
        (
            body(ids=[]),
            'subjectIds must be a non-empty list of user ids, got [] — e.g. "subjectIds": '
            '["user-1"]',
        ),
        (body(ids=["u1", ""]), 'subjectIds[1] must be a non-empty string (a userId), got ""'),
        (body(ids=["u1", 7]), "subjectIds[1] must be a non-empty string (a userId), got 7"),
        (body(ids=["u\x001"]), "subjectIds[0] holds a U+0000 character — remove it"),
        (
            body(ids=[f"u{n}" for n in range(5001)]),
            "subjectIds has 5001 ids; at most 5,000 per regulation — split them over several "
            "requests",
        ),
        (
            ["u1"],
            'the body must be a JSON object: {"regulationType": "SUPPRESS_ONLY", '
            '"subjectType": "USER_ID", "subjectIds": ["user-1"]}',
        ),
    ],
)
def test_parse_says_what_to_fix(payload: object, message: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        parse(payload, now=0)
    assert caught.value.message == message
    assert caught.value.status == 422


@pytest.mark.parametrize(
    "kind",
    [
        "DELETE_ONLY",
        "SUPPRESS_WITH_DELETE",
        "DELETE_INTERNAL",
        "SUPPRESS_WITH_DELETE_INTERNAL",
        "DELETE_ARCHIVE_ONLY",
    ],
)
def test_every_deletion_type_is_refused_by_name(kind: str) -> None:
    with pytest.raises(Unprocessable, match=f"^regulationType {kind} is not supported"):
        parse(body(kind), now=0)


def test_applied_adds_and_removes() -> None:
    on = parse(body(ids=["a", "b"]), now=0)
    off = parse(body("UNSUPPRESS", ids=["a", "z"]), now=0)
    assert applied(applied(frozenset(), on), off) == {"b"}


def test_suppressed_users_reload_only_when_due_and_changed() -> None:
    now, version, loads = [0.0], [1], []

    def load() -> frozenset[str]:
        loads.append(version[0])
        return frozenset({f"u{version[0]}"})

    users = SuppressedUsers(lambda: version[0], load, interval=1.0, clock=lambda: now[0])
    assert users.current() == {"u1"}
    version[0] = 2
    now[0] = 0.5
    assert users.current() == {"u1"}  # not due yet
    now[0] = 1.0
    assert users.current() == {"u2"}
    now[0] = 2.5
    assert users.current() == {"u2"}  # due, but unchanged: not loaded again
    assert loads == [1, 2]


def request(*messages: dict[str, object], source: str = "web") -> LogRecord:
    return LogRecord(
        source_id=source, received_at=10 * HOUR, body=json.dumps({"batch": list(messages)}).encode()
    )


def track(user_id: object = None, anonymous_id: str | None = None) -> dict[str, object]:
    message: dict[str, object] = {"type": "track", "event": "Clicked"}
    if user_id is not None:
        message["userId"] = user_id
    if anonymous_id is not None:
        message["anonymousId"] = anonymous_id
    return message


def stored_users(store: PipelineStore) -> list[tuple[object, object]]:
    rows = store.events(EventQuery(after=0, limit=1000))
    return [
        (message.get("userId"), message.get("anonymousId"))
        for message in (json.loads(row.body) for row in rows)
    ]


Opener = Callable[[], PipelineStore]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[EventLog, Opener]]:
    """The event log and an opener of the event store: the SQLite processor's files, or the
    PostgreSQL workers' tables (the same Processor class runs in both)."""
    if request.param == "sqlite":
        yield (
            SqliteEventLog(tmp_path / "log-0.db"),
            lambda: SqlitePipelineStore(tmp_path / "pipeline.db"),
        )
        return
    with fresh_schema() as url:
        yield PostgresEventLog(url), lambda: PostgresPipelineStore(url)


def test_the_processor_drops_a_suppressed_users_messages_until_unsuppressed(
    backend: tuple[EventLog, Opener],
) -> None:
    log, open_store = backend
    store = open_store()
    # what the admin API does: its own writable store, while the processor's stays open
    admin = open_store()
    processor = Processor(log, store, limits=Limits(), dedupe_window=86400, suppression_interval=0)
    admin.regulate(parse(body(ids=["42", "bad"]), now=HOUR))
    log.append(
        [
            request(track("bad"), track("good"), track(42), track(anonymous_id="anon-1")),
            request(track("bad", anonymous_id="anon-2"), source="backend"),
        ]
    )
    processor.drain()
    # userId 42 (a number on the wire) is the string "42" after normalization
    assert stored_users(store) == [("good", None), (None, "anon-1")]
    counters = store.counters()
    assert counters[("events_suppressed", "web")] == 2
    assert counters[("events_suppressed", "backend")] == 1
    assert counters[("events_stored", "web/track")] == 2

    admin.regulate(parse(body("UNSUPPRESS", ids=["bad"]), now=2 * HOUR))
    log.append([request(track("bad"), track(42))])
    processor.drain()
    assert stored_users(store)[2:] == [("bad", None)]
    assert store.counters()[("events_suppressed", "web")] == 3
    for closable in (admin, store, log):
        closable.close()


def test_a_regulation_applies_at_the_processors_next_reload(tmp_path: Path) -> None:
    """Within the reload interval the processor keeps the set it has; the regulation applies to
    what it processes after the next reload."""
    log = SqliteEventLog(tmp_path / "log-0.db")
    store = SqlitePipelineStore(tmp_path / "pipeline.db")
    processor = Processor(log, store, limits=Limits(), dedupe_window=86400, suppression_interval=60)
    log.append([request(track("u1"))])
    processor.drain()
    store.regulate(parse(body(ids=["u1"]), now=HOUR))
    log.append([request(track("u1"))])
    processor.drain()
    assert [user for user, _ in stored_users(store)] == ["u1", "u1"]  # not reloaded yet
    fresh = Processor(log, store, limits=Limits(), dedupe_window=86400)
    log.append([request(track("u1")), request(track("u2"))])
    fresh.drain()
    assert [user for user, _ in stored_users(store)] == ["u1", "u1", "u2"]
    store.close()
    log.close()
