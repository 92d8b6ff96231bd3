"""What every vendor integration must do, whatever the vendor: the same suite over Mixpanel,
Amplitude, Google Analytics 4 and HubSpot, each against its loopback API."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from mainstem.destinations import service, transports
from mainstem.destinations.courier import Courier
from mainstem.destinations.spec import Destination
from mainstem.destinations.state import SqliteDeliveryState
from tests.destinations import test_amplitude, test_ga4, test_hubspot, test_mixpanel
from tests.destinations.conftest import Pipeline, wait_for
from tests.destinations.vendors import FAST, Check, Start, Vendor, deliver, flaky, stamped


@dataclass(frozen=True)
class Case:
    check: Check
    destination: Callable[[str], Destination]
    message: dict[str, Any]


CASES = {
    "mixpanel": Case(
        test_mixpanel.mixpanel,
        test_mixpanel.mixpanel_destination,
        {"type": "track", "event": "E", "userId": "user-1"},
    ),
    "amplitude": Case(
        test_amplitude.amplitude,
        test_amplitude.amplitude_destination,
        {"type": "track", "event": "E", "userId": "user-1"},
    ),
    "ga4": Case(
        test_ga4.ga4, test_ga4.ga4_destination, {"type": "track", "event": "E", "anonymousId": "c1"}
    ),
    "hubspot": Case(
        test_hubspot.hubspot_api,
        test_hubspot.hubspot_destination,
        {"type": "identify", "userId": "user-1", "traits": {"email": "a@b.co"}},
    ),
}
VENDORS = pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))


@VENDORS
@pytest.mark.parametrize("retry_after", ["1", "http-date"])
def test_retry_after_is_honoured(
    case: Case, retry_after: str, vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    # the courier's own backoff is at most 0.05 s here (FAST): a gap of 1 s is Retry-After's
    header = "1" if retry_after == "1" else formatdate(usegmt=True)  # a date: "now", 0-1 s
    api = vendor_server(Vendor(case.check, flaky((429, {"Retry-After": header}))))
    pipeline.send(*stamped(case.message))
    steps, state = deliver(pipeline, case.destination(api.url), tmp_path)
    state.close()
    assert (steps, api.refused, api.answered) == (["delivered"], [], 2)
    if retry_after == "1":
        assert api.times[1] - api.times[0] >= 1.0


@VENDORS
def test_a_refused_batch_is_dead_lettered_and_replays_once_the_vendor_takes_it(
    case: Case, vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    api = vendor_server(Vendor(case.check, flaky((400, {}))))
    pipeline.send(*stamped(case.message))
    destination = case.destination(api.url)
    steps, state = deliver(pipeline, destination, tmp_path)
    try:
        assert steps == ["dead"]
        assert len(state.dead_letters(destination.id)) == 1
        result = service.replay(destination, pipeline.store, state, dead_letters=True)
        assert (result.sent, state.dead_letters(destination.id)) == (1, [])
    finally:
        state.close()
    assert len(api.accepted) == 1


@VENDORS
def test_a_vendor_that_is_down_gets_everything_once_it_is_up(
    case: Case, vendor_server: Start, pipeline: Pipeline, tmp_path: Path
) -> None:
    destination = case.destination("http://127.0.0.1:9")  # discard port: connection refused
    pipeline.send(*stamped(case.message))
    state = SqliteDeliveryState(tmp_path / "delivery.db")
    stop = threading.Event()
    down = transports.for_destination(destination)
    try:
        courier = Courier(destination, pipeline.store, state, down, stop, timing=FAST)
        thread = threading.Thread(target=courier.run)
        thread.start()
        wait_for(lambda: state.failing_since(destination.id) is not None, "a failed attempt")
        stop.set()
        thread.join()
    finally:
        down.close()
    state.close()
    api = vendor_server(Vendor(case.check))
    up = case.destination(api.url)  # the same destination, its endpoint now answering
    steps, state = deliver(pipeline, up, tmp_path)
    progress = {p.destination: p for p in state.progress()}[destination.id]
    state.close()
    assert (steps, len(api.accepted)) == (["delivered"], 1)
    assert (progress.delivered, progress.dead) == (1, 0) and progress.retries >= 1


@VENDORS
def test_a_batch_sent_again_after_it_succeeded_is_sent_again(
    case: Case, vendor_server: Start
) -> None:
    # the memory of accepted requests only spans the retries of one failing batch
    api = vendor_server(Vendor(case.check))
    transport = transports.for_destination(case.destination(api.url))
    message = stamped(case.message)[0] | {"timestamp": "2026-03-04T05:06:07.890Z"}
    try:
        replies = [transport.send([message]).status for _ in range(2)]
    finally:
        transport.close()
    assert replies[0] == replies[1] and len(api.accepted) == 2
