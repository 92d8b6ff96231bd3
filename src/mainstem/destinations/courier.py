"""Delivery: one courier per destination, each with its own thread, cursor and retry clock.

A courier reads the event store after its own cursor (it never touches the processor's commit),
routes each event (:mod:`~mainstem.destinations.routing`), sends full batches — or a partial
one once it has waited ``batch.interval`` — one request at a time (concurrency 1 keeps per-user
order), and moves its cursor only after the destination accepted the batch, or after the batch
became dead letters: discarded by a 4xx, or still failing when ``retry_window`` ran out. A
courier waiting out a backoff holds nothing another courier needs, so one slow or failing
destination never delays another (DESIGN.md §2).

At-least-once: a batch in flight when ``stop`` is set is not acknowledged and is sent again
after a restart.
"""

from __future__ import annotations

import collections
import itertools
import logging
import random
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from mainstem.destinations import retry, routing, transports
from mainstem.destinations.spec import Destination
from mainstem.destinations.state import (
    FILE_NAME,
    Attempt,
    DeadLetter,
    DeliveryState,
    SqliteDeliveryState,
)
from mainstem.errors import LeaseLost
from mainstem.storage import EventQuery, EventRow, PipelineStore

log = logging.getLogger(__name__)

Step = Literal["idle", "waiting", "filtered", "delivered", "dead", "stopped"]
_SCAN = 1000
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Timing:
    """Backoff and polling; tests shrink them, production keeps the defaults."""

    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    poll: float = 0.5


@dataclass(frozen=True, slots=True)
class _Routed:
    row: EventRow
    decision: routing.Decision


@dataclass(frozen=True, slots=True)
class _Item:
    row: EventRow
    message: dict[str, Any]
    raw: bytes | None
    """The stored JSON, when filters left the message as it was stored."""


