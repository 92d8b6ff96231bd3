"""Durability of the real server under crashes: a ``200`` means stored, exactly once.

Client threads stream ``POST /v1/batch`` requests at a ``mainstem serve`` subprocess while it is
killed (SIGKILL) or stopped (SIGTERM) and started again on the same data directory. Afterwards,
once the processor has caught up with the event log:

* every messageId of a request answered ``200`` is stored exactly once;
* no messageId is stored twice, even though clients re-send batches whose answer they lost;
* nothing is stored that was never sent.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.conftest import WRITE_KEY, ServerProcess, wait_for
from tests.senders import BATCH, BatchSender

pytestmark = pytest.mark.slow

THREADS = 4


class Sender(BatchSender):
    """One keep-alive client: batches of ``BATCH`` events with messageIds ``t{thread}-{n}-{i}``."""

    def __init__(self, index: int, url: str, stop: threading.Event) -> None:
        super().__init__(f"sender-{index}", url, stop, pause=0.02)
        self.index = index

    def messages(self, n: int) -> list[dict[str, Any]]:
        return batch([f"t{self.index}-{n}-{i}" for i in range(BATCH)])


def batch(ids: list[str]) -> list[dict[str, Any]]:
    return [
        {"type": "track", "event": "Crash Test", "userId": "crash-user", "messageId": mid}
        for mid in ids
    ]


def start_senders(server: ServerProcess) -> tuple[list[Sender], threading.Event]:
    stop = threading.Event()
    senders = [Sender(index, server.url, stop) for index in range(THREADS)]
    for sender in senders:
        sender.start()
    return senders, stop


def stop_senders(senders: list[Sender], stop: threading.Event) -> None:
    stop.set()
    for sender in senders:
        sender.join(timeout=15)
    assert not [s.name for s in senders if s.is_alive()], "a sender thread did not stop"
    crashed = {s.name: repr(s.crash) for s in senders if s.crash is not None}
    assert not crashed, f"sender threads crashed: {crashed}"
    unexpected = {s.name: s.unexpected for s in senders if s.unexpected}
    assert not unexpected, f"answers other than 200/503 while crashing: {unexpected}"


def wait_for_progress(
    senders: list[Sender], requests: int, timeout: float, what: str, at_least: float = 0.0
) -> None:
    """Until every sender got ``requests`` more 200s than it has now, and ``at_least`` seconds
    have passed."""
    targets = [sender.counts()[0] + requests for sender in senders]
    earliest = time.monotonic() + at_least
    wait_for(
        lambda: (
            time.monotonic() >= earliest
            and all(s.counts()[0] >= t for s, t in zip(senders, targets, strict=True))
        ),
        timeout,
        what,
    )


def wait_for_outage(senders: list[Sender], timeout: float) -> None:
    """Until every sender has seen the server gone (a failed request after now)."""
    targets = [sender.counts()[1] + 1 for sender in senders]
    wait_for(
        lambda: all(s.counts()[1] >= t for s, t in zip(senders, targets, strict=True)),
        timeout,
        "every client to see the server down",
    )


def caught_up(server: ServerProcess, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every stored event, once the processor has processed the whole event log."""

    def no_lag() -> bool:
        try:
            response = httpx.get(f"{server.url}/health", timeout=5)
        except httpx.TransportError:
            return False
        return response.status_code == 200 and response.json().get("log_lag") == 0

    wait_for(no_lag, timeout, "the processor to catch up (log_lag 0 on /health)")
    return stored_events(server)


def stored_events(server: ServerProcess) -> list[dict[str, Any]]:
    """Every stored event, oldest first, tailing ``/api/v1/events`` with ``after``.

    Like ``server.events()``, but with the API's default page size: this test is about
    durability, so it does not depend on the ``limit`` query parameter.
    """
    found: list[dict[str, Any]] = []
    after = "0"
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        for _ in range(10_000):  # bounded: ~1M events at the default page size
            response = client.get("/api/v1/events", params={"after": after})
            assert response.status_code == 200, response.text
            page = response.json()
            if not page["data"]:
                return found
            found.extend(item["message"] for item in page["data"])
            after = page["next_after"]
    raise AssertionError("the event listing did not end")


