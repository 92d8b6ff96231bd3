"""The read side and repairs behind ``mainstem destinations``, ``mainstem deliveries``,
``mainstem replay`` and ``/api/v1/destinations``."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from mainstem import timestamps
from mainstem.destinations import retry, routing, transports
from mainstem.destinations.spec import Destination
from mainstem.destinations.state import FILE_NAME, Attempt, DeliveryState, SqliteDeliveryState
from mainstem.errors import NotFound, RequestError
from mainstem.storage import EventQuery, PipelineStore

Progress = Callable[[int, int], None]
_decode = msgspec.json.Decoder().decode
_REPLAY_ATTEMPTS = 5


def open_state(data_dir: Path, *, readonly: bool = True) -> SqliteDeliveryState | None:
    """The delivery state of ``data_dir``; ``None`` when nothing was delivered there yet
    (read-only: also while the processor is still creating the file)."""
    path = data_dir / FILE_NAME
    if readonly and not path.exists():
        return None
    state = SqliteDeliveryState(path, readonly=readonly)
    if readonly and not state.migrated():
        state.close()
        return None
    return state


def find(destinations: Sequence[Destination], destination_id: str) -> Destination:
    for destination in destinations:
        if destination.id == destination_id:
            return destination
    known = ", ".join(d.id for d in destinations) or "none are configured"
    raise NotFound(
        f"no destination {destination_id!r} in mainstem.yaml — known: {known}",
        code="unknown_destination",
    )


def overview(
    destinations: Sequence[Destination],
    state: DeliveryState | None,
    store: PipelineStore | None,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """One row per configured destination: position, lag, totals, the filtered events by
    routing step, latency and the age of the oldest event it has not handled (no secrets)."""
    newest = store.events(EventQuery(limit=1)) if store is not None else []
    head_seq = newest[0].seq if newest else 0
    progress = {p.destination: p for p in state.progress()} if state is not None else {}
    dropped = state.dropped() if state is not None else {}
    now = time.time() if now is None else now
    rows = []
    for destination in destinations:
        p = progress.get(destination.id)
        cursor = p.cursor if p else 0
        failed = state.attempts(destination.id, failed=True, limit=1) if state else []
        waiting = (
            store.events(EventQuery(after=cursor, limit=1))
            if store is not None and head_seq > cursor
            else []
        )
        rows.append(
            {
                "id": destination.id,
                "type": destination.type,
                "name": destination.name,
                "enabled": destination.enabled,
                "url": destination.endpoint.url,
                "cursor": cursor,
                "lag": max(0, head_seq - cursor),
                "oldest_undelivered_seconds": (
                    round(max(0.0, now - waiting[0].received_at / 1_000_000), 3) if waiting else 0
                ),
                "delivered": p.delivered if p else 0,
                "filtered": p.filtered if p else 0,
                "filtered_by": dropped.get(destination.id, {}),
                "dead_letters": p.dead if p else 0,
                "retries": p.retries if p else 0,
                "latency_seconds": (
                    round(p.latency, 3) if p is not None and p.latency is not None else None
                ),
                "last_error": failed[0].error if failed else None,
                "last_error_at": _time(failed[0].at) if failed else None,
                "updated_at": _time(p.updated_at) if p and p.updated_at else None,
            }
        )
    return rows


def explain(
    destination: Destination, store: PipelineStore, message_id: str
) -> list[dict[str, Any]]:
    """Whether the stored events with ``message_id`` go to ``destination``, and why (one row per
    source that has it).

    Raises:
        NotFound: no stored event has that messageId.
    """
    rows = store.events(EventQuery(message_id=message_id, limit=10))
    if not rows:
        raise NotFound(
            f"no stored event has messageId {message_id!r} — check GET /api/v1/events",
            code="unknown_event",
        )
    answers = []
    for row in rows:
        message = _decode(row.body)
        decision = routing.route(message, row.source_id, destination)
        answers.append(
            {
                "seq": row.seq,
                "source_id": row.source_id,
                "message_id": message_id,
                "deliver": decision.deliver,
                "reason": decision.reason,
            }
        )
    return answers


def attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "destination": attempt.destination,
        "first_seq": attempt.first_seq,
        "last_seq": attempt.last_seq,
        "events": attempt.events,
        "attempt": attempt.attempt,
        "outcome": attempt.outcome,
        "status": attempt.status,
        "error": attempt.error,
        "at": _time(attempt.at),
    }


def _time(seconds: float) -> str:
    return timestamps.format_us(int(seconds * 1_000_000))


@dataclass(frozen=True, slots=True)
class ReplayResult:
    sent: int = 0
    filtered: int = 0
    requests: int = 0
    reasons: tuple[tuple[str, int], ...] = ()
    """Why events were not sent, with counts (most frequent first)."""


def replay(
    destination: Destination,
    store: PipelineStore,
    state: DeliveryState,
    *,
    dead_letters: bool = False,
    since: int | None = None,
    until: int | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    transport: transports.Transport | None = None,
    backoff_base: float = 1.0,
    rate: float | None = None,
) -> ReplayResult:
    """Send events again, outside the destination's cursor, at most ``rate`` events per second
    (default: the destination's ``rate_limit``; without either, as fast as it answers).

    ``dead_letters`` re-sends the pending dead letters as they were to be sent, and marks them
    replayed. Otherwise the stored events received in ``[since, until)`` (µs) are routed again
    as a replay: consent and filters apply, the ``integrations`` object and ``enabled`` do not
    (segment-governance.md §8.5). ``dry_run`` counts without sending.

    Raises:
        RequestError: neither or both of ``dead_letters`` and ``since`` were given, or a batch
            still failed after a few attempts (what was sent before it stays sent).
    """
    if dead_letters == (since is not None):
        raise RequestError("replay needs either --dead-letters or --since", code="invalid_replay")
    own = transport is None and not dry_run
    sender = transport or (None if dry_run else transports.for_destination(destination))
    send = _Sender(destination, sender, state, backoff_base, Pacer(rate or destination.rate_limit))
    try:
        if dead_letters:
            return _replay_dead(destination, state, send, progress)
        assert since is not None
        return _replay_range(destination, store, send, since, until, progress)
    finally:
        if own and sender is not None:
            sender.close()


def _replay_dead(
    destination: Destination, state: DeliveryState, send: _Sender, progress: Progress | None
) -> ReplayResult:
    pending = state.dead_letters(destination.id, limit=1_000_000)
    sent = requests = 0
    size = destination.batch_size
    for start in range(0, len(pending), size):
        chunk = pending[start : start + size]
        if send.sender is not None:
            messages = [_decode(letter.body) for letter in chunk]
            requests += send(messages, chunk[0].seq, chunk[-1].seq)
            state.mark_replayed([letter.id for letter in chunk])
        sent += len(chunk)
        if progress is not None:
            progress(sent, len(pending))
    return ReplayResult(sent=sent, requests=requests)


def _replay_range(
    destination: Destination,
    store: PipelineStore,
    send: _Sender,
    since: int,
    until: int | None,
    progress: Progress | None,
) -> ReplayResult:
    newest = store.events(EventQuery(limit=1))
    first = store.events(EventQuery(after=0, since=since, limit=1))
    if not newest or not first:
        return ReplayResult()
    start, end = first[0].seq - 1, newest[0].seq
    cursor = start
    sent = filtered = requests = 0
    reasons: dict[str, int] = {}
    batch: list[tuple[int, dict[str, Any]]] = []
    rng = random.Random()

    def flush() -> None:
        nonlocal requests
        if batch and send.sender is not None:
            requests += send([message for _, message in batch], batch[0][0], batch[-1][0])
        batch.clear()

    while cursor < end:
        rows = [row for row in store.events(EventQuery(after=cursor, limit=1000)) if row.seq <= end]
        if not rows:
            break
        for row in rows:
            if until is not None and row.received_at >= until:
                cursor = end
                break
            cursor = row.seq
            message = _decode(row.body)
            decision = routing.route(message, row.source_id, destination, replay=True, rng=rng)
            if decision.message is None:
                filtered += 1
                reasons[decision.reason] = reasons.get(decision.reason, 0) + 1
                continue
            batch.append((row.seq, decision.message))
            sent += 1
            if len(batch) >= destination.batch_size:
                flush()
        if progress is not None:
            progress(cursor - start, end - start)
    flush()
    ordered = tuple(sorted(reasons.items(), key=lambda item: (-item[1], item[0])))
    return ReplayResult(sent=sent, filtered=filtered, requests=requests, reasons=ordered)


class Pacer:
    """At most ``rate`` events per second (``None``: no limit). ``clock`` and ``sleep`` are
    the real ones unless a test gives others."""

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def wait(self, events: int) -> None:
        """Before sending ``events``: wait until the previous sends have had their time."""
        if self.rate is None:
            return
        now = self._clock()
        if self._next is not None and self._next > now:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + events / self.rate


class _Sender:
    """Sends one replay batch, paced, retrying a few times; returns the number of requests."""

    def __init__(
        self,
        destination: Destination,
        sender: transports.Transport | None,
        state: DeliveryState,
        backoff_base: float,
        pace: Pacer,
    ) -> None:
        self.destination = destination
        self.sender = sender
        self.state = state
        self.backoff_base = backoff_base
        self.pace = pace

    def __call__(self, messages: list[dict[str, Any]], first_seq: int, last_seq: int) -> int:
        assert self.sender is not None, "a dry run sends nothing"
        destination = self.destination
        rng = random.Random()
        self.pace.wait(len(messages))
        for attempt in range(1, _REPLAY_ATTEMPTS + 1):
            response = self.sender.send(messages)
            verdict = retry.classify(response)
            if verdict == "ok":
                return attempt
            failed = Attempt(
                destination.id,
                first_seq,
                last_seq,
                len(messages),
                attempt,
                "retry",
                response.status,
                response.describe(),
            )
            self.state.record(failed)
            if verdict == "discard" or attempt == _REPLAY_ATTEMPTS:
                raise RequestError(
                    f"replay to {destination.id!r} stopped at seq {first_seq}-{last_seq} after "
                    f"{attempt} attempt(s): {response.describe()} — fix the destination and run "
                    "the replay again",
                    code="replay_failed",
                )
            time.sleep(retry.delay(attempt, response, time.time(), rng, base=self.backoff_base))
        raise AssertionError("unreachable")