class Courier:
    def __init__(
        self,
        destination: Destination,
        store: PipelineStore,
        state: DeliveryState,
        transport: transports.Transport | Sequence[transports.Transport],
        stop: threading.Event,
        *,
        timing: Timing = Timing(),
        rng: random.Random | None = None,
    ) -> None:
        """One transport per lane: ``destination.concurrency`` requests in flight at once."""
        self.destination = destination
        self.store = store
        self.state = state
        self.transports = list(transport) if isinstance(transport, Sequence) else [transport]
        self.stop = stop
        self.timing = timing
        self.rng = rng or random.Random()
        self._waiting_since: float | None = None
        self._ahead: collections.deque[_Routed] = collections.deque()
        """Rows after ``_after`` (the cursor when they were read), read and routed once."""
        self._after = -1
        self._next_send = [0.0] * len(self.transports)
        self.last_error: str | None = None

    def run(self) -> None:
        """Deliver until ``stop`` is set, or until another worker holds this destination
        (PostgreSQL); errors of our own are logged and retried."""
        while not self.stop.is_set():
            try:
                step = self.run_once()
            except LeaseLost as exc:
                log.info("destination %s: %s", self.destination.id, exc)
                return
            except Exception:
                log.exception("destination %s: delivery step failed", self.destination.id)
                step = "idle"
            if step in {"idle", "waiting"}:
                self.stop.wait(self.timing.poll)

    def run_once(self) -> Step:
        """Handle the next batch after the cursor."""
        dest = self.destination
        cursor = self.state.cursor(dest.id)
        if cursor != self._after:  # first step, or the cursor moved under us: read afresh
            self._ahead.clear()
            self._after = cursor
        if len(self._ahead) < _SCAN:
            # read ahead: each stored row is read and routed once, however small the batches
            newest = self._ahead[-1].row.seq if self._ahead else cursor
            rows = self.store.events(EventQuery(after=newest, limit=_SCAN))
            self._ahead.extend(_Routed(row, self._decide(row)) for row in rows)
        if not self._ahead:
            self._waiting_since = None
            return "idle"
        lanes: list[list[_Item]] = [[] for _ in self.transports]
        last, taken, full = cursor, 0, False
        dropped: Counter[str] = Counter()
        for routed in itertools.islice(self._ahead, _SCAN):
            taken += 1
            last = routed.row.seq
            message = routed.decision.message
            if message is None:
                dropped[routed.decision.step] += 1
            else:
                raw = None if routed.decision.rewritten else routed.row.body
                lane = lanes[self._lane(message)]
                lane.append(_Item(routed.row, message, raw))
                if len(lane) >= dest.batch_size:
                    full = True
                    break
        batches = [(index, lane) for index, lane in enumerate(lanes) if lane]
        if not batches:
            self.state.advance(dest.id, last, dropped=dropped)
            self._consumed(taken, last)
            return "filtered"
        if not full and len(self._ahead) < _SCAN:
            now = time.monotonic()
            if self._waiting_since is None:
                self._waiting_since = now
            if now - self._waiting_since < dest.batch_interval:
                return "waiting"
        self._waiting_since = None
        step = self._round(batches, last, dropped)
        if step in {"delivered", "dead"}:
            self._consumed(taken, last)
        return step

    def _lane(self, message: dict[str, Any]) -> int:
        """One user's events always take the same lane, so they stay in order."""
        if len(self.transports) == 1:
            return 0
        key = message.get("userId") or message.get("anonymousId") or message.get("messageId")
        return zlib.crc32(str(key).encode()) % len(self.transports)

    def _round(
        self, batches: list[tuple[int, list[_Item]]], last: int, dropped: Counter[str]
    ) -> Step:
        """Send one batch per lane at once; move the cursor past all of them when each was
        accepted or dead-lettered (a stop before that sends the whole round again)."""
        dest = self.destination
        # the retry clock of this round, also across restarts (wall clock, kept in the state)
        started = self.state.failing_since(dest.id) or time.time()
        single = len(batches) == 1
        outcomes: list[_Outcome | None] = [None] * len(batches)

        def deliver(position: int) -> None:
            lane, batch = batches[position]
            outcomes[position] = self._deliver(
                lane, batch, last if single else batch[-1].row.seq, started
            )

        helpers = [
            threading.Thread(target=deliver, args=(n,), name=f"destination-{dest.id}-lane")
            for n in range(1, len(batches))
        ]
        for helper in helpers:
            helper.start()
        deliver(0)
        for helper in helpers:
            helper.join()
        if any(outcome is None for outcome in outcomes):
            return "stopped"
        done = [outcome for outcome in outcomes if outcome is not None]
        accepted = [outcome.batch for outcome in done if outcome.dead is None]
        self.state.advance(
            dest.id,
            last,
            attempts=[outcome.record for outcome in done],
            delivered=sum(len(batch) for batch in accepted),
            dropped=dropped,
            dead=[letter for outcome in done for letter in outcome.dead or ()],
            # received by Mainstem to accepted by the destination, oldest event first
            latency=(
                time.time() - min(batch[0].row.received_at for batch in accepted) / 1_000_000
                if accepted
                else None
            ),
        )
        return "delivered" if accepted else "dead"

    def _consumed(self, taken: int, last: int) -> None:
        for _ in range(taken):
            self._ahead.popleft()
        self._after = last

    def _decide(self, row: EventRow) -> routing.Decision:
        try:
            message = _decode(row.body)
        except msgspec.DecodeError as exc:
            return routing.Decision(
                False, f"stored event {row.seq} is not JSON: {exc}", step="unreadable"
            )
        if not isinstance(message, dict):
            return routing.Decision(
                False, f"stored event {row.seq} is not a JSON object", step="unreadable"
            )
        return routing.route(message, row.source_id, self.destination, rng=self.rng)

    def _deliver(self, lane: int, batch: list[_Item], last: int, started: float) -> _Outcome | None:
        """Send ``batch`` on ``lane`` until it is accepted or dead; ``None`` when stopped."""
        dest = self.destination
        first_seq = batch[0].row.seq
        messages = [item.message for item in batch]
        stored = [item.raw for item in batch if item.raw is not None]
        raw = stored if len(stored) == len(batch) else None
        attempt = 0
        while True:
            pause = self._next_send[lane] - time.monotonic()
            if pause > 0 and self.stop.wait(pause):
                return None
            attempt += 1
            response = self.transports[lane].send(messages, raw)
            if dest.rate_limit is not None:  # the lanes share the destination's rate
                spacing = len(batch) * len(self.transports) / dest.rate_limit
                self._next_send[lane] = time.monotonic() + spacing
            verdict = retry.classify(response)
            record = Attempt(
                dest.id,
                first_seq,
                last,
                len(batch),
                attempt,
                "delivered",
                response.status,
                "" if verdict == "ok" else response.describe(),
            )
            if verdict == "ok":
                self.last_error = None
                return _Outcome(batch, record)
            self.last_error = response.describe()
            if verdict == "discard":
                return self._dead(batch, record, f"discarded: {response.describe()}")
            wait = retry.delay(
                attempt,
                response,
                time.time(),
                self.rng,
                base=self.timing.backoff_base,
                cap=self.timing.backoff_cap,
            )
            if time.time() - started + wait > dest.retry_window:
                reason = (
                    f"retry window {dest.retry_window:g}s ran out after {attempt} attempt(s): "
                    f"{response.describe()}"
                )
                return self._dead(batch, record, reason)
            log.info(
                "destination %s: attempt %d failed (%s); retrying in %.1fs",
                dest.id,
                attempt,
                response.describe(),
                wait,
            )
            self.state.record(_replace_outcome(record, "retry"))
            if self.stop.wait(wait):
                return None

    def _dead(self, batch: list[_Item], record: Attempt, reason: str) -> _Outcome:
        dest = self.destination
        log.warning("destination %s: %d event(s) dead-lettered: %s", dest.id, len(batch), reason)
        dead = [
            DeadLetter(
                dest.id,
                item.row.seq,
                item.row.source_id,
                item.row.received_at,
                _encode(item.message),
                reason,
            )
            for item in batch
        ]
        return _Outcome(batch, _replace_outcome(record, "dead"), dead)


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How one lane's batch of a round ended: accepted, or dead-lettered (``dead``)."""

    batch: list[_Item]
    record: Attempt
    dead: list[DeadLetter] | None = None