def assert_exactly_once(stored: list[dict[str, Any]], senders: list[Sender]) -> None:
    sent = set().union(*(s.sent for s in senders))
    acked = set().union(*(s.acked for s in senders))
    counts = Counter(message["messageId"] for message in stored)
    duplicates = sorted(mid for mid, count in counts.items() if count > 1)
    missing = sorted(acked - counts.keys())
    never_sent = sorted(counts.keys() - sent)
    assert not duplicates, f"{len(duplicates)} messageIds stored more than once: {duplicates[:20]}"
    assert not missing, f"{len(missing)} messageIds answered 200 but not stored: {missing[:20]}"
    assert not never_sent, f"{len(never_sent)} stored messageIds never sent: {never_sent[:20]}"
    # Requests in flight when the server went down (sent, never answered 200) may be stored or
    # not, but at most once: covered by the duplicate check.


def resend(server: ServerProcess, batches: list[list[str]]) -> None:
    """A client re-sending batches whose 200 it never saw (the response was lost)."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for ids in batches:
            response = client.post("/v1/batch", json={"writeKey": WRITE_KEY, "batch": batch(ids)})
            assert response.status_code == 200, response.text


def crash_and_restart(server: ServerProcess, sig: int) -> tuple[list[Sender], int]:
    """Send under load, stop the server with ``sig`` mid-stream, restart it, send some more."""
    senders, stop = start_senders(server)
    try:
        wait_for_progress(senders, 15, 20, "every client to get 15 batches accepted", at_least=1.5)
        code = server.stop(sig)
        wait_for_outage(senders, 10)
        server.start()
        wait_for_progress(senders, 5, 20, "every client to get 5 batches accepted after restart")
    finally:
        stop_senders(senders, stop)
    # Each client lost (at least) the answer to the request it had in flight, and re-sent it
    # with the same messageIds until it got a 200.
    assert all(s.retried_ok >= 1 for s in senders), [s.retried_ok for s in senders]
    acked = sum(len(s.acked) for s in senders)
    assert acked >= THREADS * (15 + 5) * BATCH
    return senders, code


def test_sigkill_loses_nothing_answered_200_and_stores_nothing_twice(server: ServerProcess) -> None:
    senders, code = crash_and_restart(server, signal.SIGKILL)
    assert code == -signal.SIGKILL, f"expected death by SIGKILL, got exit code {code}"

    # Lost responses: re-send batches that were definitely committed (answered 200 before the
    # kill) and the last batch of each client; messageId dedupe must drop every copy.
    replayed = [s.acked_batches[0] for s in senders] + [s.acked_batches[-1] for s in senders]
    resend(server, replayed)

    stored = caught_up(server)
    assert_exactly_once(stored, senders)


def test_sigterm_is_graceful_and_every_200_is_stored_once(server: ServerProcess) -> None:
    senders, code = crash_and_restart(server, signal.SIGTERM)

    resend(server, [s.acked_batches[0] for s in senders])

    stored = caught_up(server)
    assert_exactly_once(stored, senders)
    assert code == 0, f"`mainstem serve` exited with {code} on SIGTERM, expected 0"


def test_a_retried_batch_after_restart_is_not_duplicated(server: ServerProcess) -> None:
    """One client, no load: its batch is committed, the server is killed before the client
    reads the answer (simulated: the client ignores the 200), the client retries after the
    restart, twice. The batch is stored once."""
    ids = [f"retry-{i}" for i in range(BATCH)]
    resend(server, [ids])
    server.stop(signal.SIGKILL)
    server.start()
    resend(server, [ids, ids])
    stored = caught_up(server)
    assert sorted(m["messageId"] for m in stored) == sorted(ids)
