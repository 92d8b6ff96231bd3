"""Destination functions through the real courier: a local HTTP sink receives what the function
sends; each error class is retried or dead-lettered as specified, and delivery goes on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mainstem.destinations import transports
from mainstem.destinations.courier import Courier, Timing
from mainstem.destinations.spec import Destination
from mainstem.destinations.state import SqliteDeliveryState
from tests.destinations.conftest import Pipeline, Receiver, Serve
from tests.functions.conftest import DELIVERING, MISBEHAVING, function_destination

FAST = Timing(backoff_base=0.01, backoff_cap=0.05, poll=0.01)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[SqliteDeliveryState]:
    result = SqliteDeliveryState(tmp_path / "delivery.db")
    yield result
    result.close()


class Run:
    def __init__(self, pipeline: Pipeline, state: SqliteDeliveryState) -> None:
        self.pipeline = pipeline
        self.state = state
        self.opened: list[transports.Transport] = []

    def courier(self, destination: Destination) -> Courier:
        transport = transports.for_destination(destination)
        self.opened.append(transport)
        return Courier(
            destination, self.pipeline.store, self.state, transport, threading.Event(), timing=FAST
        )

    def drain(self, destination: Destination) -> list[str]:
        item = self.courier(destination)
        steps = []
        while (step := item.run_once()) not in {"idle", "waiting"}:
            steps.append(step)
        return steps


@pytest.fixture
def run(pipeline: Pipeline, state: SqliteDeliveryState) -> Iterator[Run]:
    result = Run(pipeline, state)
    yield result
    for transport in result.opened:
        transport.close()


def send_tracks(pipeline: Pipeline, *names: str) -> None:
    pipeline.send(
        *(
            {"type": "track", "event": name, "userId": "u1", "messageId": f"m-{n}"}
            for n, name in enumerate(names)
        )
    )


def test_a_function_delivers_to_a_local_http_sink(
    serve: Serve, pipeline: Pipeline, run: Run, state: SqliteDeliveryState, tmp_path: Path
) -> None:
    sink = serve(Receiver("webhook"))
    destination = function_destination(
        tmp_path, DELIVERING, block=f", settings: {{url: '{sink.url}'}}"
    )
    send_tracks(pipeline, "Signed Up", "Upgraded")
    pipeline.send({"type": "identify", "userId": "u1", "messageId": "m-i"})
    assert run.drain(destination) == ["delivered"] * 3
    assert sink.refused == []
    assert [r.path for r in sink.requests] == ["/crm"] * 3
    assert sink.messages() == [
        {"name": "Signed Up", "user": "u1", "from": "function"},
        {"name": "Upgraded", "user": "u1", "from": "function"},
        {"user": "u1"},
    ]
    progress = {p.destination: p for p in state.progress()}["fn"]
    assert (progress.delivered, progress.dead, progress.retries) == (3, 0, 0)


def test_a_sink_failure_raised_as_retry_error_is_retried_until_it_is_delivered(
    serve: Serve, pipeline: Pipeline, run: Run, state: SqliteDeliveryState, tmp_path: Path
) -> None:
    sink = serve(Receiver("webhook", behaviour=lambda n: (503, {}) if n < 2 else (200, {})))
    destination = function_destination(
        tmp_path, DELIVERING, block=f", settings: {{url: '{sink.url}'}}"
    )
    send_tracks(pipeline, "Signed Up")
    assert run.drain(destination) == ["delivered"]
    assert sink.messages() == [{"name": "Signed Up", "user": "u1", "from": "function"}]
    attempts = state.attempts("fn")
    assert [(a.attempt, a.outcome, a.error) for a in reversed(attempts)] == [
        (1, "retry", "RetryError: the CRM answered 503"),
        (2, "retry", "RetryError: the CRM answered 503"),
        (3, "delivered", ""),
    ]


def test_on_batch_receives_the_batch(
    serve: Serve, pipeline: Pipeline, run: Run, tmp_path: Path
) -> None:
    sink = serve(Receiver("webhook"))
    destination = function_destination(
        tmp_path, DELIVERING, block=f", settings: {{url: '{sink.url}'}}", batch_size=2
    )
    send_tracks(pipeline, "A", "B", "C")
    assert run.drain(destination) == ["delivered", "delivered"]
    assert [r.body for r in sink.requests] == [["m-0", "m-1"], ["m-2"]]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("Invalid", "discarded: ValidationError: email is missing"),
        ("Unsupported", "discarded: EventNotSupported: this CRM takes no such event"),
        ("Bug", "discarded: KeyError: 'missing'"),  # Segment's "Bad Request"
    ],
)
def test_rejections_are_dead_lettered_at_once_with_the_reason(
    pipeline: Pipeline,
    run: Run,
    state: SqliteDeliveryState,
    tmp_path: Path,
    event: str,
    reason: str,
) -> None:
    destination = function_destination(tmp_path, MISBEHAVING)
    send_tracks(pipeline, event, "Fine")
    assert run.drain(destination) == ["dead", "delivered"]
    (letter,) = state.dead_letters("fn")
    assert letter.reason == reason
    failed = state.attempts("fn", failed=True)
    assert [(a.attempt, a.outcome) for a in failed] == [(1, "dead")]


def test_a_missing_handler_is_dead_lettered_as_event_not_supported(
    pipeline: Pipeline, run: Run, state: SqliteDeliveryState, tmp_path: Path
) -> None:
    destination = function_destination(tmp_path, MISBEHAVING)
    pipeline.send({"type": "group", "groupId": "g1", "userId": "u1", "messageId": "m-g"})
    assert run.drain(destination) == ["dead"]
    (letter,) = state.dead_letters("fn")
    assert letter.reason == "discarded: EventNotSupported: fn.py has no on_group for 'group' events"


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ("Retry", "RetryError: the CRM answered 503"),
        ("Sleep", "Timeout: no answer within 1s (killed)"),
        ("Allocate", "MemoryError: out of memory"),
        ("Exit", "Crash: the function's worker process died (exit code 3)"),
        ("Abort", "Crash: the function's worker process died (killed by SIGABRT)"),
        ("Segfault", "Crash: the function's worker process died (killed by SIGSEGV)"),
    ],
)
def test_temporary_failures_are_retried_then_dead_lettered_and_delivery_goes_on(
    pipeline: Pipeline,
    run: Run,
    state: SqliteDeliveryState,
    tmp_path: Path,
    event: str,
    error: str,
) -> None:
    destination = function_destination(
        tmp_path, MISBEHAVING, block=", timeout: 1s, memory: 160MB", retry_window=2.0
    )
    send_tracks(pipeline, event, "Fine")
    assert run.drain(destination) == ["dead", "delivered"]
    # classified as temporary: retried (as often as the window allows), never "discarded"
    failed = list(reversed(state.attempts("fn", failed=True)))
    assert [a.outcome for a in failed] == ["retry"] * (len(failed) - 1) + ["dead"]
    assert {a.error for a in failed} == {error}
    (letter,) = state.dead_letters("fn")
    assert letter.reason.startswith("retry window 2s ran out after ")
    assert letter.reason.endswith(f" attempt(s): {error}")