def _replace_outcome(record: Attempt, outcome: str) -> Attempt:
    return Attempt(
        record.destination,
        record.first_seq,
        record.last_seq,
        record.events,
        record.attempt,
        outcome,
        record.status,
        record.error,
    )


def state_for(data_dir: Path, *, readonly: bool = False) -> SqliteDeliveryState:
    return SqliteDeliveryState(data_dir / FILE_NAME, readonly=readonly)


class Running:
    """One destination's courier on its own daemon thread."""

    def __init__(
        self,
        destination: Destination,
        store: PipelineStore,
        state: DeliveryState,
        stop: threading.Event,
        *,
        timing: Timing = Timing(),
    ) -> None:
        newest = store.events(EventQuery(limit=1))
        head = newest[0].seq if newest else 0
        if state.begin(destination.id, head):
            log.info("destination %s is new: it starts after seq %d", destination.id, head)
        self.stop = stop
        self.transports = [
            transports.for_destination(destination) for _ in range(destination.concurrency)
        ]
        courier = Courier(destination, store, state, self.transports, stop, timing=timing)
        self.thread = threading.Thread(
            target=courier.run, name=f"destination-{destination.id}", daemon=True
        )
        self.thread.start()
        log.info("destination %s (%s) started", destination.id, destination.type)

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def join(self) -> None:
        """Wait for the courier to see ``stop`` (or lose its lease), then close its transport."""
        self.thread.join()
        for transport in self.transports:
            transport.close()


def start(
    destinations: Sequence[Destination],
    store: PipelineStore,
    data_dir: Path,
    stop: threading.Event,
    *,
    timing: Timing = Timing(),
) -> Callable[[], None]:
    """Start one courier per enabled destination; returns ``join`` (waits for the threads to
    see ``stop`` and closes the state).

    A destination started for the first time begins after the newest stored event, as in
    Segment, where a new destination receives new events and history is a replay away.
    """
    enabled = [destination for destination in destinations if destination.enabled]
    if not enabled:
        return lambda: None
    state = state_for(data_dir)
    running = [Running(d, store, state, stop, timing=timing) for d in enabled]

    def join() -> None:
        for courier in running:
            courier.join()
        state.close()

    return join
