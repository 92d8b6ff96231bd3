"""Delivery against real loopback receivers: formats, auth, retries, dead letters, isolation."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mainstem.destinations import courier, fql, transports
from mainstem.destinations.courier import Courier, Timing
from mainstem.destinations.spec import Action, Destination, Endpoint, Filter
from mainstem.destinations.state import Attempt, SqliteDeliveryState
from mainstem.secret import Secret
from tests.destinations.conftest import Pipeline, Receiver, Reply, Serve, wait_for

FAST = Timing(backoff_base=0.01, backoff_cap=0.05, poll=0.01)


def webhook(receiver: Receiver, **changes: Any) -> Destination:
    secret = Secret(receiver.secret) if receiver.secret else None
    endpoint = Endpoint(receiver.url + "/hook", secret, (("X-Team", "growth"),), timeout=5.0)
    base: dict[str, Any] = {"id": "hooks", "type": "webhook", "endpoint": endpoint}
    return Destination(**(base | {"batch_interval": 0.0} | changes))


def forward(receiver: Receiver, **changes: Any) -> Destination:
    endpoint = Endpoint(receiver.url, Secret(receiver.secret or ""), timeout=5.0)
    base: dict[str, Any] = {"id": "chain", "type": "segment", "endpoint": endpoint}
    return Destination(**(base | {"batch_size": 20, "batch_interval": 0.0} | changes))


Make = Callable[[Destination], Courier]


@pytest.fixture
def make(pipeline: Pipeline, state: SqliteDeliveryState) -> Iterator[Make]:
    opened: list[transports.Transport] = []

    def build(destination: Destination) -> Courier:
        transport = transports.for_destination(destination)
        opened.append(transport)
        stop = threading.Event()
        return Courier(destination, pipeline.store, state, transport, stop, timing=FAST)

    yield build
    for transport in opened:
        transport.close()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[SqliteDeliveryState]:
    result = SqliteDeliveryState(tmp_path / "delivery.db")
    yield result
    result.close()


def drain(item: Courier) -> list[str]:
    steps = []
    while (step := item.run_once()) not in {"idle", "waiting"}:
        steps.append(step)
    return steps


def test_webhook_sends_signed_single_events_in_order(
    serve: Serve, pipeline: Pipeline, state: SqliteDeliveryState, make: Make
) -> None:
    receiver = serve(Receiver("webhook", secret="shh-secret"))
    ids = pipeline.tracks(5)
    item = make(webhook(receiver))
    assert drain(item) == ["delivered"] * 5
    assert receiver.refused == []
    assert [message["messageId"] for message in receiver.messages()] == ids
    first = receiver.requests[0]
    assert first.path == "/hook"
    assert first.headers["x-team"] == "growth"
    assert first.headers["user-agent"].startswith("Mainstem/")
    assert first.body["event"] == "Order Completed"
    progress = {p.destination: p for p in state.progress()}["hooks"]
    assert (progress.delivered, progress.filtered, progress.dead) == (5, 0, 0)
    assert progress.cursor == pipeline.store.events(courier.EventQuery(limit=1))[0].seq


def test_webhook_batches_are_arrays_signed_on_the_first_element(
    serve: Serve, pipeline: Pipeline, state: SqliteDeliveryState, make: Make
) -> None:
    receiver = serve(Receiver("webhook", secret="shh-secret"))
    ids = pipeline.tracks(7)
    item = make(webhook(receiver, batch_size=3))
    assert drain(item) == ["delivered"] * 3
    assert [len(request.body) for request in receiver.requests] == [3, 3, 1]
    assert receiver.refused == []
    assert [message["messageId"] for message in receiver.messages()] == ids


def test_a_wrong_secret_is_refused_and_dead_lettered(
    serve: Serve, pipeline: Pipeline, state: SqliteDeliveryState, make: Make
) -> None:
    receiver = serve(Receiver("webhook", secret="right-secret"))
    pipeline.tracks(2)
    destination = webhook(receiver)
    wrong = Destination(
        **{
            **{f: getattr(destination, f) for f in destination.__dataclass_fields__},
            "endpoint": Endpoint(destination.endpoint.url, Secret("wrong-secret")),
        }
    )
    item = make(wrong)
    assert drain(item) == ["dead", "dead"]
    assert receiver.refused == ["bad X-Signature", "bad X-Signature"]
    dead = state.dead_letters("hooks")
    assert [letter.reason for letter in dead] == ['discarded: HTTP 401: {"error":"nope"}'] * 2
    failed = state.attempts("hooks", failed=True)
    assert [(a.outcome, a.status, a.attempt) for a in failed] == [("dead", 401, 1)] * 2


def test_segment_forwarding_uses_v1_batch_and_basic_auth(
    serve: Serve, pipeline: Pipeline, state: SqliteDeliveryState, make: Make
) -> None:
    receiver = serve(Receiver("segment", secret="downstream-key"))
    ids = pipeline.tracks(45)
    item = make(forward(receiver))
    assert drain(item) == ["delivered"] * 3
    assert receiver.refused == []
    assert [len(request.body["batch"]) for request in receiver.requests] == [20, 20, 5]
    assert [message["messageId"] for message in receiver.messages()] == ids


def test_429_with_retry_after_and_5xx_bursts_are_retried_until_accepted(
    serve: Serve, pipeline: Pipeline, state: SqliteDeliveryState, make: Make
) -> None:
    script: dict[int, Reply] = {0: (429, {"Retry-After": "1"}), 1: (503, {}), 2: (500, {})}
    receiver = serve(Receiver("webhook", behaviour=lambda n: script.get(n, (200, {}))))
    ids = pipeline.tracks(2)
    item = make(webhook(receiver))
    started = time.monotonic()
    assert drain(item) == ["delivered", "delivered"]
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured
    assert [message["messageId"] for message in receiver.messages()] == ids
    attempts = [(a.outcome, a.status, a.attempt) for a in reversed(state.attempts("hooks"))]
    assert attempts == [
        ("retry", 429, 1),
        ("retry", 503, 2),
        ("retry", 500, 3),
        ("delivered", 200, 4),
        ("delivered", 200, 1),
    ]
    assert state.progress()[0].retries == 3


def test_after_the_retry_window_the_batch_is_dead_and_the_cursor_moves_on(
    serve: Serve, pipeline: Pipeline, state: SqliteDeliveryState, make: Make
) -> None:
    receiver = serve(Receiver("webhook", behaviour=lambda n: (502, {}) if n < 1000 else (200, {})))
    pipeline.tracks(1)
    item = make(webhook(receiver, retry_window=0.2))
    assert drain(item) == ["dead"]
    (letter,) = state.dead_letters("hooks")
    assert letter.reason.startswith("retry window 0.2s ran out after ")
    assert letter.reason.endswith(' attempt(s): HTTP 502: {"error":"nope"}')
    assert state.cursor("hooks") == letter.seq


def test_connection_refused_is_retried(
    pipeline: Pipeline, state: SqliteDeliveryState, make: Make
) -> None:
    pipeline.tracks(1)
    down = Destination("down", "webhook", Endpoint("http://127.0.0.1:9/x"), retry_window=0.1)
    item = make(down)
    assert drain(item) == ["dead"]
    (letter,) = state.dead_letters("down")
    assert "ConnectError" in letter.reason


def test_filtered_events_move_the_cursor_without_a_request(
    serve: Serve, pipeline: Pipeline, state: SqliteDeliveryState, make: Make
) -> None:
    receiver = serve(Receiver("webhook"))
    pipeline.tracks(3)
    pipeline.send({"type": "identify", "userId": "u1", "traits": {"a": 1}})
    item = make(webhook(receiver, types=("identify",)))
    assert drain(item) == ["delivered"]
    assert [message["type"] for message in receiver.messages()] == ["identify"]
    progress = state.progress()[0]
    assert (progress.delivered, progress.filtered) == (1, 3)


def test_a_partial_batch_waits_for_the_interval(
    serve: Serve, pipeline: Pipeline, state: SqliteDeliveryState, make: Make
) -> None:
    receiver = serve(Receiver("webhook"))
    pipeline.tracks(2)
    item = make(webhook(receiver, batch_size=10, batch_interval=0.3))
    assert item.run_once() == "waiting"
    assert receiver.requests == []
    wait_for(lambda: item.run_once() == "delivered", "the interval to pass")
    assert [len(request.body) for request in receiver.requests] == [2]


def test_a_batch_in_flight_at_stop_is_sent_again_after_a_restart(
    serve: Serve, pipeline: Pipeline, tmp_path: Path
) -> None:
    failing = threading.Event()
    failing.set()
    receiver = serve(
        Receiver("webhook", behaviour=lambda n: (503, {}) if failing.is_set() else (200, {}))
    )
    stop = threading.Event()
    join = courier.start([webhook(receiver)], pipeline.store, tmp_path, stop, timing=FAST)
    ids = pipeline.tracks(3)
    wait_for(lambda: receiver.answered >= 2, "a few failed attempts")
    stop.set()
    join()
    failing.clear()
    stop = threading.Event()
    join = courier.start([webhook(receiver)], pipeline.store, tmp_path, stop, timing=FAST)
    wait_for(lambda: len(receiver.messages()) == 3, "delivery after the restart")
    stop.set()
    join()
    assert [message["messageId"] for message in receiver.messages()] == ids


def test_isolation_one_down_one_rate_limited_one_healthy(
    serve: Serve, pipeline: Pipeline, tmp_path: Path
) -> None:
    """The issue's test: the healthy destination is unaffected while one is down for the whole
    sending phase and one answers 429 often; after recovery all three have every event, in
    order, with duplicates only from at-least-once redelivery of a batch in flight."""
    down_flag = threading.Event()
    down_flag.set()
    down = serve(
        Receiver("webhook", behaviour=lambda n: (503, {}) if down_flag.is_set() else (200, {}))
    )
    limited = serve(
        Receiver(
            "segment",
            secret="limited-key",
            behaviour=lambda n: (429, {"Retry-After": "0"}) if n % 2 == 0 else (200, {}),
        )
    )
    healthy = serve(Receiver("webhook", secret="healthy-secret"))
    destinations = [
        webhook(down, id="down", batch_size=10, retry_window=3600.0),
        forward(limited, id="limited", batch_size=10, rate_limit=400.0),
        webhook(healthy, id="healthy", batch_size=5),
    ]
    stop = threading.Event()
    join = courier.start(destinations, pipeline.store, tmp_path, stop, timing=FAST)
    try:
        ids = pipeline.tracks(120)
        wait_for(lambda: len(healthy.messages()) == 120, "the healthy destination")
        assert down.messages() == []  # still down, still retrying its first batch
        assert down.answered >= 1
        wait_for(lambda: len(limited.messages()) == 120, "the rate-limited destination")
        down_flag.clear()
        wait_for(lambda: len(down.messages()) == 120, "the recovered destination")
    finally:
        stop.set()
        join()
    for receiver in (down, limited, healthy):
        assert [message["messageId"] for message in receiver.messages()] == ids
        assert receiver.refused == []
    state = SqliteDeliveryState(tmp_path / "delivery.db")
    totals = {p.destination: (p.delivered, p.dead) for p in state.progress()}
    state.close()
    assert totals == {"down": (120, 0), "limited": (120, 0), "healthy": (120, 0)}


def test_slack_posts_the_rendered_template(
    serve: Serve, pipeline: Pipeline, state: SqliteDeliveryState, make: Make
) -> None:
    receiver = serve(Receiver("slack"))
    pipeline.tracks(2)
    endpoint = Endpoint(
        receiver.url + "/services/T0/B0/x",
        template="{{userId}} did *{{event}}* (n={{properties.n}}, {{context.missing}})",
    )
    item = make(Destination("chat", "slack", endpoint, batch_interval=0.0))
    assert drain(item) == ["delivered", "delivered"]
    assert receiver.refused == []
    assert receiver.messages() == [
        {"text": "u0 did *Order Completed* (n=0, )"},
        {"text": "u1 did *Order Completed* (n=1, )"},
    ]


def test_a_new_destination_starts_after_the_newest_stored_event(
    serve: Serve, pipeline: Pipeline, tmp_path: Path
) -> None:
    receiver = serve(Receiver("webhook"))
    pipeline.tracks(4)  # history: a replay away, not sent to a destination added later
    stop = threading.Event()
    join = courier.start([webhook(receiver)], pipeline.store, tmp_path, stop, timing=FAST)
    try:
        ids = pipeline.tracks(2)
        wait_for(lambda: len(receiver.messages()) == 2, "the new events")
    finally:
        stop.set()
        join()
    assert [message["messageId"] for message in receiver.messages()] == ids


def test_the_retry_window_survives_a_restart(
    serve: Serve, pipeline: Pipeline, state: SqliteDeliveryState, make: Make
) -> None:
    receiver = serve(Receiver("webhook", behaviour=lambda n: (503, {})))
    pipeline.tracks(1)
    destination = webhook(receiver, retry_window=3600.0)
    first = make(destination)
    first.stop.set()  # stops after the first failed attempt: the process going down
    assert first.run_once() == "stopped"
    since = state.failing_since("hooks")
    assert since is not None
    # an hour later the restarted courier dead-letters after one more attempt
    later = make(destination)
    state.record(Attempt("hooks", 1, 1, 1, 1, "retry", 503, "HTTP 503", at=since - 3600.0))
    assert state.failing_since("hooks") == since  # the first failure's time is kept
    conn = sqlite3.connect(state.path)
    with conn:
        conn.execute("UPDATE cursors SET failing_since = ?", (since - 3600.0,))
    conn.close()
    assert later.run_once() == "dead"
    (letter,) = state.dead_letters("hooks")
    assert letter.reason == (
        'retry window 3600s ran out after 1 attempt(s): HTTP 503: {"error":"nope"}'
    )
    assert state.failing_since("hooks") is None


def test_batches_are_sent_as_stored_unless_a_filter_removed_properties(
    serve: Serve, pipeline: Pipeline, state: SqliteDeliveryState, make: Make
) -> None:
    receiver = serve(Receiver("webhook", secret="shh-secret"))
    pipeline.tracks(4, properties={"email": "a@b.co", "plan": "pro"}, context={"ip": "1.2.3.4"})
    condition = "properties.plan = 'pro' and userId != 'u0'"
    strip = Filter(
        condition,
        fql.parse(condition),
        (Action("drop_properties", fields={"properties": ("email",), "context": ("ip",)}),),
    )
    item = make(webhook(receiver, batch_size=2, filters=(strip,)))
    assert drain(item) == ["delivered", "delivered"]
    assert receiver.refused == []  # signed over what was sent, both ways
    sent = receiver.messages()
    assert [m["properties"] for m in sent] == [{"email": "a@b.co", "plan": "pro"}] + [
        {"plan": "pro"}
    ] * 3
    assert [m["context"].get("ip") for m in sent] == ["1.2.3.4", None, None, None]


class SlowReceiver(Receiver):
    """Takes 50 ms per request and remembers how many requests it held at once."""

    def __init__(self, behaviour: Callable[[int], Reply] = lambda n: (200, {})) -> None:
        super().__init__("webhook", behaviour=behaviour)
        self.gauge = threading.Lock()
        self.inflight = 0
        self.peak = 0

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        with self.gauge:
            self.inflight += 1
            self.peak = max(self.peak, self.inflight)
        try:
            time.sleep(0.05)
            return super().handle(path, headers, raw)
        finally:
            with self.gauge:
                self.inflight -= 1


@pytest.mark.parametrize(("concurrency", "flaky"), [(1, False), (4, False), (4, True)])
def test_concurrency_sends_lanes_at_once_and_keeps_each_users_order(
    serve: Serve, pipeline: Pipeline, state: SqliteDeliveryState, concurrency: int, flaky: bool
) -> None:
    # flaky: every third request answers 503; its lane retries while the round waits for it
    receiver = serve(SlowReceiver(lambda n: (503, {}) if flaky and n % 3 == 0 else (200, {})))
    assert isinstance(receiver, SlowReceiver)
    destination = webhook(receiver, batch_size=5, concurrency=concurrency)
    lanes = [transports.for_destination(destination) for _ in range(concurrency)]
    courier_ = Courier(destination, pipeline.store, state, lanes, threading.Event(), timing=FAST)
    ids = pipeline.tracks(70)  # seven users, u0 … u6
    try:
        drain(courier_)
    finally:
        for lane in lanes:
            lane.close()
    received = receiver.messages()
    assert sorted(m["messageId"] for m in received) == sorted(ids)  # each once: no loss
    for user in {m["userId"] for m in received}:
        numbers = [m["properties"]["n"] for m in received if m["userId"] == user]
        assert numbers == sorted(numbers), f"{user}'s events out of order"
    # one request at a time, or several users' batches in flight together
    assert (receiver.peak == 1) if concurrency == 1 else (receiver.peak > 1)
    (progress,) = state.progress()
    assert (progress.cursor, progress.delivered) == (70, 70)
