"""The delivery state (destination cursors, attempts, dead letters) behaves the same on SQLite
and on PostgreSQL; on PostgreSQL only the worker holding a destination's delivery lease moves
its cursor."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mainstem.destinations.state import Attempt, DeadLetter, SqlDeliveryState, SqliteDeliveryState
from mainstem.errors import LeaseLost
from mainstem.storage.postgres.delivery import PostgresDeliveryState, task
from mainstem.storage.postgres.eventlog import PostgresEventLog
from mainstem.storage.postgres.leases import WorkerLeases
from mainstem.storage.postgres.pipeline import PostgresPipelineStore


@pytest.fixture(params=["sqlite", "postgres"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlDeliveryState]:
    if request.param == "sqlite":
        sqlite = SqliteDeliveryState(tmp_path / "delivery.db")
        yield sqlite
        sqlite.close()
        return
    url: str = request.getfixturevalue("postgres_url")
    PostgresPipelineStore(url).close()  # migrates
    postgres = PostgresDeliveryState(url)
    yield postgres
    postgres.close()


def attempt(outcome: str, first: int = 1, last: int = 5) -> Attempt:
    return Attempt("hook", first, last, last - first + 1, 1, outcome, 500, "HTTP 500", at=100.0)


def test_a_new_destination_begins_once(state: SqlDeliveryState) -> None:
    assert state.begin("hook", 7)
    assert not state.begin("hook", 9)
    assert state.cursor("hook") == 7
    assert state.cursor("other") == 0


def test_advance_moves_the_cursor_adds_totals_and_never_goes_back(
    state: SqlDeliveryState,
) -> None:
    state.begin("hook", 0)
    state.advance("hook", 10, delivered=8, dropped={"filter": 2})
    state.advance("hook", 4, delivered=3)  # a paused courier finishing an old batch late
    [progress] = state.progress()
    assert (progress.destination, progress.cursor, progress.delivered, progress.filtered) == (
        "hook",
        10,
        11,
        2,
    )


def test_dropped_events_are_counted_by_step_and_latency_is_kept(
    state: SqlDeliveryState,
) -> None:
    state.begin("hook", 0)
    state.begin("crm", 0)
    state.advance("hook", 4, dropped={"consent": 2, "filter": 1})
    state.advance("hook", 9, delivered=2, dropped={"consent": 1}, latency=0.25)
    state.advance("hook", 12, dropped={"type": 1})  # no delivery: latency stays
    assert state.dropped() == {"hook": {"consent": 3, "filter": 1, "type": 1}}
    progress = {p.destination: p for p in state.progress()}
    assert (progress["hook"].filtered, progress["hook"].latency) == (5, 0.25)
    assert progress["crm"].latency is None


def test_failed_attempts_start_the_retry_clock_until_the_cursor_moves(
    state: SqlDeliveryState,
) -> None:
    state.begin("hook", 0)
    assert state.failing_since("hook") is None
    state.record(attempt("retry"))
    state.record(Attempt("hook", 1, 5, 5, 2, "retry", 503, "HTTP 503", at=200.0))
    assert state.failing_since("hook") == 100.0
    assert [a.attempt for a in state.attempts("hook", failed=True)] == [2, 1]
    assert state.progress()[0].retries == 2
    state.advance("hook", 5, attempts=[Attempt("hook", 1, 5, 5, 3, "delivered", 200)], delivered=5)
    assert state.failing_since("hook") is None
    assert [a.outcome for a in state.attempts("hook")] == ["delivered", "retry", "retry"]
    assert [a.outcome for a in state.attempts("hook", failed=True)] == ["retry", "retry"]


def test_dead_letters_are_kept_in_order_and_marked_when_replayed(
    state: SqlDeliveryState,
) -> None:
    state.begin("hook", 0)
    dead = [
        DeadLetter("hook", seq, "web", 1_000 + seq, b'{"n": %d}' % seq, "HTTP 400")
        for seq in (1, 2, 3)
    ]
    state.advance("hook", 3, attempts=[attempt("dead", 1, 3)], dead=dead)
    letters = state.dead_letters("hook")
    assert [(d.seq, d.body, d.reason) for d in letters] == [
        (1, b'{"n": 1}', "HTTP 400"),
        (2, b'{"n": 2}', "HTTP 400"),
        (3, b'{"n": 3}', "HTTP 400"),
    ]
    state.mark_replayed([letters[0].id])
    assert [d.seq for d in state.dead_letters("hook")] == [2, 3]
    assert [d.seq for d in state.dead_letters("hook", pending=False)] == [1, 2, 3]
    assert state.dead_letters("hook", pending=False)[0].replayed_at is not None
    assert [d.seq for d in state.dead_letters("hook", after=letters[1].id)] == [3]
    assert state.progress()[0].dead == 3


def test_destinations_are_divided_among_workers_and_the_cursor_is_fenced(
    postgres_url: str,
) -> None:
    gateway = PostgresEventLog(postgres_url)
    store = PostgresPipelineStore(postgres_url)
    a = WorkerLeases(postgres_url, owner="a", ttl=0.5)
    b = WorkerLeases(postgres_url, owner="b", ttl=0.5)
    state_a = PostgresDeliveryState(postgres_url, owner="a")
    state_b = PostgresDeliveryState(postgres_url, owner="b")
    tasks = ["warehouse", *(task(name) for name in ("crm", "hook", "slack"))]
    try:
        assert a.heartbeat(tasks).tasks == tasks
        b.heartbeat(tasks)  # b joins: a gives back its excess on its next heartbeat
        assert a.heartbeat(tasks).tasks == ["warehouse", "destination:crm"]
        assert b.heartbeat(tasks).tasks == ["destination:hook", "destination:slack"]
        state_a.begin("crm", 0)
        state_a.advance("crm", 5, delivered=5)
        with pytest.raises(LeaseLost, match="destination crm is delivered by another worker"):
            state_b.advance("crm", 9, delivered=4)
        time.sleep(0.7)  # a is paused past its leases; b takes everything over
        assert b.heartbeat(tasks).tasks == tasks
        state_b.advance("crm", 9, delivered=4)
        with pytest.raises(LeaseLost):
            state_a.advance("crm", 7, delivered=2)  # a wakes up with its old batch
        assert state_a.cursor("crm") == 9
        assert [(p.destination, p.delivered) for p in state_a.progress()] == [("crm", 9)]
        b.release()
        assert a.heartbeat(tasks).tasks == tasks
    finally:
        for closable in (state_a, state_b, a, b, store, gateway):
            closable.close()
